"""Retrieval indexes: `polyadapt index build/search/list/show/remove` and the Python API.

Documents are read (text, Markdown, reStructuredText, HTML, PDF), cut into passages with
line ranges, governed like training data (licence, PII redaction, counts recorded, never
values), hashed into lineage and written atomically to a SQLite FTS5 file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from polyadapt.cli import app as cli_app
from polyadapt.errors import ConfigError, DataError, GovernanceError
from polyadapt.governance.policy import Policy
from polyadapt.retrieval import Passage, build_index, list_indexes, open_index
from polyadapt.retrieval.chunking import chunk_part
from polyadapt.retrieval.documents import Part
from polyadapt.retrieval.fts import match_expression
from polyadapt.retrieval.prompting import with_passages

#: Findings allowed to be common (documents about customers hold addresses) and no spaCy.
LENIENT = Policy(name="docs", max_finding_share=1.0, detectors={"ner": "off"})

EMAIL = "maria.keller@example.org"
PHONE = "+44 20 7946 0958"
SECRET = "Deploy with the key AKIAIOSFODNN7EXAMPLF and secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY.\n"

WARRANTY = """# Warranty

The Solvanta warranty covers parts and labour for two years from delivery.
Water damage and accidental drops are not covered.

Claims go to the support desk; write to maria.keller@example.org or call +44 20 7946 0958.
"""

SHIPPING = """Shipping
========

