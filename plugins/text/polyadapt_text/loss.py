"""The causal-LM loss, computed only where there are targets.

Computing the vocabulary projection for every position and then discarding masked ones
wastes a large share of a small model's compute (SmolLM2-135M: the 49k-word head is ~20%
of the FLOPs) and holds a batch x length x vocab fp32 tensor. This module runs the decoder,
keeps the hidden states at target positions only, and projects those in chunks.

When the head is a plain linear layer, projection and cross-entropy are fused
(:class:`_LinearCrossEntropy`): each chunk's gradient is computed right after its loss, so
no positions x vocab tensor outlives its chunk, and the softmax is taken once instead of a
log-softmax, its backward and their fp32 copies. With the skipped input casts below
(SmolLM2-135M, LoRA on attention, 4 x 256 tokens, bf16 on CPU) a training step is ~15%
faster and its peak memory ~0.7 GB lower.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F

from polyadapt_text.data import IGNORE
from polyadapt_text.lean_mlp import use_lean_gated_mlps

CHUNK = 4096  # target positions projected at once: bounds the logits tensor's size
#: Logit elements per chunk of the fused loss (rows = this / vocabulary size, at least 16),
#: so a chunk's fp32 probabilities take 32 MB on CPU (measured best there: cache-friendlier)
#: and 128 MB on GPUs (fewer, larger matmuls), whatever the vocabulary.
FUSED_CHUNK_ELEMENTS = {"cpu": 1 << 23, "cuda": 1 << 25}


def _compute_dtype(hidden: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The matmul dtype the head would run in: autocast's when it is on, else the weight's."""
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return weight.dtype


def _chunk_rows(vocab: int, device: torch.device) -> int:
    budget = FUSED_CHUNK_ELEMENTS.get(device.type, FUSED_CHUNK_ELEMENTS["cuda"])
    return max(16, budget // max(vocab, 1))


class _LinearCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of ``hidden @ weight.T`` against ``targets``, chunk by chunk.

    The gradients with respect to ``hidden`` (and ``weight`` when it trains) are computed
    in the forward pass: softmax minus one-hot, times the weight. The loss is the final
    output, so the backward pass only scales them by the incoming gradient.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, dtype):
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        rows = _chunk_rows(weight.shape[0], hidden.device)
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(dtype)
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            grad_hidden = torch.empty_like(hidden) if need_hidden else None
            grad_weight = None
            if need_weight:
                grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            on_cpu = hidden.device.type == "cpu"
            # CPU: one logits buffer for every chunk, turned into probabilities in place (the
            # kernel gives the same bits as out of place): one chunk-sized tensor, not two, and
            # no fresh pages to fault in per chunk
            buffer = torch.empty((min(rows, hidden.shape[0]), w.shape[0]), dtype=torch.float32) if on_cpu else None
            for start in range(0, hidden.shape[0], rows):
                h = hidden[start : start + rows].to(dtype)
                t = targets[start : start + rows]
                index = torch.arange(t.shape[0], device=t.device)
                if buffer is None:
                    logits = (h @ w.t()).float()
                    token_loss = torch.logsumexp(logits, dim=-1) - logits[index, t]  # no host sync
                    probs = torch.softmax(logits, dim=-1)
                    del logits
                else:  # -log p(target); where p underflows, the exact lse - logit instead
                    probs = buffer[: h.shape[0]]
                    if dtype == torch.float32:
                        torch.mm(h, w.t(), out=probs)
                    else:
                        probs.copy_(h @ w.t())  # (a cast, then softmax: ~2x faster on CPU than softmax(dtype=))
                    torch.ops.aten._softmax.out(probs, -1, False, out=probs)
                    picked = probs[index, t]
                    token_loss = -torch.log(picked.clamp_min(torch.finfo(torch.float32).tiny))
                    small = picked < 1e-30
                    if bool(small.any()):  # rare: those rows' logits again, for the exact value
                        tiny_rows = (h[small] @ w.t()).float()
                        picked_logits = tiny_rows.gather(1, t[small, None]).squeeze(1)
                        exact = torch.logsumexp(tiny_rows, dim=-1) - picked_logits
                        token_loss = token_loss.masked_scatter(small, exact)
                total += token_loss.sum()
                probs[index, t] -= 1.0  # d loss / d logits
                grad_logits = probs.to(dtype)
                del probs
                if need_hidden:
                    grad_hidden[start : start + rows] = (grad_logits @ w).to(hidden.dtype)
                if need_weight:
                    grad_weight += (grad_logits.t() @ h).float()
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        grad_hidden, grad_weight = ctx.saved_tensors
        scale = grad_output.to(torch.float32)
        gh = (grad_hidden * scale).to(grad_hidden.dtype) if grad_hidden is not None else None
        gw = (grad_weight * scale).to(ctx.weight_dtype) if grad_weight is not None else None
        return gh, gw, None, None


