"""spaCy loads only when a policy that asks for named-entity recognition scans text: a policy
with ``detectors.ner: off`` never imports it (building the scanners, a redactor, scanning,
``Redactor.load``), and one with NER loads the pipeline on the first text it scans, not before."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_governance_ner import ner_or_skip

from polyadapt.governance import ner
from polyadapt.governance.policy import Policy
from polyadapt.governance.redact import Redactor
from polyadapt.governance.scanners import builtin_scanners, pattern_scanners

KEY = b"k" * 32
TEXT = "Dr. Amara Okafor (amara@example.org) lives at 12 Kingsley Road, Manchester M14 6BR."

_CHILD = """
import json, sys
from polyadapt.governance.policy import Policy
from polyadapt.governance.redact import Redactor
from polyadapt.governance.scanners import builtin_scanners

policy = Policy(detectors={"ner": sys.argv[1]})
seen = {}
redactor = Redactor(policy, builtin_scanners(policy), b"k" * 32)
seen["built"] = "spacy" in sys.modules
if sys.argv[2] == "load":
    redactor.load()
with redactor.primed([sys.argv[3]]):
    outcome = redactor.apply(sys.argv[3])
seen["scanned"] = "spacy" in sys.modules
seen["presidio"] = "presidio_analyzer" in sys.modules
seen["types"] = sorted(outcome.findings)
print(json.dumps(seen))
"""


def _child(ner_setting: str, load: bool) -> dict:
    """What a fresh process imported while it built and used a redactor of that policy."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, ner_setting, "load" if load else "scan", TEXT],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_policy_without_ner_never_imports_spacy():
    seen = _child("off", load=True)
    assert seen == {"built": False, "scanned": False, "presidio": False, "types": ["address", "email"]}


def test_the_person_scanner_loads_its_model_on_the_first_text_it_scans(monkeypatch, tmp_path):
    loads: list[object] = []

    class Loaded(Exception):
        """Raised by the counting loader: the model would load here."""

    def counting_loader(model_path=None):
        loads.append(model_path)
        raise Loaded

    monkeypatch.setattr(ner, "load_engine", counting_loader)
    scanner = ner.PersonNameScanner(tmp_path)
    redactor = Redactor(Policy(), [*pattern_scanners(), scanner], KEY)
    assert loads == []  # building the scanner and the redactor loads nothing
    redactor.apply("all lower case, nothing for a name model to read: call 212-867-5309")
    assert loads == []  # a text without a capitalised word never reaches the model
    with pytest.raises(Loaded):
        redactor.apply(TEXT)
    assert loads == [tmp_path]


def test_builtin_scanners_without_a_policy_are_the_pattern_scanners():
    assert [s.name for s in builtin_scanners()] == [s.name for s in pattern_scanners()]
    assert "ner" not in [s.name for s in builtin_scanners(Policy(detectors={"ner": "off"}))]


@pytest.mark.slow
def test_a_policy_with_ner_loads_spacy_when_it_scans_text_and_not_before():
    ner_or_skip()
    seen = _child("on", load=False)
    assert seen["built"] is False
    assert seen["scanned"] is True and seen["presidio"] is True
    assert "person" in seen["types"]
