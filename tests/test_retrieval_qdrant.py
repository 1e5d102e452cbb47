"""Qdrant as an index's vector engine (qdrant-client's local mode: no server needed), and
dense model folders recorded so that searches work from any directory.

`polyadapt index build NAME --embed DIR --vector-engine qdrant --qdrant-path DIR` puts the
dense vectors in a Qdrant collection; the index file keeps passages, BM25 and governance and
names the collection, and searches fuse Qdrant's ranking with BM25 as the embedded path does.
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from polyadapt.cli import app as cli_app
from polyadapt.errors import ConfigError, PolyadaptError
from polyadapt.governance.policy import Policy
from polyadapt.retrieval import build_index, list_indexes, open_index

pytest.importorskip("qdrant_client")

LENIENT = Policy(name="docs", max_finding_share=1.0, detectors={"ner": "off"})

DOCUMENTS = {
    "warranty.md": "# Warranty\n\nThe warranty covers parts and labour for two years from delivery.\n",
    "water.md": "# Water damage\n\nWater damage and accidental drops are not covered by the warranty.\n",
    "shipping.txt": "Standard shipping takes five working days to most addresses.\n",
    "express.txt": "Express shipping takes one working day and costs twelve euros extra.\n",
    "returns.md": "# Returns\n\nUnused items may be returned within thirty days for a full refund.\n",
    "software.md": "# Software\n\nOpened software cannot be returned once its seal is broken.\n",
    "office.txt": "The office is closed on public holidays and on Sundays.\n",
    "payment.txt": "Invoices are paid by bank transfer within fourteen days.\n",
}
QUERIES = [
    "what does the warranty cover?",
    "how long does shipping take",
    "can I return opened software",
    "when is the office closed",
    "refund",
]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCUMENTS.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture(autouse=True)
def close_clients():
    """Each test's local Qdrant folders are unlocked at its end."""
    yield
    from polyadapt.retrieval import qdrant

    qdrant.close_all()


def local(path: Path):
    from polyadapt.retrieval.qdrant import QdrantLocation

    return QdrantLocation.from_options(None, path)


def build(docs: Path, name: str = "handbook", **options):
    options.setdefault("licence", "CC-BY-4.0")
    options.setdefault("policy", LENIENT)
    return build_index(name, [docs], **options)


def collections(location) -> list[str]:
    from polyadapt.retrieval import qdrant

    client = qdrant.connect(location, "test")
    return sorted(c.name for c in client.get_collections().collections)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- build and search ------------------------------------------------------------------------


def test_qdrant_search_matches_the_embedded_dense_index(docs, tiny_encoder, tmp_path):
    from polyadapt.retrieval import qdrant

    store = local(tmp_path / "qdrant")
    embedded = build(docs, "embedded", embed=tiny_encoder)
    result = build(docs, "remote", embed=tiny_encoder, vector_engine="qdrant", qdrant=store)
    assert embedded.vectors == {"engine": "sqlite"}
    vectors = result.vectors
    assert vectors is not None and vectors["engine"] == "qdrant" and vectors["path"] == str(tmp_path / "qdrant")
    assert vectors["collection"].startswith("remote-") and collections(store) == [vectors["collection"]]
    assert any("vector engine: qdrant" in line for line in result.lines())
    client = qdrant.connect(store, "remote")
    assert client.count(vectors["collection"]).count == result.passages == 8
    index = open_index("remote")
    assert index.vector_engine == "qdrant" and index.meta["vectors"] == vectors
    conn = sqlite3.connect(index.path)  # the file holds passages and BM25, the vectors are in Qdrant
    assert conn.execute("SELECT count(*) FROM vectors").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM passages").fetchone() == (8,)
    for query in QUERIES:
        expected = open_index("embedded").search(query, k=5)
        found = index.search(query, k=5)
        assert [p.passage_id for p in found] == [p.passage_id for p in expected], query
        assert [p.score for p in found] == pytest.approx([p.score for p in expected])
    # the dense ranking reaches passages no query word matches, as the embedded one does
    assert len(index.search("zebra quantum", k=3)) == 3


