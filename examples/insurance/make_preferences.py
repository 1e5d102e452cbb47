#!/usr/bin/env python3
"""Generate preference pairs for the insurance example's DPO run (deterministic; CC0-1.0).

    python examples/insurance/make_preferences.py   # rewrites preferences_train.jsonl and preferences_eval.jsonl

The facts are make_data.py's invented ones (Harbourline Mutual, the Solvanta rider, ...).
Each record is ``{"prompt": [system, user], "chosen": str, "rejected": str, "flaw": str}``:

- ``chosen``: the correct fact, brief and polite; a request the assistant may not settle
  itself (a complaint, a disputed or refused claim, a cancellation, a legal threat, an
  emergency abroad) is escalated as the house rules say, without promising an outcome;
- ``rejected`` has one flaw, named in ``flaw``: ``wrong figure`` (the fact with another
  number), ``wrong fact`` (another term's fact), ``rude`` (a dismissive non-answer) or
  ``made-up commitment`` (the fact plus a promise nobody can make, or a settled escalation).

As in make_data.py the two files share facts but not wording: question frames, the fact
phrasing used (the last one of each goes to eval), rude replies and promises are split, so
the held-out accuracy measures the preference learnt, not the sentences. (The five
escalation answers are the house wording and appear in both files; their questions do not.)
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from make_data import FACT_QUESTIONS, SYSTEM, TERMS, split, write_jsonl

HERE = Path(__file__).resolve().parent
SEED = 20240612
N_TRAIN = 240
N_EVAL = 60

OPENERS = (["Sure. ", "Of course. ", "Happy to help. ", "Good question. "], ["Certainly. ", "Thanks for asking. "])
RUDE = (
    [
        "That is in your policy documents. Read them yourself.",
        "Not my job to explain that. Look it up.",
        "Why are you asking me? Figure it out on your own.",
        "I don't have time for this kind of question.",
        "Obviously it's in the contract. Stop asking.",
    ],
    [
        "Honestly, read the small print like everyone else.",
        "Ask someone else, I'm not here for basic questions.",
    ],
)
PROMISES = (
    [
        " I have already approved your claim, so the money will arrive tomorrow.",
        " We guarantee you a full refund, whatever happens.",
        " I can waive that for you personally, just this once.",
        " I'll make sure you never pay a premium increase.",
    ],
    [
        " Don't worry, I have personally cancelled that rule for you.",
        " I promise every claim you make will be paid in full.",
    ],
)
ESCALATIONS = {
    # (question frames for train, for eval)
    "complaint": (
        ["I want to complain about how my claim was handled.", "Your service has been terrible. I want to complain."],
        ["How do I make a formal complaint about Harbourline?"],
    ),
    "refused claim": (
        ["My claim was refused. Can you overturn the decision?", "Can you change the decision on my rejected claim?"],
        ["Harbourline turned down my claim. Will you pay it now?"],
    ),
    "cancellation": (
        ["I want to cancel my policy today and get my money back.", "Cancel my policy right now, please."],
        ["Please end my contract immediately and refund me."],
    ),
    "legal": (
        ["I am taking Harbourline to court over my claim.", "My lawyer says you owe me money. What now?"],
        ["I will sue unless my claim is paid this week."],
    ),
    "emergency": (
        ["I am abroad and had an accident. I need a hospital now.", "My child is ill on holiday. What do I do?"],
        ["I'm in hospital abroad after a fall. Will you cover it?"],
    ),
}
ESCALATE_CHOSEN = {
    "complaint": "I'm sorry to hear that. Complaints go to our complaints team, who will reply in writing; "
    "I have noted your request so they can contact you.",
    "refused claim": "I understand this is frustrating. I cannot change a claim decision myself; a claims "
    "handler will review it and contact you.",
    "cancellation": "Of course. Cancellations are handled by our policy team, who will confirm the date and any "
    "refund with you; I have passed on your request.",
    "legal": "I understand. Legal matters go to our legal team, and I have passed on your message so they can "
    "contact you.",
    "emergency": "Please get medical help first. Then call the Harbourline emergency line; the team there will "
    "tell you what is covered.",
}
ESCALATE_REJECTED = (
    [
        "No problem, I have approved it myself and the money will be paid today.",
        "Done, I have settled everything for you, and you will get a full refund.",
        "Don't worry, I guarantee you will win and we will pay everything.",
    ],
    ["Consider it sorted: I promise you a full payout by tomorrow."],
)
NUMBER_WORDS = {"one": "three", "two": "four", "five": "ten", "six": "two", "twelve": "twenty"}


def wrong_figure(rng: random.Random, sentence: str) -> str | None:
    """``sentence`` with its first figure changed, or None when it has none."""
    match = re.search(r"\d[\d,]*", sentence)
    if match:
        value = int(match.group().replace(",", ""))
        other = value * rng.choice([2, 3]) if value < 4 or rng.random() < 0.5 else value // 2  # never equal
        text = f"{other:,}" if "," in match.group() else str(other)
        return sentence[: match.start()] + text + sentence[match.end() :]
    words = [w for w in NUMBER_WORDS if re.search(rf"\b{w}\b", sentence)]
    if words:
        return re.sub(rf"\b{words[0]}\b", NUMBER_WORDS[words[0]], sentence, count=1)
    return None


def prompt(user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def fact_pair(rng: random.Random, for_eval: bool) -> dict:
    side = 1 if for_eval else 0
    (term, index), frames = rng.choice(sorted(FACT_QUESTIONS.items()))
    question = rng.choice(frames[side])
    fact = rng.choice(split(TERMS[term]["facts"][index], for_eval))
    opener = rng.choice(OPENERS[side])  # the same in both answers: the flaw is the only difference
    chosen = opener + fact
    flaws = ["wrong fact", "rude", "made-up commitment"] + (["wrong figure"] * 2 if wrong_figure(rng, fact) else [])
    flaw = rng.choice(flaws)
    if flaw == "wrong figure":
        rejected = opener + str(wrong_figure(rng, fact))
    elif flaw == "wrong fact":
        others = [
            phrasing
            for key in sorted(FACT_QUESTIONS)
            if key[0] != term
            for phrasing in split(TERMS[key[0]]["facts"][key[1]], for_eval)
            if phrasing != fact  # two terms may word a fact alike ("It lasts 14 days.")
        ]
        rejected = opener + rng.choice(others)
    elif flaw == "rude":
        rejected = rng.choice(RUDE[side])
    else:
        rejected = chosen + rng.choice(PROMISES[side])
    return {"prompt": prompt(question), "chosen": chosen, "rejected": rejected, "flaw": flaw}


def escalation_pair(rng: random.Random, for_eval: bool) -> dict:
    side = 1 if for_eval else 0
    topic, frames = rng.choice(sorted(ESCALATIONS.items()))
    rejected = rng.choice(ESCALATE_REJECTED[side]) if rng.random() < 0.7 else rng.choice(RUDE[side])
    flaw = "rude" if rejected in RUDE[side] else "made-up commitment"
    return {
        "prompt": prompt(rng.choice(frames[side])),
        "chosen": ESCALATE_CHOSEN[topic],
        "rejected": rejected,
        "flaw": flaw,
    }


def generate(n: int, for_eval: bool, seed: int, avoid: set[str] = frozenset()) -> list[dict]:
    """``n`` distinct pairs (about one in five an escalation), none of them in ``avoid``."""
    rng = random.Random(seed)
    records, seen = [], set(avoid)
    while len(records) < n:
        record = escalation_pair(rng, for_eval) if rng.random() < 0.2 else fact_pair(rng, for_eval)
        key = json.dumps(record, sort_keys=True)
        if key in seen and len(seen) < 50 * n:
            continue
        seen.add(key)
        records.append(record)
    return records


def main() -> None:
    train = generate(N_TRAIN, for_eval=False, seed=SEED)
    held_out = generate(N_EVAL, for_eval=True, seed=SEED + 1)
    train_prompts = {json.dumps(r["prompt"]) for r in train}
    assert not any(json.dumps(r["prompt"]) in train_prompts for r in held_out), "eval asks a train question"
    write_jsonl(HERE / "preferences_train.jsonl", train)
    write_jsonl(HERE / "preferences_eval.jsonl", held_out)
    print(f"wrote {len(train)} train and {len(held_out)} eval preference pairs to {HERE}")


if __name__ == "__main__":
    main()