Standard shipping takes five working days.
Express shipping takes one working day and costs extra.
"""

RETURNS_HTML = """<html><head><title>Returns</title><style>p {color: red}</style>
<script>var secret = "not text";</script></head>
<body>
<h1>Returns policy</h1>
<p>Unused items may be returned within
thirty days for a full refund.</p>
<p>Opened software cannot be returned.</p>
</body></html>
"""


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    (folder / "policies").mkdir(parents=True)
    (folder / "warranty.md").write_text(WARRANTY)
    (folder / "policies" / "shipping.rst").write_text(SHIPPING)
    (folder / "policies" / "returns.html").write_text(RETURNS_HTML)
    (folder / "notes.txt").write_text("The office is closed on public holidays.\n")
    return folder


def build(docs: Path, name: str = "handbook", **options):
    options.setdefault("licence", "CC-BY-4.0")
    options.setdefault("policy", LENIENT)
    return build_index(name, [docs], **options)


# -- build and search ------------------------------------------------------------------------


def test_build_and_search_finds_the_passage_with_its_source_lines(docs, monkeypatch):
    monkeypatch.chdir(docs.parent)
    result = build(docs)
    assert result.documents == 4 and result.passages == 4
    index = open_index("handbook")
    found = index.search("what does the warranty cover?", k=2)
    assert found and isinstance(found[0], Passage)
    assert found[0].source == "docs/warranty.md#L1-6"
    assert "covers parts and labour" in found[0].text
    assert all(a.score >= b.score for a, b in zip(found, found[1:]))
    shipping = index.search("how long does express shipping take", k=1)[0]
    assert shipping.source == "docs/policies/shipping.rst#L1-5"
    returns = index.search("refund for unused items", k=1)[0]
    assert returns.source.startswith("docs/policies/returns.html#L")
    assert "thirty days" in returns.text and "not text" not in returns.text and "color" not in returns.text
    assert index.search("zeppelin", k=3) == []
    assert len(index.search("the", k=2)) == 2  # k is honoured


def test_porter_stemming_matches_other_word_forms(docs):
    build(docs)
    assert "Shipping" in open_index("handbook").search("shipped", k=1)[0].text


@pytest.mark.parametrize(
    "query",
    [
        "what's covered?",
        '"unbalanced quote',
        "warranty AND OR NOT",
        "NEAR(warranty drops",
        "claims*",
        "-water +damage",
        "text:warranty",
        "^warranty",
        "(((",
        "café naïve 保修",
        "x" * 5000,
    ],
)
def test_any_text_is_a_valid_query(docs, query):
    build(docs)
    open_index("handbook").search(query, k=3)  # never an FTS5 syntax error


def test_a_query_without_words_finds_nothing_and_operators_are_plain_words(docs):
    build(docs)
    index = open_index("handbook")
    assert index.search("?!.,;()", k=3) == []
    assert match_expression("what's covered?") == '"what" OR "s" OR "covered"'
    assert match_expression('NOT "x') == '"not" OR "x"'


def test_long_documents_become_overlapping_passages_with_line_ranges():
    texts = []
    for paragraph in range(12):
        texts += [f"Paragraph {paragraph} sentence {i} " + "word " * 8 for i in range(3)] + [""]
    lines = list(enumerate(texts, start=1))
    chunks = chunk_part(Part(tuple(lines)), chunk_words=60)
    assert len(chunks) > 3
    for chunk in chunks:
        assert 30 <= len(chunk.text.split()) <= 75
        assert chunk.first_line is not None and chunk.last_line is not None
        assert chunk.first_line <= chunk.last_line
    for before, after in zip(chunks, chunks[1:]):
        assert after.first_line <= before.last_line  # a small overlap
        assert after.last_line > before.last_line
    assert chunks[0].first_line == 1 and chunks[-1].last_line == len(lines) - 1


# -- governance ------------------------------------------------------------------------------


def test_passages_are_redacted_and_only_counts_are_recorded(docs):
    result = build(docs)
    assert result.governance["redacted"] == 1
    assert result.governance["findings_by_type"] == {"email": 1, "phone": 1}
    text = open_index("handbook").search("claims support desk", k=1)[0].text
    assert EMAIL not in text and PHONE not in text and "<EMAIL_1>" in text
    raw = result.path.read_bytes()
    assert EMAIL.encode() not in raw and b"7946" not in raw
    meta = open_index("handbook").meta
    assert meta["governance"]["findings_by_type"] == {"email": 1, "phone": 1}
    lines = "\n".join(result.lines())
    assert "1 redacted" in lines and "email 1" in lines and EMAIL not in lines


def test_the_strict_policy_refuses_too_much_pii(docs):
    with pytest.raises(GovernanceError, match="max_finding_share 0.2: 25% of records"):
        build(docs, policy=Policy(detectors={"ner": "off"}))  # the strict default, without spaCy (slow to load)


def test_a_secret_refuses_the_build_and_names_the_file(docs):
    (docs / "deploy.md").write_text(SECRET)
    with pytest.raises(GovernanceError, match=r"deploy\.md"):
        build(docs)
    assert list_indexes() == []


@pytest.mark.parametrize(
    ("licence", "match"),
    [(None, "requires one"), ("GPL-3.0-only", "not allowed"), ("Not-A-Licence", "unknown SPDX")],
)
def test_the_licence_is_checked_like_training_data(docs, licence, match):
    with pytest.raises(GovernanceError, match=match):
        build_index("handbook", [docs], licence=licence, policy=LENIENT)


def test_a_policy_file_is_applied(docs, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "name: docs-file\nmax_finding_share: 1.0\ndetectors: {ner: 'off'}\npii: {email: mask}\n"
        "licences: {allowed: [MIT]}\n"
    )
    with pytest.raises(GovernanceError, match="not allowed by policy 'docs-file'"):
        build(docs, policy=policy)
    result = build(docs, policy=policy, licence="MIT")
    assert result.governance["policy"] == "docs-file"
    text = open_index("handbook").search("support desk", k=1)[0].text
    assert EMAIL not in text and "<EMAIL" not in text  # masked, not replaced by a placeholder


# -- lineage ---------------------------------------------------------------------------------


def test_documents_and_hashes_are_recorded_in_lineage(docs, project_state):
    from polyadapt.lineage.manifest import root_hash
    from polyadapt.lineage.store import LineageStore

    result = build(docs)
    meta = open_index("handbook").meta
    by_source = {d["source"]: d for d in meta["documents"]}
    warranty = next(d for s, d in by_source.items() if s.endswith("warranty.md"))
    assert warranty["sha256"] == hashlib.sha256((docs / "warranty.md").read_bytes()).hexdigest()
    assert warranty["passages"] == 1 and warranty["kind"] == "markdown"
    assert meta["documents_root_hash"] == root_hash([d["sha256"] for d in meta["documents"]])
    with LineageStore.open() as store:
        [record] = store.retrieval_indexes("handbook")
        assert record["root_hash"] == result.root_hash == meta["root_hash"]
        assert record["documents_root_hash"] == result.documents_root_hash
        assert record["passages"] == 4
        assert record["facts"]["governance"]["findings_by_type"] == {"email": 1, "phone": 1}
        assert record["facts"]["licence"] == "CC-BY-4.0"
    db = sqlite3.connect(project_state / "lineage.db")
    kind, records, manifest = db.execute(
        "SELECT kind, records, manifest FROM datasets WHERE root_hash = ?", (result.root_hash,)
    ).fetchone()
    assert (kind, records) == ("documents", 4)
    assert EMAIL not in manifest and json.loads(manifest)["governance"]["role"] == "index"


# -- rebuilding ------------------------------------------------------------------------------


def test_rebuilding_replaces_the_index_atomically(docs, tmp_path):
    build(docs)
    index = open_index("handbook")
    assert index.search("warranty", k=1)
    other = tmp_path / "other"
    other.mkdir()
    (other / "faq.md").write_text("Zeppelin rides leave from the north tower every hour.\n")
    build(other)
    assert index.search("zeppelin", k=1)[0].source.endswith("faq.md#L1")  # an open index sees the new file
    assert index.search("warranty", k=1) == []
    folder = index.path.parent
    assert sorted(p.name for p in folder.iterdir()) == ["handbook.sqlite"]  # no temporary file left


def test_a_failed_rebuild_leaves_the_old_index(docs, tmp_path, monkeypatch):
    from polyadapt.retrieval import fts

    build(docs)
    before = open_index("handbook").path.read_bytes()
    with pytest.raises(GovernanceError):
        build(docs, licence="GPL-3.0-only")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "leak.txt").write_text(SECRET)
    with pytest.raises(GovernanceError):
        build(bad)

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fts, "add_passages", disk_full)  # fails half-way through writing the new file
    with pytest.raises(OSError, match="No space"):
        build(docs)
    index = open_index("handbook")
    assert index.path.read_bytes() == before
    assert index.search("warranty", k=1)
    assert sorted(p.name for p in index.path.parent.iterdir()) == ["handbook.sqlite"]


# -- files -----------------------------------------------------------------------------------


def test_bad_files_in_a_folder_are_skipped_by_name(docs):
    (docs / "latin1.txt").write_bytes("Caf\xe9 menu\n".encode("latin-1"))
    (docs / "empty.md").write_text("")
    (docs / "blank.txt").write_text("   \n\n")
    (docs / "archive.txt").write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)))
    (docs / "image.png").write_bytes(b"\x89PNG\r\n")
    (docs / ".git").mkdir()
    (docs / ".git" / "HEAD.txt").write_text("ref: main\n")
    (docs / ".draft.md").write_text("hidden draft\n")
    result = build(docs)
    skipped = dict(result.skipped)
    assert set(skipped) == {f"{docs}/{name}" for name in ("archive.txt", "blank.txt", "empty.md", "latin1.txt")}
    assert "not valid UTF-8" in skipped[f"{docs}/latin1.txt"] and "line 1" in skipped[f"{docs}/latin1.txt"]
    assert "empty" in skipped[f"{docs}/empty.md"]
    assert "gzip" in skipped[f"{docs}/archive.txt"]
    assert (result.hidden, result.other_types) == (2, 1)
    assert result.documents == 4
    text = "\n".join(result.lines())
    assert "latin1.txt" in text and "2 hidden" in text


def test_a_named_bad_file_is_refused_by_name(docs, tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"caf\xe9\n")
    with pytest.raises(DataError, match=r"latin1\.txt: cannot index it: not valid UTF-8"):
        build_index("handbook", [docs, bad], licence="MIT", policy=LENIENT)
    with pytest.raises(DataError, match="no such file"):
        build_index("handbook", [tmp_path / "missing"], licence="MIT", policy=LENIENT)
    empty = tmp_path / "nothing"
    empty.mkdir()
    (empty / "a.bin").write_bytes(b"\x00")
    with pytest.raises(DataError, match="no usable document"):
        build_index("handbook", [empty], licence="MIT", policy=LENIENT)


def _pdf(pages: list[str]) -> bytes:
    """A minimal PDF with one line of Helvetica text per page."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        content = len(objects) + 1
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        kids.append(len(objects) + 1)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>" % content
        )
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_pdf_text_is_indexed_by_page(tmp_path):
    pytest.importorskip("pypdf")
    pdf = tmp_path / "manual.pdf"
    pdf.write_bytes(_pdf(["The boiler needs a yearly service.", "Reset the thermostat by holding the button."]))
    result = build_index("manual", [pdf], licence="MIT", policy=LENIENT)
    assert result.passages == 2
    found = open_index("manual").search("thermostat reset", k=1)[0]
    assert found.source.endswith("manual.pdf#page=2") and "thermostat" in found.text
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(_pdf([""]))
    with pytest.raises(DataError, match=r"scan\.pdf: cannot index it: the PDF has no text layer"):
        build_index("scan", [scan], licence="MIT", policy=LENIENT)


