"""Question answering as an evaluation: the held-out QA set, its metrics and the four-way table.

``evaluation.qa: PATH`` names a JSON-lines file of questions with short gold answers::

    {"question": "...", "answer": "3,000 euros", "source": "claims.md"}
    {"question": "...", "answers": ["30 days", "thirty days"], "context": "..."}

:func:`load_qa` reads it (errors name the file and line); the run admits it through
governance under role ``qa``. A model's answers are scored as SQuAD scores them
(:func:`normalize_answer`, :func:`exact_match`, :func:`token_f1`) plus
:func:`answer_contains` (the gold answer appears in a longer reply), and the retriever by
:func:`recall_at_k`. :func:`qa_rows` turns the four configurations a run compares (base,
base + retrieval, adapter, adapter + retrieval) into metric rows for ``metrics.json`` and the
lineage store; :func:`four_way_table` turns them back into one table, a row per configuration.

Nothing here knows a modality or a model: the plugin that generates the answers calls it.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from polyadapt.errors import DataError
from polyadapt.modalities.records import Dataset
from polyadapt.types import MetricRow

#: The ``kind`` of a loaded QA set (how a plugin finds it among a run's datasets).
QA_KIND = "qa"
#: The governance role (and manifest name) the QA set is admitted under.
QA_ROLE = "qa"
#: What governance scans in a QA record.
QA_SCANNED_FIELDS = ("question", "answers[]", "context")
#: The metric rows' dataset names: answers without and with retrieved passages.
QA_DATASET = "qa"
QA_RETRIEVAL_DATASET = "qa + retrieval"
#: The answer metrics, in the order the table shows them.
ANSWER_METRICS = ("exact_match", "token_f1", "answer_contains")
#: The four configurations, in the order the table shows them:
#: (label, dataset of its metric rows, which side of the rows: ``base`` or ``adapted``).
CONFIGURATIONS = (
    ("base", QA_DATASET, "base"),
    ("base + retrieval", QA_RETRIEVAL_DATASET, "base"),
    ("adapter", QA_DATASET, "adapted"),
    ("adapter + retrieval", QA_RETRIEVAL_DATASET, "adapted"),
)

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_CITATION = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")
_PUNCTUATION = frozenset(string.punctuation)


# -- metrics ----------------------------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """``text`` normalised as the SQuAD evaluation script does: lower case, punctuation
    removed, the articles *a*, *an*, *the* removed, runs of white space made one space."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def strip_citations(text: str) -> str:
    """``text`` without passage citations such as ``[1]`` or ``[2, 3]`` (the retrieval
    prompt asks for them; they are not part of the answer)."""
    return _CITATION.sub(" ", text)


