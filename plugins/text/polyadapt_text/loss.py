"""The causal-LM loss, computed only where there are targets.

Computing the vocabulary projection for every position and then discarding masked ones
wastes a large share of a small model's compute (SmolLM2-135M: the 49k-word head is ~20%
of the FLOPs) and holds a batch x length x vocab fp32 tensor. This module runs the decoder,
keeps the hidden states at target positions only, and projects those in chunks.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from polyadapt_text.data import IGNORE

CHUNK = 4096  # target positions projected at once: bounds the logits tensor's size


class CausalLMLoss(torch.nn.Module):
    """Wraps a (PEFT) causal LM so that ``forward(batch)`` returns the summed token loss.

    The wrapper is what the trainer prepares (for DDP, autocast), so the loss is computed
    inside one ``forward`` call.
    """

    def __init__(self, model: Any):
        super().__init__()
        self.lm = model
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        self._decoder = inner.get_decoder() if hasattr(inner, "get_decoder") else None
        self._head = inner.get_output_embeddings()
        config = inner.config
        special = any(
            getattr(config, name, None) not in (None, 1.0)
            for name in ("final_logit_softcapping", "logit_scale", "logits_scaling")
        )
        self._fast = self._decoder is not None and self._head is not None and not special

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        labels = batch["labels"][:, 1:]
        keep = labels != IGNORE
        if not self._fast:
            logits = self.lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            return F.cross_entropy(logits[:, :-1][keep].float(), labels[keep], reduction="sum")
        hidden = self._decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        selected = hidden[:, :-1][keep]
        targets = labels[keep]
        total = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, selected.shape[0], CHUNK):
            logits = self._head(selected[start : start + CHUNK]).float()
            total = total + F.cross_entropy(logits, targets[start : start + CHUNK], reduction="sum")
        return total


def summed_loss(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """The trainer's loss function: the wrapper's forward (see :class:`CausalLMLoss`)."""
    return model(batch)