def test_a_rebuild_swaps_the_collection_and_drops_the_old_one(docs, tiny_encoder, tmp_path):
    store = local(tmp_path / "qdrant")
    first = build(docs, embed=tiny_encoder, vector_engine="qdrant", qdrant=store)
    index = open_index("handbook")
    assert index.search("office", k=1)[0].text.startswith("The office is closed")
    (docs / "office.txt").write_text("The office opens at nine on weekdays.\n")
    second = build(docs, embed=tiny_encoder, vector_engine="qdrant", qdrant=store)
    assert first.vectors and second.vectors
    assert second.vectors["collection"] != first.vectors["collection"]
    assert collections(store) == [second.vectors["collection"]]
    assert index.search("office", k=1)[0].text.startswith("The office opens")  # the open index follows
    # back to the embedded engine: the Qdrant collection goes too
    third = build(docs, embed=tiny_encoder)
    assert third.vectors == {"engine": "sqlite"} and collections(store) == []
    assert index.search("warranty", k=1)[0].source.endswith("warranty.md#L1-3")


def test_a_failed_build_leaves_no_file_and_no_collection(docs, tiny_encoder, tmp_path, monkeypatch):
    from polyadapt.retrieval import build as build_module
    from polyadapt.retrieval import qdrant

    store = local(tmp_path / "qdrant")
    kept = build(docs, embed=tiny_encoder, vector_engine="qdrant", qdrant=store)
    assert kept.vectors

    def broken(*args, **kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(build_module, "_write_index", broken)
        with pytest.raises(OSError, match="disk full"):
            build(docs, embed=tiny_encoder, vector_engine="qdrant", qdrant=store)
        with pytest.raises(OSError, match="disk full"):
            build(docs, "fresh", embed=tiny_encoder, vector_engine="qdrant", qdrant=store)
    assert collections(store) == [kept.vectors["collection"]]  # the new collections were dropped
    assert list_indexes() == ["handbook"]
    assert open_index("handbook").search("warranty", k=1)  # the old build still answers

    client = qdrant.connect(store, "x")
    real_upsert = client.upsert
    calls = []

    def failing_upsert(*args, **kwargs):
        calls.append(1)
        real_upsert(*args, **kwargs)
        raise RuntimeError("connection reset")

    with monkeypatch.context() as patch:
        patch.setattr(client, "upsert", failing_upsert)
        with pytest.raises(PolyadaptError, match="connection reset"):
            build(docs, "fresh", embed=tiny_encoder, vector_engine="qdrant", qdrant=store)
    assert calls and collections(store) == [kept.vectors["collection"]]
    assert list_indexes() == ["handbook"]


# -- the CLI ---------------------------------------------------------------------------------


def test_cli_build_show_search_remove_with_qdrant(docs, tiny_encoder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    policy = tmp_path / "policy.yaml"
    policy.write_text("name: docs\nmax_finding_share: 1.0\ndetectors: {ner: 'off'}\n")
    built = runner.invoke(
        cli_app,
        ["index", "build", "handbook", "--from", "docs", "--licence", "MIT", "--policy", str(policy)]
        + ["--embed", str(tiny_encoder), "--vector-engine", "qdrant", "--qdrant-path", "vectors"],
    )
    assert built.exit_code == 0, built.output
    assert "vector engine: qdrant, collection handbook-" in built.output
    meta = json.loads(runner.invoke(cli_app, ["index", "show", "handbook", "--json"]).output)
    assert meta["vectors"]["engine"] == "qdrant" and meta["vectors"]["path"] == str(tmp_path / "vectors")
    assert "QDRANT_API_KEY" not in json.dumps(meta["vectors"])  # a local folder has no key to name
    shown = runner.invoke(cli_app, ["index", "show", "handbook"])
    assert "vector engine: qdrant, collection handbook-" in shown.output
    [row] = json.loads(runner.invoke(cli_app, ["index", "list", "--json"]).output)
    assert row["vectors"]["engine"] == "qdrant"
    searched = runner.invoke(cli_app, ["index", "search", "handbook", "how long does shipping take", "--json"])
    assert searched.exit_code == 0, searched.output
    assert len(json.loads(searched.stdout)) == 4  # stderr holds the encoder loading bar
    removed = runner.invoke(cli_app, ["index", "remove", "handbook"])
    assert removed.exit_code == 0, removed.output
    assert f"dropped Qdrant collection {meta['vectors']['collection']}" in removed.output
    assert list_indexes() == [] and collections(local(tmp_path / "vectors")) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--vector-engine", "qdrant", "--qdrant-path", "v"], "give the encoder folder with --embed DIR"),
        (["--embed", "enc", "--vector-engine", "qdrant"], "give --qdrant-url URL"),
        (
            ["--embed", "enc", "--vector-engine", "qdrant", "--qdrant-path", "v", "--qdrant-url", "http://h:6333"],
            "exactly one",
        ),
        (["--embed", "enc", "--qdrant-path", "v"], "need --vector-engine qdrant"),
        (["--embed", "enc", "--vector-engine", "faiss"], "use one of sqlite, qdrant"),
        (
            ["--embed", "enc", "--vector-engine", "qdrant", "--qdrant-url", "http://me:pw@h:6333"],
            "leave credentials out of the URL",
        ),
    ],
)
def test_cli_vector_engine_option_errors(docs, options, message, monkeypatch):
    monkeypatch.chdir(docs.parent)
    result = CliRunner().invoke(cli_app, ["index", "build", "handbook", "--from", "docs", "--licence", "MIT", *options])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert list_indexes() == []