def test_a_pdf_without_pypdf_names_the_file_and_the_install(tmp_path, monkeypatch):
    pdf = tmp_path / "manual.pdf"
    pdf.write_bytes(_pdf(["Some text."]))
    monkeypatch.setitem(sys.modules, "pypdf", None)
    with pytest.raises(DataError, match=r"manual\.pdf: reading PDF files needs pypdf.*polyadapt\[retrieval\]"):
        build_index("manual", [pdf], licence="MIT", policy=LENIENT)


# -- names, opening, prompting ---------------------------------------------------------------


def test_a_missing_index_names_itself_and_the_list_command(docs):
    with pytest.raises(ConfigError, match=r"'nope' not found.*no index is built yet.*polyadapt index list"):
        open_index("nope")
    build(docs)
    with pytest.raises(ConfigError, match="built indexes: handbook"):
        open_index("nope")


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x" * 200, "bad name"])
def test_index_names_are_checked(docs, name):
    with pytest.raises(ConfigError, match="index name"):
        build(docs, name=name)


def test_with_passages_adds_one_numbered_system_message():
    passages = [Passage("p1", "Alpha text.", "docs/a.md#L1-3", 2.0), Passage("p2", "Beta text.", "b.pdf#page=2", 1.0)]
    user = [{"role": "user", "content": "Question?"}]
    added = with_passages(user, passages)
    assert added[1:] == user and added[0]["role"] == "system"
    system = added[0]["content"]
    assert "[1] (source: docs/a.md#L1-3)\nAlpha text." in system and "[2] (source: b.pdf#page=2)" in system
    assert "Answer the user's question using the numbered passages" in system
    own = [{"role": "system", "content": "You are terse."}, *user]
    merged = with_passages(own, passages)
    assert len(merged) == 2 and merged[0]["content"].startswith("You are terse.\n\n") and "[2]" in merged[0]["content"]
    assert own[0]["content"] == "You are terse."  # the input is not modified
    assert with_passages(user, []) == user


