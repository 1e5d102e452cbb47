#!/usr/bin/env python3
"""Generate the quickstart's insurance-domain chat data (deterministic; CC0-1.0).

    python examples/insurance/make_data.py        # rewrites train.jsonl and eval.jsonl here

Everything here is invented: the insurer (Harbourline Mutual), its policies and its terms
("Solvanta rider", "Marlowe deductible", ...) exist nowhere else, so a pretrained model
cannot know them and any gain on the held-out file comes from the adaptation.

The records are chats ({"messages": [system, user, assistant]}), the shape most
instruction data has. The two files share the facts but not the wording:

- questions: every question frame belongs to exactly one file;
- answers: every fact has several phrasings, and the last one of each is kept for eval;
  openers and closers are split the same way;
- no eval conversation repeats a train one (checked).

So the held-out score measures whether the model learnt the domain, not the sentences.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20240611
N_TRAIN = 360
N_EVAL = 60

SYSTEM = "You are the policy assistant of Harbourline Mutual, an insurer. Answer clearly and briefly."

# Each term: what it is (phrasings), facts (each a list of phrasings), the policy it belongs to.
# The last phrasing of every list is reserved for the eval file.
TERMS: dict[str, dict] = {
    "Solvanta rider": {
        "policy": "Kestrel Home policy",
        "what": [
            "The Solvanta rider is an optional add-on to the Kestrel Home policy that covers accidental damage to home electronics.",
            "A Solvanta rider extends the Kestrel Home policy to accidental damage to laptops, televisions and other electronics at home.",
            "The Solvanta rider is the electronics add-on of the Kestrel Home policy: it pays for accidental damage to your devices.",
            "Think of the Solvanta rider as accidental-damage cover for your electronics, bolted onto a Kestrel Home policy.",
        ],
        "facts": [
            [
                "It pays up to 3,000 euros per claim.",
                "Each Solvanta claim is paid up to a limit of 3,000 euros.",
                "The most it pays for a single claim is 3,000 euros.",
                "Its limit is 3,000 euros for each claim.",
            ],
            [
                "It costs 4 euros a month on top of the Quintrel premium.",
                "Adding it raises your Quintrel premium by 4 euros a month.",
                "The rider adds 4 euros a month to the Quintrel premium.",
                "You pay an extra 4 euros each month, added to your Quintrel premium.",
            ],
            [
                "Devices older than six years are excluded.",
                "It does not cover devices that are more than six years old.",
                "Anything older than six years falls outside the rider.",
                "Electronics over six years old are not covered by it.",
            ],
        ],
    },
    "Marlowe deductible": {
        "policy": "Lumen Drive policy",
        "what": [
            "The Marlowe deductible is the fixed amount you pay yourself on every claim under the Lumen Drive policy.",
            "Under the Lumen Drive policy, the Marlowe deductible is the part of each claim that you cover before Harbourline pays.",
            "The Marlowe deductible is the standard excess of the Lumen Drive motor policy.",
            "On a Lumen Drive policy, the Marlowe deductible is the share of every claim that stays with you.",
        ],
        "facts": [
            [
                "It is 250 euros per claim.",
                "The Marlowe deductible is set at 250 euros for each claim.",
                "You pay the first 250 euros of each claim.",
                "The amount is 250 euros on every claim.",
            ],
            [
                "It is waived for windscreen and glass repairs.",
                "Glass and windscreen repairs are exempt from it.",
                "You do not pay it when the claim is only for a windscreen or other glass.",
                "For a glass-only repair, such as a cracked windscreen, it does not apply.",
            ],
            [
                "Adding a Verrin excess increases it.",
                "A Verrin excess is charged on top of it.",
                "If you chose a Verrin excess, that amount comes on top of the Marlowe deductible.",
                "Any Verrin excess you picked is added to it.",
            ],
        ],
    },
    "Quintrel premium": {
        "policy": "every Harbourline policy",
        "what": [
            "The Quintrel premium is the monthly price of a Harbourline Mutual policy.",
            "Quintrel premium is Harbourline's name for the amount you pay each month for your cover.",
            "The Quintrel premium is what you pay every month to keep a Harbourline policy in force.",
            "Your Quintrel premium is the monthly charge for your Harbourline cover.",
        ],
        "facts": [
            [
                "It is recalculated every quarter from your Corvane score.",
                "Each quarter it is worked out again using your Corvane score.",
                "Harbourline reviews it every three months based on the Corvane score.",
                "Every quarter the Corvane score is used to set it afresh.",
            ],
            [
                "It is collected on the first working day of the month.",
                "Payment is taken on the first working day of each month.",
                "It is debited on the first working day of every month.",
                "The money leaves your account on the first working day of the month.",
            ],
            [
                "Choosing a Verrin excess lowers it by 12 percent.",
                "A Verrin excess brings it down by 12 percent.",
                "It drops by 12 percent if you take a Verrin excess.",
                "With a Verrin excess you pay 12 percent less.",
            ],
        ],
    },
    "Brackwater peril": {
        "policy": "Kestrel Home policy",
        "what": [
            "A Brackwater peril is flooding in your home caused by a burst public water main.",
            "Brackwater peril is Harbourline's term for water damage from a burst water main in the street.",
            "The Brackwater peril means flooding that starts from a broken public water main rather than from rain or rivers.",
            "Harbourline calls flooding from a burst water main outside your home a Brackwater peril.",
        ],
        "facts": [
            [
                "It is covered only if your Kestrel Home policy has the Halden endorsement.",
                "Cover for it comes only with the Halden endorsement on a Kestrel Home policy.",
                "Without the Halden endorsement, a Kestrel Home policy does not cover it.",
                "You are protected against it only when the Halden endorsement is on your Kestrel Home policy.",
            ],
            [
                "Claims for it are inspected by an Ashcombe assessor.",
                "An Ashcombe assessor visits for every Brackwater claim.",
                "Every Brackwater claim gets a visit from an Ashcombe assessor.",
                "Each such claim is checked on site by an Ashcombe assessor.",
            ],
        ],
    },
    "Halden endorsement": {
        "policy": "Kestrel Home policy",
        "what": [
            "The Halden endorsement is an add-on to the Kestrel Home policy that covers the Brackwater peril.",
            "A Halden endorsement adds cover for Brackwater flooding to a Kestrel Home policy.",
            "The Halden endorsement is what extends a Kestrel Home policy to flooding from a burst water main.",
            "Adding the Halden endorsement to a Kestrel Home policy brings in cover for the Brackwater peril.",
        ],
        "facts": [
            [
                "It starts after a 30-day waiting period.",
                "Cover under it begins only after 30 days.",
                "There is a waiting period of 30 days before it applies.",
                "It takes effect once a 30-day waiting period has passed.",
            ],
            [
                "It costs 6 euros a month.",
                "Its price is 6 euros a month on top of the Quintrel premium.",
                "It adds 6 euros a month to what you pay.",
                "You pay 6 euros a month more for it.",
            ],
        ],
    },
    "Corvane score": {
        "policy": "every Harbourline policy",
        "what": [
            "The Corvane score is Harbourline Mutual's no-claims rating, from 0 to 9.",
            "Your Corvane score is a number from 0 to 9 that records how long you have gone without a claim.",
            "The Corvane score is the no-claims scale Harbourline uses, running from 0 up to 9.",
            "Harbourline rates your claims history with the Corvane score, a scale from 0 to 9.",
        ],
        "facts": [
            [
                "It rises by one for each claim-free year.",
                "Every year without a claim adds one point to it.",
                "Each claim-free year raises it by one point.",
                "A year with no claims moves it up by one.",
            ],
            [
                "A claim lowers it by two points.",
                "Each claim takes two points off it.",
                "Making a claim reduces it by two.",
                "It falls by two points whenever you claim.",
            ],
            [
                "A higher Corvane score means a lower Quintrel premium.",
                "The higher it is, the less your Quintrel premium costs.",
                "The Quintrel premium goes down as the Corvane score goes up.",
                "A better score brings your Quintrel premium down.",
            ],
        ],
    },
    "Pellam grace window": {
        "policy": "every Harbourline policy",
        "what": [
            "The Pellam grace window is the time you have to pay a missed Quintrel premium before your cover lapses.",
            "If a payment fails, the Pellam grace window is the period in which you can still pay and keep your cover.",
            "The Pellam grace window protects your cover for a while after a missed payment.",
            "Harbourline's Pellam grace window gives you time to make up a missed Quintrel premium.",
        ],
        "facts": [
            [
                "It lasts 21 days.",
                "You have 21 days.",
                "The window is 21 days long.",
                "It runs for 21 days from the missed payment.",
            ],
            [
                "Claims made during it are paid once the missed premium is settled.",
                "A claim made inside the window is paid as soon as you settle the missed premium.",
                "If you claim during it, Harbourline pays once the premium is paid.",
                "Claims inside the window are honoured after the overdue premium comes in.",
            ],
        ],
    },
    "Verrin excess": {
        "policy": "Lumen Drive policy",
        "what": [
            "The Verrin excess is a voluntary extra excess you can choose on a Lumen Drive policy.",
            "A Verrin excess is an optional amount you agree to pay on each claim, on top of the Marlowe deductible.",
            "The Verrin excess is an additional, voluntary excess offered with the Lumen Drive policy.",
            "Choosing a Verrin excess means agreeing to carry more of each claim yourself.",
        ],
        "facts": [
            [
                "You can set it at 100, 200 or 300 euros.",
                "It comes in steps of 100, 200 or 300 euros.",
                "The choices are 100, 200 or 300 euros.",
                "You pick 100, 200 or 300 euros.",
            ],
            [
                "In return your Quintrel premium is 12 percent lower.",
                "It cuts the Quintrel premium by 12 percent.",
                "Taking it lowers your Quintrel premium by 12 percent.",
                "You save 12 percent on the Quintrel premium.",
            ],
        ],
    },
    "Orrery waiting period": {
        "policy": "Tessaly Travel policy",
        "what": [
            "The Orrery waiting period is the time before a new Tessaly Travel policy covers trip cancellation.",
            "Under the Tessaly Travel policy, the Orrery waiting period is when cancellation cover has not started yet.",
            "The Orrery waiting period is the delay between buying a Tessaly Travel policy and being covered for cancelled trips.",
            "A new Tessaly Travel policy has an Orrery waiting period before its cancellation cover begins.",
        ],
        "facts": [
            [
                "It lasts 14 days.",
                "It is 14 days long.",
                "The period is 14 days.",
                "It runs for 14 days from the start of the policy.",
            ],
            [
                "It does not apply to medical emergencies abroad.",
                "Emergency medical cover abroad starts at once, without it.",
                "Medical emergencies while travelling are covered from the first day regardless.",
                "It never delays cover for a medical emergency abroad.",
            ],
        ],
    },
    "Fenwick clause": {
        "policy": "Kestrel Home policy",
        "what": [
            "The Fenwick clause restores the full sum insured of a Kestrel Home policy after a claim is paid.",
            "Under the Fenwick clause, your Kestrel Home cover goes back to its full amount after a claim.",
            "The Fenwick clause is the reinstatement clause of the Kestrel Home policy.",
            "Thanks to the Fenwick clause, a paid claim does not use up your Kestrel Home sum insured.",
        ],
        "facts": [
            [
                "The reinstatement is free of charge.",
                "There is no extra charge for the reinstatement.",
                "Harbourline does not charge for restoring the cover.",
                "Restoring the sum insured costs you nothing.",
            ],
            [
                "It applies to up to two claims a year.",
                "It works for at most two claims in any policy year.",
                "It covers no more than two claims per year.",
                "The limit is two reinstatements a year.",
            ],
        ],
    },
    "Ashcombe assessor": {
        "policy": "every Harbourline policy",
        "what": [
            "An Ashcombe assessor is the loss adjuster Harbourline Mutual sends to inspect larger claims.",
            "The Ashcombe assessor is Harbourline's own claims inspector.",
            "Ashcombe assessors are the adjusters who check damage on site for Harbourline Mutual.",
            "An Ashcombe assessor is the person Harbourline sends to look at the damage before a large claim is paid.",
        ],
        "facts": [
            [
                "One visits for every claim above 5,000 euros.",
                "Claims over 5,000 euros always get a visit from one.",
                "Any claim above 5,000 euros is inspected by one.",
                "You can expect a visit for any claim larger than 5,000 euros.",
            ],
            [
                "The visit is arranged within five working days.",
                "Harbourline books the visit within five working days.",
                "The inspection takes place within five working days.",
                "You will be visited within five working days of the claim.",
            ],
        ],
    },
    "Dunmere form": {
        "policy": "every Harbourline policy",
        "what": [
            "The Dunmere form is Harbourline Mutual's claim form.",
            "A Dunmere form is what you fill in to make a claim with Harbourline.",
            "The Dunmere form is the document that starts every Harbourline claim.",
            "Every claim with Harbourline begins with a Dunmere form.",
        ],
        "facts": [
            [
                "It must be filed within 30 days of the loss.",
                "You have 30 days from the loss to send it in.",
                "It has to reach Harbourline within 30 days of the damage.",
                "File it no later than 30 days after the loss.",
            ],
            [
                "Photos of the damage should be attached to it.",
                "Attach photographs of the damage to it.",
                "It should come with photos of what was damaged.",
                "Include pictures of the damage with it.",
            ],
        ],
    },
}

POLICIES = {
    "Kestrel Home policy": "covers your home's buildings and contents",
    "Lumen Drive policy": "is Harbourline's motor insurance for private cars",
    "Tessaly Travel policy": "covers trips abroad, including cancellation and medical emergencies",
}

# Question frames: the first group is used for train only, the second for eval only.
QUESTIONS_TRAIN = [
    "What is the {term}?",
    "Can you explain the {term}?",
    "What does {term} mean?",
    "How does the {term} work?",
    "My renewal letter mentions the {term}. What is that?",
    "Tell me about the {term}.",
    "I'm new to Harbourline. What's a {term}?",
    "Quick question: what is the {term} for?",
    "Could you describe the {term} in simple terms?",
    "What should I know about the {term}?",
]
QUESTIONS_EVAL = [
    "I don't understand the {term}. Could you help?",
    "Explain the {term}, please.",
    "What exactly is a {term}?",
    "Someone on the phone talked about the {term}. What is it?",
]
OPENERS_TRAIN = ["", "", "Sure. ", "Of course. ", "Happy to explain. ", "Good question. "]
OPENERS_EVAL = ["", "Certainly. "]
CLOSERS_TRAIN = ["", "", "", " Your policy documents list the details.", " Let me know if you have other questions."]
CLOSERS_EVAL = ["", " I hope that helps."]

# Fact questions: (question frames for train, for eval), answered by one fact of a term.
FACT_QUESTIONS = {
    ("Solvanta rider", 0): (
        ["How much does the Solvanta rider pay out?", "What is the limit of the Solvanta rider?"],
        ["Is there a maximum on a Solvanta rider claim?"],
    ),
    ("Solvanta rider", 1): (
        ["How much does the Solvanta rider cost?", "What's the price of adding a Solvanta rider?"],
        ["Will a Solvanta rider make my policy more expensive?"],
    ),
    ("Solvanta rider", 2): (
        ["Does the Solvanta rider cover my old laptop?", "Are old devices covered by the Solvanta rider?"],
        ["My television is eight years old. Is it under the Solvanta rider?"],
    ),
    ("Marlowe deductible", 0): (
        ["How much is the Marlowe deductible?", "What do I pay under the Marlowe deductible?"],
        ["What amount is the Marlowe deductible?"],
    ),
    ("Marlowe deductible", 1): (
        [
            "Do I pay the Marlowe deductible for a cracked windscreen?",
            "Does the Marlowe deductible apply to glass repairs?",
        ],
        ["A stone chipped my windscreen. Will the Marlowe deductible apply?"],
    ),
    ("Marlowe deductible", 2): (
        ["How does a Verrin excess affect the Marlowe deductible?"],
        ["If I pick a Verrin excess, what happens to my Marlowe deductible?"],
    ),
    ("Quintrel premium", 0): (
        ["How often does my Quintrel premium change?", "Why did my Quintrel premium go up this quarter?"],
        ["When is the Quintrel premium reviewed?"],
    ),
    ("Quintrel premium", 1): (
        ["When is the Quintrel premium taken from my account?", "On what day do you collect the Quintrel premium?"],
        ["Which day of the month is the Quintrel premium paid?"],
    ),
    ("Quintrel premium", 2): (
        ["How can I lower my Quintrel premium?"],
        ["Is there a way to make my Quintrel premium cheaper?"],
    ),
    ("Brackwater peril", 0): (
        [
            "Is the Brackwater peril covered by my Kestrel Home policy?",
            "A water main burst and flooded my cellar. Am I covered?",
        ],
        ["Does a standard Kestrel Home policy pay for a Brackwater peril?"],
    ),
    ("Brackwater peril", 1): (
        ["Who inspects a Brackwater claim?"],
        ["Will someone come to look at my Brackwater damage?"],
    ),
    ("Halden endorsement", 0): (
        ["When does the Halden endorsement start?", "Is there a waiting period on the Halden endorsement?"],
        ["I just added the Halden endorsement. Am I covered today?"],
    ),
    ("Halden endorsement", 1): (
        ["How much is the Halden endorsement?"],
        ["What does the Halden endorsement cost each month?"],
    ),
    ("Corvane score", 0): (
        ["How do I improve my Corvane score?", "How does my Corvane score go up?"],
        ["What raises a Corvane score?"],
    ),
    ("Corvane score", 1): (
        ["What happens to my Corvane score if I claim?", "Will a claim hurt my Corvane score?"],
        ["Does making a claim change the Corvane score?"],
    ),
    ("Corvane score", 2): (
        ["Why does the Corvane score matter?"],
        ["How is my Corvane score linked to the price I pay?"],
    ),
    ("Pellam grace window", 0): (
        ["How long is the Pellam grace window?", "I missed a payment. How long do I have?"],
        ["How many days does the Pellam grace window give me?"],
    ),
    ("Pellam grace window", 1): (
        ["Can I claim during the Pellam grace window?"],
        ["What if I need to claim while my payment is late?"],
    ),
    ("Verrin excess", 0): (
        ["What amounts can I choose for a Verrin excess?", "How big can a Verrin excess be?"],
        ["Which Verrin excess levels are there?"],
    ),
    ("Verrin excess", 1): (
        ["What do I get for choosing a Verrin excess?", "Does a Verrin excess save me money?"],
        ["Why would anyone take a Verrin excess?"],
    ),
    ("Orrery waiting period", 0): (
        [
            "How long is the Orrery waiting period?",
            "When can I claim for a cancelled trip on a new Tessaly Travel policy?",
        ],
        ["How many days is the Orrery waiting period?"],
    ),
    ("Orrery waiting period", 1): (
        ["Does the Orrery waiting period apply if I fall ill abroad?"],
        ["Am I covered for a medical emergency during the Orrery waiting period?"],
    ),
    ("Fenwick clause", 0): (
        ["Do I pay to have my cover restored under the Fenwick clause?"],
        ["Is there a fee for the Fenwick clause?"],
    ),
    ("Fenwick clause", 1): (
        ["How many claims does the Fenwick clause cover?", "Is there a limit on the Fenwick clause?"],
        ["How often can the Fenwick clause be used?"],
    ),
    ("Ashcombe assessor", 0): (
        ["When does an Ashcombe assessor visit?", "Will an Ashcombe assessor come for my claim?"],
        ["Which claims get an Ashcombe assessor?"],
    ),
    ("Ashcombe assessor", 1): (
        ["How soon will the Ashcombe assessor come?"],
        ["How long until an Ashcombe assessor visits?"],
    ),
    ("Dunmere form", 0): (
        ["When do I have to send the Dunmere form?", "Is there a deadline for the Dunmere form?"],
        ["How long do I have to file a Dunmere form?"],
    ),
    ("Dunmere form", 1): (
        ["What should I include with the Dunmere form?"],
        ["Do I need to add anything to my Dunmere form?"],
    ),
}

COMPARE_TRAIN = ["What is the difference between the {a} and the {b}?", "How do the {a} and the {b} differ?"]
COMPARE_EVAL = ["Are the {a} and the {b} the same thing?"]
POLICY_Q_TRAIN = ["What does the {policy} cover?", "Tell me about the {policy}."]
POLICY_Q_EVAL = ["Is the {policy} right for me? What is it?"]


def split(options: list[str], for_eval: bool) -> list[str]:
    """Train gets every phrasing but the last; eval gets only the last."""
    return options[-1:] if for_eval else options[:-1]


def describe(rng: random.Random, term: str, for_eval: bool, n_facts: int) -> str:
    entry = TERMS[term]
    sentences = [rng.choice(split(entry["what"], for_eval))]
    facts = rng.sample(entry["facts"], min(n_facts, len(entry["facts"])))
    sentences += [rng.choice(split(fact, for_eval)) for fact in facts]
    return " ".join(sentences)


def chat(user: str, assistant: str) -> dict:
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ]
    }


def make_record(rng: random.Random, for_eval: bool) -> dict:
    openers = OPENERS_EVAL if for_eval else OPENERS_TRAIN
    closers = CLOSERS_EVAL if for_eval else CLOSERS_TRAIN
    kind = rng.choices(["define", "fact", "compare", "policy"], weights=[5, 6, 2, 1])[0]
    terms = sorted(TERMS)
    if kind == "define":
        term = rng.choice(terms)
        question = rng.choice(QUESTIONS_EVAL if for_eval else QUESTIONS_TRAIN).format(term=term)
        answer = describe(rng, term, for_eval, rng.randint(1, 2))
    elif kind == "fact":
        (term, index), (train_qs, eval_qs) = rng.choice(sorted(FACT_QUESTIONS.items()))
        question = rng.choice(eval_qs if for_eval else train_qs)
        fact = rng.choice(split(TERMS[term]["facts"][index], for_eval))
        lead = rng.choice(split(TERMS[term]["what"], for_eval)) + " " if rng.random() < 0.3 else ""
        answer = lead + fact
    elif kind == "compare":
        a, b = rng.sample(terms, 2)
        question = rng.choice(COMPARE_EVAL if for_eval else COMPARE_TRAIN).format(a=a, b=b)
        answer = f"They are different things. {describe(rng, a, for_eval, 1)} {describe(rng, b, for_eval, 1)}"
    else:
        policy = rng.choice(sorted(POLICIES))
        question = rng.choice(POLICY_Q_EVAL if for_eval else POLICY_Q_TRAIN).format(policy=policy)
        related = sorted(t for t, e in TERMS.items() if e["policy"] == policy)
        extras = rng.sample(related, min(2, len(related)))
        answer = f"The {policy} {POLICIES[policy]}. " + " ".join(
            rng.choice(split(TERMS[t]["what"], for_eval)) for t in extras
        )
    return chat(question, rng.choice(openers) + answer + rng.choice(closers))


def generate(n: int, for_eval: bool, seed: int, avoid: set[str] = frozenset()) -> list[dict]:
    rng = random.Random(seed)
    records, seen = [], set(avoid)
    while len(records) < n:
        record = make_record(rng, for_eval)
        key = json.dumps(record, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        records.append(record)
    return records


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def main() -> None:
    train = generate(N_TRAIN, for_eval=False, seed=SEED)
    train_keys = {json.dumps(r, sort_keys=True) for r in train}
    held_out = generate(N_EVAL, for_eval=True, seed=SEED + 1, avoid=train_keys)
    train_answers = {r["messages"][-1]["content"] for r in train}
    assert not any(r["messages"][-1]["content"] in train_answers for r in held_out), "eval copies train"
    write_jsonl(HERE / "train.jsonl", train)
    write_jsonl(HERE / "eval.jsonl", held_out)
    print(f"wrote {len(train)} train and {len(held_out)} eval conversations to {HERE}")


if __name__ == "__main__":
    main()
