"""Optional dense retrieval: a small local encoder's mean-pooled embeddings, and reciprocal
rank fusion of the dense and BM25 rankings.

The encoder is a local transformers folder (``AutoModel`` + its tokenizer; nothing is
downloaded). Vectors are L2-normalised float32, stored beside the passages; a search
compares the query's vector with all of them (exact, brute force: indexes of a single
machine's documents stay small enough for that).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polyadapt.errors import DataError

#: The constant of reciprocal rank fusion: a passage's score is the sum of 1 / (RRF_K + rank).
RRF_K = 60
BATCH = 32
MAX_TOKENS = 512


class Encoder:
    """A local transformers encoder that embeds texts by mean pooling (see :meth:`load`)."""

    def __init__(self, model: Any, tokenizer: Any, reference: str):
        self.model = model
        self.tokenizer = tokenizer
        #: The model folder as the index records it: resolved (absolute), so searches from
        #: any working directory find it.
        self.reference = reference

    @classmethod
    def load(cls, path: Path | str, *, index: str) -> Encoder:
        """The encoder in the local folder ``path``; :class:`DataError` naming ``index`` and the
        folder when it is missing or not a transformers model with a tokenizer."""
        folder = Path(path).expanduser()
        if not (folder / "config.json").is_file():
            raise DataError(
                f"index {index}: embedding model {path}: not a local transformers model folder (no config.json); "
                "give --embed the folder of a small encoder saved with save_pretrained"
            )
        try:
            from transformers import AutoModel, AutoTokenizer
        except ModuleNotFoundError:
            raise DataError(f"index {index}: dense embeddings need transformers and torch; pip install them") from None
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise DataError(f"index {index}: cannot load the embedding model {path}: {exc}") from None
        model.eval()
        return cls(model, tokenizer, str(folder.resolve()))

    def encode(self, texts: Sequence[str]) -> Any:
        """``texts`` as an ``(n, dims)`` float32 numpy array of L2-normalised mean-pooled vectors."""
        import numpy as np
        import torch

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), BATCH):
                batch = self.tokenizer(
                    list(texts[start : start + BATCH]),
                    padding=True,
                    truncation=True,
                    max_length=MAX_TOKENS,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
                chunks.append(pooled.cpu().numpy().astype(np.float32))
        if not chunks:
            dims = int(getattr(self.model.config, "hidden_size", 0))
            return np.zeros((0, dims), dtype=np.float32)
        return np.concatenate(chunks)


def nearest(conn: sqlite3.Connection, query: Any, limit: int) -> list[tuple[int, float]]:
    """The ``limit`` stored vectors most similar to ``query`` (cosine): ``(rowid, similarity)``."""
    import numpy as np

    rows = conn.execute("SELECT rowid, vector FROM vectors ORDER BY rowid").fetchall()
    if not rows or limit <= 0:
        return []
    ids = np.array([rowid for rowid, _ in rows])
    matrix = np.stack([np.frombuffer(blob, dtype=np.float32) for _, blob in rows])
    similarity = matrix @ np.asarray(query, dtype=np.float32)
    order = np.argsort(-similarity, kind="stable")[:limit]
    return [(int(ids[i]), float(similarity[i])) for i in order]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Fuse ``rankings`` (ids, best first): each id scores the sum of ``1 / (k + rank)`` over
    the rankings holding it (rank from 1); best first, ties by first appearance."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])