# -- dense embeddings ------------------------------------------------------------------------


def test_dense_vectors_make_search_hybrid(docs, tiny_encoder):
    import numpy as np

    build(docs)
    index = open_index("handbook")  # open before the rebuild: it follows the new file
    assert not index.dense and len(index.search("what does the warranty cover?", k=4)) < 4
    result = build(docs, embed=tiny_encoder)
    assert result.embedding == {"model": str(tiny_encoder), "dims": 32}
    index.search("warranty", k=1)
    assert index.dense
    conn = sqlite3.connect(index.path)
    vectors = [np.frombuffer(blob, dtype=np.float32) for (blob,) in conn.execute("SELECT vector FROM vectors")]
    assert len(vectors) == 4 and all(abs(float(np.linalg.norm(v)) - 1) < 1e-4 for v in vectors)
    found = index.search("what does the warranty cover?", k=4)
    assert len(found) == 4  # the dense ranking reaches passages no query word matches
    assert found[0].source.endswith("warranty.md#L1-6")  # first in both rankings
    assert all(a.score >= b.score for a, b in zip(found, found[1:]))


def test_reciprocal_rank_fusion():
    from polyadapt.retrieval.dense import reciprocal_rank_fusion

    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60)
    assert [item for item, _ in fused] == [1, 3, 2]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)