def linear_cross_entropy(hidden: torch.Tensor, head: torch.nn.Linear, targets: torch.Tensor) -> torch.Tensor:
    """Summed token cross-entropy of ``head(hidden)`` against ``targets`` (fp32 scalar)."""
    weight = head.weight
    dtype = _compute_dtype(hidden, weight)
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad) and hidden.shape[0]:
        return _LinearCrossEntropy.apply(hidden, weight, targets, dtype)
    # no gradient wanted (evaluation): project and score chunk by chunk
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    rows = _chunk_rows(weight.shape[0], hidden.device)
    with torch.autocast(hidden.device.type, enabled=False):
        w = weight.to(dtype)
        for start in range(0, hidden.shape[0], rows):
            logits = hidden[start : start + rows].to(dtype) @ w.t()
            total = total + F.cross_entropy(logits.float(), targets[start : start + rows], reduction="sum")
    return total


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
        self._fused = self._fast and type(self._head) is torch.nn.Linear and self._head.bias is None
        use_lean_gated_mlps(inner)  # same numbers, a third less MLP activation memory
        # PEFT casts each LoRA layer's input to the adapter's dtype (fp32 here) before the
        # adapter runs; under autocast the adapter's matmul casts it straight back to bf16,
        # so the two copies (and their backward) are pure overhead: skipping them gives the
        # same numbers. Plain LoRA layers only (variants such as DoRA use the input otherwise).
        self._casting_layers = [
            m
            for m in model.modules()
            if hasattr(m, "cast_input_dtype_enabled") and not getattr(m, "lora_variant", None)
        ]

    @contextlib.contextmanager
    def _no_input_casts(self, device: torch.device):
        if not self._casting_layers or not torch.is_autocast_enabled(device.type):
            yield
            return
        saved = [m.cast_input_dtype_enabled for m in self._casting_layers]
        for m in self._casting_layers:
            m.cast_input_dtype_enabled = False
        try:
            yield
        finally:
            for m, value in zip(self._casting_layers, saved):
                m.cast_input_dtype_enabled = value

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        labels = batch["labels"][:, 1:]
        keep = labels != IGNORE
        with self._no_input_casts(batch["input_ids"].device):
            if not self._fast:
                logits = self.lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                return F.cross_entropy(logits[:, :-1][keep].float(), labels[keep], reduction="sum")
            hidden = self._decoder(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).last_hidden_state
        selected = hidden[:, :-1][keep]
        targets = labels[keep]
        if self._fused:
            return linear_cross_entropy(selected, self._head, targets)
        total = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, selected.shape[0], CHUNK):
            logits = self._head(selected[start : start + CHUNK]).float()
            total = total + F.cross_entropy(logits, targets[start : start + CHUNK], reduction="sum")
        return total


def summed_loss(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """The trainer's loss function: the wrapper's forward (see :class:`CausalLMLoss`)."""
    return model(batch)
