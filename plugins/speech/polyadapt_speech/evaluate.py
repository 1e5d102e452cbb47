"""The speech-recognition task's evaluation: WER, CER, term recall and loss, base vs adapted.

Sets: the held-out domain clips (role ``domain``: the adapter must win there) and, when
``data.general_eval`` names an audio folder, general speech (role ``general``: the
forgetting check). Transcripts come from greedy decoding; WER and CER are corpus-level
(jiwer) after whisper's normaliser (English, else the basic one). Term recall is, over
every occurrence of a glossary term in a reference transcript, the share the model wrote
exactly (case and punctuation aside). The base is the same peft model with the adapter
disabled, so one copy of the weights serves both.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import torch

from polyadapt.lora import inference_device
from polyadapt.modalities.audio import load_waveform
from polyadapt.modalities.records import RunData
from polyadapt.pretrained import refusing_unsafe_pickles
from polyadapt.training.trainer import evaluate_loss
from polyadapt.types import AdapterArtifact, EvalReport, MetricRow, Run
from polyadapt_speech.data import WhisperLoss, build_examples, collate, summed_loss
from polyadapt_speech.model import load_whisper, log_mel, record_language, whisper_of
from polyadapt_speech.options import SpeechOptions
from polyadapt_speech.transcribe import transcribe_mels

BATCH = 8


def normaliser(language: str):
    """Whisper's text normaliser for WER: the English one for English, else the basic one."""
    from whisper.normalizers import BasicTextNormalizer, EnglishTextNormalizer

    return EnglishTextNormalizer() if language == "en" else BasicTextNormalizer()


def error_rates(references: list[str], hypotheses: list[str], language: str | list[str] = "en") -> tuple[float, float]:
    """(WER, CER) of ``hypotheses`` against ``references`` after normalisation.

    ``language`` is the language of every pair, or a list with each pair's language (a
    mixed-language set: each pair gets its language's normaliser). Pairs whose reference
    normalises to nothing are left out (jiwer cannot score them).
    """
    import jiwer

    languages = [language] * len(references) if isinstance(language, str) else list(language)
    norms = {code: normaliser(code) for code in set(languages)}
    pairs = [(norms[code](r), norms[code](h)) for r, h, code in zip(references, hypotheses, languages)]
    pairs = [(r, h) for r, h in pairs if r.strip()]
    if not pairs:
        return float("nan"), float("nan")
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    return float(jiwer.wer(refs, hyps)), float(jiwer.cer(refs, hyps))


def _plain(text: str) -> str:
    return " " + " ".join(re.sub(r"[^\w\s'-]", " ", text.lower()).split()) + " "


def term_recall(references: list[str], hypotheses: list[str], glossary: list[str]) -> tuple[float, dict[str, float]]:
    """(overall recall, per-term recall) of glossary terms; NaN when no reference holds a term."""
    hits_all = total_all = 0
    per_term: dict[str, float] = {}
    for term in glossary:
        needle = _plain(term)
        hits = total = 0
        for reference, hypothesis in zip(references, hypotheses):
            count = _plain(reference).count(needle)
            if count:
                total += count
                hits += min(count, _plain(hypothesis).count(needle))
        if total:
            per_term[term] = round(hits / total, 4)
        hits_all, total_all = hits_all + hits, total_all + total
    return (hits_all / total_all if total_all else float("nan")), per_term


def transcribe_records(model: Any, records: list[dict[str, Any]], options: SpeechOptions) -> list[str]:
    """Greedy transcripts of ``records`` with whatever adapter is active on ``model``."""
    texts: list[str] = []
    for start in range(0, len(records), BATCH):
        chunk = records[start : start + BATCH]
        by_language: dict[str, list[int]] = {}
        for i, record in enumerate(chunk):
            by_language.setdefault(record_language(record, options), []).append(i)
        out: list[str] = [""] * len(chunk)
        for language, rows in by_language.items():
            mels = torch.stack([log_mel(load_waveform(chunk[i]), model) for i in rows])
            results = transcribe_mels(
                model, mels, language=language, task=options.task, max_tokens=options.max_decode_tokens
            )
            for i, result in zip(rows, results):
                out[i] = result.text.strip()
        texts.extend(out)
    return texts


def _mean_loss(scorer: WhisperLoss, examples: list[dict[str, Any]]) -> float:
    dev = next(scorer.parameters()).device
    return evaluate_loss(scorer, examples, collate, summed_loss, BATCH, dev, contextlib.nullcontext)


def evaluate(run: Run, adapter: AdapterArtifact, run_data: RunData) -> EvalReport:
    """Score base and adapted on the run's held-out domain and general audio (``run_data``,
    governed by the core)."""
    from peft import PeftModel

    config, options = run.config, run.options
    base = load_whisper(config.base_model)
    with refusing_unsafe_pickles(adapter.path, what="adapter"):
        peft_model = PeftModel.from_pretrained(base, str(adapter.path)).to(inference_device()).eval()
    model = whisper_of(peft_model)
    rows: list[MetricRow] = []
    samples: list[dict[str, Any]] = []
    scorer = WhisperLoss(peft_model)
    for name, role, records in (
        ("domain (held-out)", "domain", run_data.heldout),
        ("general", "general", run_data.general),
    ):
        if not records:
            continue
        references = [r["text"] for r in records]
        # translations are English whatever the audio's language
        languages = ["en" if options.task == "translate" else record_language(r, options) for r in records]
        with peft_model.disable_adapter():
            base_text = transcribe_records(model, records, options)
        adapted_text = transcribe_records(model, records, options)
        base_wer, base_cer = error_rates(references, base_text, languages)
        wer, cer = error_rates(references, adapted_text, languages)
        rows.append(MetricRow(name, "wer", round(base_wer, 4), round(wer, 4), role=role))
        rows.append(MetricRow(name, "cer", round(base_cer, 4), round(cer, 4), role="other"))
        if options.glossary:
            base_recall, _ = term_recall(references, base_text, options.glossary)
            recall, per_term = term_recall(references, adapted_text, options.glossary)
            if recall == recall:  # some reference holds a term
                rows.append(
                    MetricRow(
                        name,
                        "term_recall",
                        round(base_recall, 4),
                        round(recall, 4),
                        lower_is_better=False,
                        role=role if role == "domain" else "other",
                    )
                )
        examples = build_examples(base, records, options)
        with peft_model.disable_adapter():
            base_loss = _mean_loss(scorer, examples)
        rows.append(MetricRow(name, "loss", round(base_loss, 4), round(_mean_loss(scorer, examples), 4), role="other"))
        if role == "domain":
            for record, before, after in list(zip(records, base_text, adapted_text))[: config.evaluation.num_samples]:
                samples.append(
                    {"audio": Path(record["audio"]).name, "reference": record["text"], "base": before, "adapted": after}
                )
    return EvalReport(rows=rows, samples=samples)
