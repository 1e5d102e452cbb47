"""Fine-tune, retrieve, or both? The text plugin's answer on a held-out QA set.

With ``evaluation.qa: PATH`` a run asks each question of the QA set (greedy decoding) of up
to four configurations of the same loaded model: the base (adapter disabled), the base with
passages retrieved from the run's ``retrieval.index``, the adapter, and the adapter with
those passages. Without a ``retrieval:`` section only the first and third are asked. The
answers are scored by :mod:`polyadapt.retrieval.qa` (exact match, token F1, answer
contains) and the retriever by recall@k; :func:`qa_evaluation` returns the metric rows
(``qa`` and ``qa + retrieval``) and writes every answer to ``qa_answers.jsonl``.

Questions are asked as the held-out chats ask theirs: after the system message of the first
held-out chat, when there is one, so the adapter sees the prompt it was trained with.
Retrieved passages join that system message (:func:`polyadapt.retrieval.with_passages`,
the same form serving uses).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from polyadapt.lora import inference_device

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.modalities.records import Dataset, RunData
    from polyadapt.retrieval.qa import QARecord
    from polyadapt.types import MetricRow, Run

#: Questions generated together (left-padded); fewer, larger batches are faster on a CPU.
QA_BATCH = 16
#: Where every question's answers go in the run folder.
ANSWERS_FILE = "qa_answers.jsonl"

Messages = list[dict[str, Any]]


def qa_dataset(run: Run, data: RunData) -> Dataset:
    """The run's governed QA set: the one :func:`polyadapt.rundata.load_run_data` admitted,
    else ``evaluation.qa`` read and admitted now (role ``qa``)."""
    from polyadapt.retrieval.qa import QA_KIND, QA_ROLE, load_qa

    found = next((source for source in data.sources if source.kind == QA_KIND), None)
    if found is not None:
        return found
    path = run.config.evaluation.qa
    assert path is not None, "qa_dataset is called only when evaluation.qa is set"
    return run.admit(load_qa(path), role=QA_ROLE)


def system_message(heldout: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The leading system message of the first held-out chat, or None."""
    for record in heldout:
        messages = record.get("messages")
        if messages:
            first = messages[0]
            return dict(first) if first.get("role") == "system" else None
    return None


def question_messages(record: QARecord, system: dict[str, Any] | None) -> Messages:
    """The chat that asks ``record``'s question (after ``system`` when given)."""
    return [*([system] if system else []), {"role": "user", "content": record.question}]


@torch.no_grad()
def generate_answers(model: Any, tokenizer: Any, prompts: list[Messages], max_new_tokens: int) -> list[str]:
    """Greedy answers to ``prompts`` (chats), :data:`QA_BATCH` at a time, left-padded."""
    from polyadapt_text.data import encode_prompt
    from polyadapt_text.serve import left_pad

    answers: list[str] = []
    device = inference_device()
    for start in range(0, len(prompts), QA_BATCH):
        rows = [encode_prompt(tokenizer, prompt) for prompt in prompts[start : start + QA_BATCH]]
        input_ids, attention = left_pad(rows, tokenizer.pad_token_id)
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
        width = input_ids.shape[1]
        answers += [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in output]
    return answers


def retrieve(run: Run, records: list[QARecord]) -> tuple[list[list[Any]], int] | None:
    """The passages found for each question in the run's ``retrieval.index`` and ``k``;
    None when the run config has no ``retrieval:`` section."""
    retrieval = getattr(run.config, "retrieval", None)
    if retrieval is None:
        return None
    from polyadapt.retrieval import open_index

    index = open_index(retrieval.index)
    k = retrieval.k
    return [index.search(record.question, k) for record in records], k


def qa_evaluation(run: Run, model: Any, tokenizer: Any, data: RunData) -> list[MetricRow]:
    """Metric rows for the four-way QA table; every answer goes to ``qa_answers.jsonl``.

    ``model`` is the PEFT model with the adapter loaded; the base configurations run with
    the adapter disabled. The answers file (one line per question: the question, the gold
    answers, each configuration's answer and, with retrieval, the passages' sources and
    whether one was a hit) passes the run's policy before it is written.
    """
    from polyadapt.retrieval import with_passages
    from polyadapt.retrieval.qa import qa_records, qa_rows, recall_at_k, score_answers

    records = qa_records(qa_dataset(run, data))
    max_new_tokens = run.config.evaluation.qa_max_new_tokens
    system = system_message(data.heldout)
    plain = [question_messages(record, system) for record in records]
    prompts: dict[str, list[Messages]] = {"": plain}
    found = retrieve(run, records)
    if found is not None:
        passages, k = found
        prompts[" + retrieval"] = [with_passages(chat, hits) for chat, hits in zip(plain, passages)]
    run.say(f"QA: {len(records)} questions, {len(prompts) * 2} configurations")
    answers: dict[str, list[str]] = {}
    for suffix, chats in prompts.items():
        with model.disable_adapter():
            answers["base" + suffix] = generate_answers(model, tokenizer, chats, max_new_tokens)
        answers["adapter" + suffix] = generate_answers(model, tokenizer, chats, max_new_tokens)
    scores = {label: score_answers(replies, records) for label, replies in answers.items()}
    recall = recall_at_k(found[0], records, found[1]) if found is not None else None
    write_answers(run, records, answers, found[0] if found is not None else None)
    return qa_rows(scores, recall, found[1] if found is not None else None)


def write_answers(
    run: Run, records: list[QARecord], answers: dict[str, list[str]], passages: list[list[Any]] | None
) -> None:
    """``qa_answers.jsonl`` in the run folder: each question with every configuration's answer."""
    import json

    from polyadapt.retrieval.qa import passage_hit

    lines = []
    for i, record in enumerate(records):
        row: dict[str, Any] = {"question": record.question, "answers": list(record.answers)}
        row |= {label: replies[i] for label, replies in answers.items()}
        if passages is not None:
            row["retrieved"] = [p.source for p in passages[i]]
            row["retrieval_hit"] = any(passage_hit(p, record.answers, record.source) for p in passages[i])
        shown = {k: run.redact_text(v) if isinstance(v, str) else v for k, v in row.items()}
        lines.append(json.dumps(shown, ensure_ascii=False) + "\n")
    run.write_text(ANSWERS_FILE, "".join(lines))