# -- clear errors ----------------------------------------------------------------------------


def test_missing_qdrant_client_names_the_pip_extra(docs, tiny_encoder, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "qdrant_client", None)
    with pytest.raises(PolyadaptError, match=r"pip install 'polyadapt\[retrieval\]'"):
        build(docs, embed=tiny_encoder, vector_engine="qdrant", qdrant=local(tmp_path / "q"))
    assert list_indexes() == []


def test_an_unreachable_server_is_named(docs, tiny_encoder):
    from polyadapt.retrieval.qdrant import QdrantLocation

    url = f"http://127.0.0.1:{free_port()}"
    server = QdrantLocation.from_options(url, None)
    with pytest.raises(PolyadaptError, match="cannot reach the Qdrant server") as caught:
        build(docs, embed=tiny_encoder, vector_engine="qdrant", qdrant=server)
    assert url in str(caught.value) and "--qdrant-path" in str(caught.value)
    assert list_indexes() == []


def test_a_missing_collection_or_other_dimensions_are_errors_naming_the_index(docs, tiny_encoder, tmp_path):
    from qdrant_client import models

    from polyadapt.retrieval import qdrant

    store = local(tmp_path / "qdrant")
    result = build(docs, embed=tiny_encoder, vector_engine="qdrant", qdrant=store)
    assert result.vectors
    collection = result.vectors["collection"]
    client = qdrant.connect(store, "handbook")
    client.delete_collection(collection)
    with pytest.raises(PolyadaptError, match=f"index handbook: its Qdrant collection '{collection}' is missing"):
        open_index("handbook").search("warranty", k=2)
    client.create_collection(collection, vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE))
    with pytest.raises(PolyadaptError, match="'handbook'.*holds 8-dim vectors.*makes 32-dim"):
        open_index("handbook").search("warranty", k=2)


def test_a_collection_of_another_build_is_refused(docs, tiny_encoder, tmp_path):
    from qdrant_client import models

    from polyadapt.retrieval import qdrant

    store = local(tmp_path / "qdrant")
    result = build(docs, embed=tiny_encoder, vector_engine="qdrant", qdrant=store)
    assert result.vectors
    client = qdrant.connect(store, "handbook")
    client.upsert(
        result.vectors["collection"],
        points=[models.PointStruct(id=1, vector=[1.0] * 32, payload={"passage_id": "0" * 16})],
    )
    with pytest.raises(PolyadaptError, match="does not match the index file"):
        open_index("handbook").search("anything at all", k=8)


def test_qdrant_location_records_no_secret(monkeypatch):
    from polyadapt.retrieval.qdrant import QdrantLocation

    monkeypatch.setenv("QDRANT_API_KEY", "s3cret-key")
    location = QdrantLocation.from_options("https://qdrant.example.org:6333/", None)
    assert location.to_meta() == {"url": "https://qdrant.example.org:6333", "api_key_env": "QDRANT_API_KEY"}
    with pytest.raises(ConfigError, match="http"):
        QdrantLocation.from_options("qdrant.example.org:6333", None)


# -- dense model folders ---------------------------------------------------------------------


def test_a_relative_embed_folder_is_recorded_resolved(docs, tiny_encoder, tmp_path, monkeypatch):
    work = tmp_path / "work"
    shutil.copytree(tiny_encoder, work / "models" / "enc")
    monkeypatch.chdir(work)
    result = build(docs, embed=Path("models/enc"))
    assert result.embedding and result.embedding["model"] == str(work / "models" / "enc")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert open_index("handbook").search("how long does shipping take", k=3)  # found from another folder
    shutil.move(work / "models" / "enc", tmp_path / "moved")
    with pytest.raises(PolyadaptError) as caught:
        open_index("handbook").search("warranty", k=3)
    message = str(caught.value)
    assert "'handbook'" in message and str(work / "models" / "enc") in message and "--embed" in message