def _f1(prediction: str, gold: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not expected:  # SQuAD: both empty is a match, one empty is not
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalised ``prediction`` equals a normalised gold answer, else 0.0."""
    predicted = normalize_answer(prediction)
    return float(any(predicted == normalize_answer(gold) for gold in answers))


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """The best SQuAD token F1 of ``prediction`` against any gold answer (0.0 to 1.0).

    Tokens are the normalised words; the overlap counts each shared word as often as it
    occurs in both (a bag of words, not a set).
    """
    return max((_f1(prediction, gold) for gold in answers), default=0.0)


def _contains(text: str, gold: str) -> bool:
    """Whether the normalised ``gold`` occurs in the normalised ``text`` as whole words."""
    wanted = normalize_answer(gold)
    return bool(wanted) and f" {wanted} " in f" {normalize_answer(text)} "


def answer_contains(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when a normalised gold answer appears, as whole words, in the normalised
    ``prediction`` (a reply that says more than the answer still counts), else 0.0."""
    return float(any(_contains(prediction, gold) for gold in answers))


class PassageLike(Protocol):
    """What :func:`passage_hit` reads of a retrieved passage."""

    text: str
    source: str


def same_source(passage_source: str | None, wanted: str | None) -> bool:
    """Whether a passage's ``source`` is the document ``wanted`` names.

    Both are compared as paths, without a ``#fragment`` (a chunk's anchor): equal, or one
    ends with the other's whole path components (``handbook/claims.md`` is ``claims.md``).
    """
    if not passage_source or not wanted:
        return False
    left = [part for part in passage_source.split("#", 1)[0].replace("\\", "/").split("/") if part not in ("", ".")]
    right = [part for part in wanted.split("#", 1)[0].replace("\\", "/").split("/") if part not in ("", ".")]
    if not left or not right:
        return False
    shorter, longer = sorted((left, right), key=len)
    return longer[-len(shorter) :] == shorter


def passage_hit(passage: PassageLike, answers: Sequence[str], source: str | None = None) -> bool:
    """Whether a retrieved passage answers the question: it holds a normalised gold answer,
    or its source is the record's ``source`` document (when the record names one)."""
    return any(_contains(passage.text, gold) for gold in answers) or same_source(passage.source, source)


def recall_at_k(retrieved: Sequence[Sequence[PassageLike]], records: Sequence[QARecord], k: int) -> float:
    """The share of questions with a hit (:func:`passage_hit`) among their first ``k`` passages."""
    if not records:
        return float("nan")
    if len(retrieved) != len(records):
        raise ValueError(f"recall_at_k: {len(retrieved)} passage lists for {len(records)} questions")
    hits = sum(
        any(passage_hit(p, record.answers, record.source) for p in passages[:k])
        for passages, record in zip(retrieved, records)
    )
    return hits / len(records)


def score_answers(predictions: Sequence[str], records: Sequence[QARecord]) -> dict[str, float]:
    """The mean of each answer metric (:data:`ANSWER_METRICS`) over the questions; citations
    (:func:`strip_citations`) are removed from the predictions first."""
    if len(predictions) != len(records):
        raise ValueError(f"score_answers: {len(predictions)} answers for {len(records)} questions")
    if not records:
        return {name: float("nan") for name in ANSWER_METRICS}
    metrics = {"exact_match": exact_match, "token_f1": token_f1, "answer_contains": answer_contains}
    return {
        name: sum(metric(strip_citations(p), r.answers) for p, r in zip(predictions, records)) / len(records)
        for name, metric in metrics.items()
    }


# -- the QA set -------------------------------------------------------------------------------


@dataclass(frozen=True)
class QARecord:
    """One question with its gold answers, and optionally its source document and context."""

    question: str
    answers: tuple[str, ...]
    source: str | None = None
    context: str | None = None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> QARecord:
        """A record of a loaded (and governed) QA dataset."""
        return cls(
            question=record["question"],
            answers=tuple(record["answers"]),
            source=record.get("source"),
            context=record.get("context"),
        )


def _string(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _normalise(record: Any, where: str) -> dict[str, Any]:
    """``record`` as ``{question, answers, source?, context?}``, or a DataError naming ``where``."""
    fix = 'each line must be {"question": "...", "answer": "..."} or {"question": "...", "answers": ["...", ...]}'
    if not isinstance(record, dict):
        raise DataError(f"{where}: a QA record must be a JSON object, not {type(record).__name__}; {fix}")
    if not _string(record.get("question")):
        raise DataError(f"{where}: 'question' is missing or not a non-empty string; {fix}")
    if "answer" in record and "answers" in record:
        raise DataError(f"{where}: give 'answer' or 'answers', not both")
    if "answers" in record:
        answers = record["answers"]
        if not isinstance(answers, list) or not answers or not all(_string(a) for a in answers):
            raise DataError(f"{where}: 'answers' must be a non-empty list of non-empty strings")
    elif "answer" in record:
        if not _string(record["answer"]):
            raise DataError(f"{where}: 'answer' must be a non-empty string")
        answers = [record["answer"]]
    else:
        raise DataError(f"{where}: the record has no 'answer' (or 'answers'); {fix}")
    if not any(normalize_answer(a) for a in answers):
        raise DataError(f"{where}: every answer is empty once punctuation and articles are removed")
    out: dict[str, Any] = {"question": record["question"], "answers": list(answers)}
    for name in ("source", "context"):
        if record.get(name) is not None:
            if not isinstance(record[name], str):
                raise DataError(f"{where}: {name!r} must be a string, not {type(record[name]).__name__}")
            out[name] = record[name]
    unknown = sorted(set(record) - {"question", "answer", "answers", "source", "context", "id"})
    if unknown:
        raise DataError(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; a QA record holds "
            "question, answer or answers, and optionally source, context and id"
        )
    if "id" in record:
        out["id"] = record["id"]
    return out


def load_qa(path: Path | str) -> Dataset:
    """Read the QA set at ``path`` (JSON lines) as a :class:`Dataset` of kind ``qa``.

    Each record becomes ``{"question", "answers": [...], "source"?, "context"?}``. Any
    unreadable or malformed line is an error that names the file and the line: a held-out
    set with holes would measure less than it claims.

    :raises DataError: the file is missing, empty, not JSON lines, or a record is malformed.
    """
    from polyadapt.modalities.tabular import ParseFailure, read_records

    path = Path(path)
    if path.is_file() and path.suffix.lower() not in (".jsonl", ".json"):
        raise DataError(f"{path}: a QA set is a JSON-lines file (.jsonl), one question per line")
    dataset = Dataset(source=path, kind=QA_KIND, scanned_fields=QA_SCANNED_FIELDS)
    for index, (line, record) in enumerate(read_records(path, "jsonl")):
        where = f"{path} line {line}" if line is not None else f"{path} record {index + 1}"
        if isinstance(record, ParseFailure):
            raise DataError(f"{where}: {record}")
        dataset.records.append(_normalise(record, where))
        dataset.lines.append(line)
    return dataset


def qa_records(dataset: Dataset) -> list[QARecord]:
    """The records of a loaded QA dataset (after governance) as :class:`QARecord` s."""
    return [QARecord.from_record(record) for record in dataset.records]


# -- the table --------------------------------------------------------------------------------


def recall_metric(k: int) -> str:
    """The metric name of retrieval recall at ``k``: ``recall@4``."""
    return f"recall@{k}"


def qa_rows(scores: dict[str, dict[str, float]], recall: float | None = None, k: int | None = None) -> list[MetricRow]:
    """Metric rows for the configurations in ``scores`` (label → :func:`score_answers`).

    Rows of dataset ``qa`` hold base against adapter; rows of ``qa + retrieval`` hold base +
    retrieval against adapter + retrieval, and ``recall@k`` (the same retriever on both
    sides). All are role ``other``: shown and recorded, not held to the promotion gate.
    """
    rows: list[MetricRow] = []
    for dataset in (QA_DATASET, QA_RETRIEVAL_DATASET):
        base_label, adapted_label = (label for label, ds, _ in CONFIGURATIONS if ds == dataset)
        if base_label not in scores or adapted_label not in scores:
            continue
        for metric in ANSWER_METRICS:
            base, adapted = scores[base_label][metric], scores[adapted_label][metric]
            rows.append(MetricRow(dataset, metric, round(base, 4), round(adapted, 4), lower_is_better=False))
        if dataset == QA_RETRIEVAL_DATASET and recall is not None and k is not None:
            rows.append(MetricRow(dataset, recall_metric(k), round(recall, 4), round(recall, 4), lower_is_better=False))
    return rows


def is_qa_row(row: MetricRow) -> bool:
    """Whether ``row`` belongs to the QA table (datasets ``qa`` and ``qa + retrieval``)."""
    return row.dataset in (QA_DATASET, QA_RETRIEVAL_DATASET)


def four_way_table(rows: Iterable[MetricRow]) -> tuple[list[str], list[tuple[str, dict[str, float]]]]:
    """The QA rows of a report as one table: (metric columns, [(configuration, values)]).

    A configuration appears when its rows do (base and adapter alone without retrieval);
    ``recall@k`` only has values for the retrieval configurations. Empty when the report
    has no QA rows.
    """
    qa = [row for row in rows if is_qa_row(row)]
    columns = list(dict.fromkeys(row.metric for row in qa))
    table = []
    for label, dataset, side in CONFIGURATIONS:
        values = {row.metric: getattr(row, side) for row in qa if row.dataset == dataset}
        if values:
            table.append((label, values))
    return columns, table


def markdown_table(rows: Iterable[MetricRow]) -> str:
    """:func:`four_way_table` as a Markdown table (for READMEs and model cards); "" without QA rows."""
    columns, table = four_way_table(rows)
    if not table:
        return ""
    lines = ["| configuration | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for label, values in table:
        cells = [f"{values[c]:.3f}" if c in values else "–" for c in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