def test_a_bad_embedding_folder_is_refused(docs, tmp_path):
    with pytest.raises(DataError, match="not a local transformers model folder"):
        build(docs, embed=tmp_path)


# -- the CLI ---------------------------------------------------------------------------------


def test_cli_build_search_list_show_remove(docs, monkeypatch):
    monkeypatch.chdir(docs.parent)
    runner = CliRunner()
    policy = docs.parent / "policy.yaml"
    policy.write_text("name: docs\nmax_finding_share: 1.0\ndetectors: {ner: 'off'}\n")
    built = runner.invoke(
        cli_app, ["index", "build", "handbook", "--from", "docs", "--licence", "MIT", "--policy", str(policy)]
    )
    assert built.exit_code == 0, built.output
    assert "4 document(s), 4 passage(s)" in built.output and "1 redacted" in built.output
    assert EMAIL not in built.output
    searched = runner.invoke(cli_app, ["index", "search", "handbook", "what's covered?", "-k", "2", "--json"])
    assert searched.exit_code == 0, searched.output
    rows = json.loads(searched.output)
    assert rows[0]["source"] == "docs/warranty.md#L1-6" and set(rows[0]) == {"passage_id", "source", "score", "text"}
    plain = runner.invoke(cli_app, ["index", "search", "handbook", "express shipping"])
    assert plain.exit_code == 0 and "docs/policies/shipping.rst#L1-5" in plain.output
    listed = runner.invoke(cli_app, ["index", "list", "--json"])
    [row] = json.loads(listed.output)
    assert row["name"] == "handbook" and row["passages"] == 4 and row["licence"] == "MIT"
    shown = runner.invoke(cli_app, ["index", "show", "handbook", "--json"])
    meta = json.loads(shown.output)
    assert meta["lineage"]["matches"] is True and len(meta["documents"]) == 4
    text = runner.invoke(cli_app, ["index", "show", "handbook"])
    assert hashlib.sha256((docs / "warranty.md").read_bytes()).hexdigest() in text.output
    assert "matches the file" in text.output
    removed = runner.invoke(cli_app, ["index", "remove", "handbook"])
    assert removed.exit_code == 0
    assert list_indexes() == []
    missing = runner.invoke(cli_app, ["index", "search", "handbook", "x"])
    assert missing.exit_code == 2 and "polyadapt index list" in missing.output


def test_cli_build_errors_are_one_line(docs):
    result = CliRunner().invoke(
        cli_app, ["index", "build", "handbook", "--from", str(docs), "--licence", "GPL-3.0-only"]
    )
    assert result.exit_code == 1 and "not allowed" in result.output and "Traceback" not in result.output
