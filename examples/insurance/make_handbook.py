#!/usr/bin/env python3
"""Generate Harbourline Mutual's policy handbook and the held-out QA set (deterministic; CC0-1.0).

    python examples/insurance/make_handbook.py    # rewrites handbook/*.md and qa.jsonl here

The handbook states the facts of make_data.py (the same invented insurer and terms) as an
insurer would document them: a Markdown page per term, and an overview of the products. The QA set
(``qa.jsonl``) asks about those facts in the held-out question wording of ``eval.jsonl``
(never a training question) and gives each a short gold answer ("3,000 euros") and the
handbook file that holds it, so a run can compare the base, the base with passages
retrieved from the handbook, the adapter trained on ``train.jsonl``, and both.

Standard library only; the output is byte-identical on every run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_data import FACT_QUESTIONS, POLICIES, TERMS  # noqa: E402

HANDBOOK = HERE / "handbook"
FOOTER = "Harbourline Mutual is an invented insurer; this handbook is CC0-1.0."

#: The product a term belongs to, as the handbook names it.
PRODUCT = {policy: policy for policy in POLICIES} | {"every Harbourline policy": "all Harbourline policies"}

#: Short gold answers to each fact question (term, fact index): the first is the answer a
#: person would give; the others are equivalent phrasings a reply may use instead.
SHORT_ANSWERS: dict[tuple[str, int], list[str]] = {
    ("Solvanta rider", 0): ["3,000 euros"],
    ("Solvanta rider", 1): ["4 euros a month", "4 euros"],
    ("Solvanta rider", 2): ["six years", "6 years"],
    ("Marlowe deductible", 0): ["250 euros"],
    ("Marlowe deductible", 1): ["waived", "does not apply"],
    ("Marlowe deductible", 2): ["it increases", "on top of"],
    ("Quintrel premium", 0): ["every quarter", "quarterly", "every three months"],
    ("Quintrel premium", 1): ["the first working day of the month", "first working day"],
    ("Quintrel premium", 2): ["choose a Verrin excess", "Verrin excess"],
    ("Brackwater peril", 0): ["only with the Halden endorsement", "Halden endorsement"],
    ("Brackwater peril", 1): ["an Ashcombe assessor", "Ashcombe assessor"],
    ("Halden endorsement", 0): ["after a 30-day waiting period", "30 days", "30-day"],
    ("Halden endorsement", 1): ["6 euros a month", "6 euros"],
    ("Corvane score", 0): ["each claim-free year", "claim-free year", "year without a claim"],
    ("Corvane score", 1): ["it falls by two points", "two points", "by two"],
    ("Corvane score", 2): ["a higher score means a lower Quintrel premium", "lower Quintrel premium"],
    ("Pellam grace window", 0): ["21 days"],
    ("Pellam grace window", 1): ["once the missed premium is settled", "missed premium", "overdue premium"],
    ("Verrin excess", 0): ["100, 200 or 300 euros"],
    ("Verrin excess", 1): ["12 percent lower Quintrel premium", "12 percent"],
    ("Orrery waiting period", 0): ["14 days"],
    ("Orrery waiting period", 1): ["yes, it does not apply to medical emergencies", "does not apply", "first day"],
    ("Fenwick clause", 0): ["no, it is free of charge", "free of charge", "no extra charge", "no fee"],
    ("Fenwick clause", 1): ["two claims a year", "two claims", "twice a year"],
    ("Ashcombe assessor", 0): ["claims above 5,000 euros", "5,000 euros"],
    ("Ashcombe assessor", 1): ["within five working days", "five working days"],
    ("Dunmere form", 0): ["within 30 days of the loss", "30 days"],
    ("Dunmere form", 1): ["photos of the damage", "photos", "photographs", "pictures"],
}


def slug(term: str) -> str:
    """The file name of ``term``'s handbook page: ``solvanta-rider.md``."""
    return term.lower().replace(" ", "-") + ".md"


def render_term(term: str) -> str:
    """The handbook page of one term: what it is, then its facts (first phrasing of each)."""
    entry = TERMS[term]
    lines = [f"# {term}", "", f"Applies to: {PRODUCT[entry['policy']]}.", "", entry["what"][0], ""]
    lines += [f"- {fact[0]}" for fact in entry["facts"]]
    lines += ["", FOOTER, ""]
    return "\n".join(lines)


def render_products() -> str:
    """The handbook's overview page: the three products and the terms each uses."""
    lines = ["# Harbourline Mutual products", ""]
    for policy, what in sorted(POLICIES.items()):
        terms = sorted(t for t, entry in TERMS.items() if entry["policy"] == policy)
        lines += [f"## {policy}", "", f"The {policy} {what}. See: {', '.join(terms)}.", ""]
    shared = sorted(t for t, entry in TERMS.items() if entry["policy"] not in POLICIES)
    lines += ["## Every policy", "", f"These apply to every Harbourline policy: {', '.join(shared)}.", ""]
    lines += [FOOTER, ""]
    return "\n".join(lines)


def qa_records() -> list[dict]:
    """One record per fact question, asked in its held-out (eval-only) wording."""
    missing = set(FACT_QUESTIONS) ^ set(SHORT_ANSWERS)
    assert not missing, f"fact questions and short answers differ: {sorted(missing)}"
    records = []
    for (term, index), (_, eval_questions) in sorted(FACT_QUESTIONS.items()):
        records.append(
            {
                "question": eval_questions[0],
                "answers": SHORT_ANSWERS[(term, index)],
                "source": f"handbook/{slug(term)}",
            }
        )
    return records


def main() -> None:
    HANDBOOK.mkdir(exist_ok=True)
    pages = {slug(term): render_term(term) for term in sorted(TERMS)} | {"products.md": render_products()}
    for stale in set(p.name for p in HANDBOOK.glob("*.md")) - set(pages):
        (HANDBOOK / stale).unlink()
    for name, text in sorted(pages.items()):
        (HANDBOOK / name).write_text(text, encoding="utf-8")
    records = qa_records()
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    (HERE / "qa.jsonl").write_text(text, encoding="utf-8")
    print(f"wrote {len(pages)} handbook pages to {HANDBOOK} and {len(records)} questions to {HERE / 'qa.jsonl'}")


if __name__ == "__main__":
    main()
