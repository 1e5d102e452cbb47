"""Direct preference optimisation against the base itself (the adapter switched off).

The reference model of DPO is the model before tuning; with LoRA that is the same network
with the adapter disabled, so no second copy of the weights is loaded: each batch is scored
once with the adapter (the policy, with gradients) and once under PEFT's
``disable_adapter()`` and ``torch.no_grad()`` (the reference).

Log-probabilities are summed over each answer's tokens. As in the SFT loss
(:mod:`polyadapt_text.loss`), the decoder's hidden states are kept only at answer positions
and projected onto the vocabulary one row of the batch at a time, through the fused
projection + cross-entropy where the head allows it, so no batch x length x vocabulary
tensor is made. Losses (per pair, as in TRL's ``DPOTrainer``)::

    sigmoid: -log sigmoid(beta * ((pc - rc) - (pr - rr)))
    ipo:     ((pc - rc) / |c| - (pr - rr) / |r| - 1 / (2 beta)) ** 2

with ``pc``/``pr`` the adapted model's log-probabilities of the chosen and rejected answers,
``rc``/``rr`` the reference's, and ``|c|``/``|r|`` the answers' token counts.

SimPO and ORPO need no reference: :class:`ReferenceFreeLoss` scores each batch once, with the
adapter only, and takes each answer's average log-probability ``ac = pc / |c|``,
``ar = pr / |r|`` (as TRL's ``CPOTrainer(loss_type="simpo")`` and ``ORPOTrainer`` do)::

    simpo: -log sigmoid(beta * (ac - ar) - gamma)
    orpo:  -ac + lambda * -log sigmoid(log(odds(ac)) - log(odds(ar))),  odds(a) = e^a / (1 - e^a)

ORPO's first term is the chosen answer's NLL per token (the SFT part; TRL's takes it over the
prompt's tokens as well, as one token mean over the batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from polyadapt_text.data import IGNORE
from polyadapt_text.loss import CHUNK, CausalLMLoss, linear_cross_entropy


@dataclass
class PairScores:
    """Summed answer log-probabilities of a batch of pairs, each of shape ``(pairs,)``."""

    policy_chosen: torch.Tensor
    policy_rejected: torch.Tensor
    ref_chosen: torch.Tensor
    ref_rejected: torch.Tensor
    chosen_tokens: torch.Tensor
    rejected_tokens: torch.Tensor

    def margins(self) -> torch.Tensor:
        """``(pc - rc) - (pr - rr)``: how much more the adapter favours chosen than the base does."""
        return (self.policy_chosen - self.ref_chosen) - (self.policy_rejected - self.ref_rejected)


def pair_losses(scores: PairScores, beta: float, kind: str = "sigmoid") -> torch.Tensor:
    """The per-pair preference loss (``sigmoid``: DPO, ``ipo``: IPO), fp32."""
    if kind == "sigmoid":
        return -F.logsigmoid(beta * scores.margins())
    if kind == "ipo":
        chosen = (scores.policy_chosen - scores.ref_chosen) / scores.chosen_tokens.clamp(min=1)
        rejected = (scores.policy_rejected - scores.ref_rejected) / scores.rejected_tokens.clamp(min=1)
        return (chosen - rejected - 1 / (2 * beta)) ** 2
    raise ValueError(f"unknown preference loss {kind!r}; use sigmoid or ipo")


def simpo_losses(chosen_avg: torch.Tensor, rejected_avg: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """SimPO's per-pair loss ``-log sigmoid(beta * (ac - ar) - gamma)`` of the answers' average
    log-probabilities (``gamma``: the target reward margin), fp32."""
    return -F.logsigmoid(beta * (chosen_avg.float() - rejected_avg.float()) - gamma)


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x < 0``, computed stably on both sides of ``-log 2``."""
    return torch.where(x < -0.6931471805599453, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


#: The highest average log-probability ORPO's odds take: at 0 (probability 1) the odds are infinite.
MAX_AVG_LOGP = -1e-6


def log_odds_ratios(chosen_avg: torch.Tensor, rejected_avg: torch.Tensor) -> torch.Tensor:
    """ORPO's ``log(odds(chosen) / odds(rejected))`` per pair, ``odds(a) = e^a / (1 - e^a)`` of
    an average log-probability ``a`` (held below 0 so that the odds stay finite), fp32."""
    chosen = chosen_avg.float().clamp(max=MAX_AVG_LOGP)
    rejected = rejected_avg.float().clamp(max=MAX_AVG_LOGP)
    return (chosen - rejected) - (log1mexp(chosen) - log1mexp(rejected))


def orpo_losses(chosen_avg: torch.Tensor, rejected_avg: torch.Tensor, lam: float) -> torch.Tensor:
    """ORPO's per-pair loss: the chosen answer's NLL per token plus ``lam`` times the odds-ratio
    loss ``-log sigmoid(log odds ratio)``, fp32."""
    return -chosen_avg.float() - lam * F.logsigmoid(log_odds_ratios(chosen_avg, rejected_avg))


class PreferenceLoss(CausalLMLoss):
    """Wraps a PEFT causal LM so that ``forward(batch)`` returns the summed preference loss of
    a :class:`~polyadapt_text.preference.PreferenceCollator` batch (chosen rows, then rejected)."""

    def __init__(self, model: Any, beta: float = 0.1, kind: str = "sigmoid"):
        super().__init__(model)
        if not hasattr(model, "disable_adapter"):
            raise TypeError("the preference loss needs a PEFT model (its reference is the adapter disabled)")
        self.beta = beta
        self.kind = kind

    def row_logps(self, batch: dict[str, Any]) -> torch.Tensor:
        """Summed log-probability of each row's labelled tokens, shape ``(rows,)``, fp32."""
        labels = batch["labels"][:, 1:]
        keep = labels != IGNORE
        rows = labels.shape[0]
        with self._no_input_casts(batch["input_ids"].device):
            if not self._fast:
                logits = self.lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                picked = torch.log_softmax(logits[:, :-1].float(), dim=-1)
                picked = picked.gather(2, labels.clamp(min=0).unsqueeze(2)).squeeze(2)
                return (picked * keep).sum(dim=1)
            assert self._decoder is not None  # (self._fast says so)
            hidden = self._decoder(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).last_hidden_state[:, :-1]
        sums = []
        for row in range(rows):
            selected, targets = hidden[row][keep[row]], labels[row][keep[row]]
            if self._fused:
                sums.append(-linear_cross_entropy(selected, self._head, targets))
                continue
            total = hidden.new_zeros((), dtype=torch.float32)
            for start in range(0, selected.shape[0], CHUNK):
                logits = self._head(selected[start : start + CHUNK]).float()
                total = total - F.cross_entropy(logits, targets[start : start + CHUNK], reduction="sum")
            sums.append(total)
        return torch.stack(sums)

    def scores(self, batch: dict[str, Any]) -> PairScores:
        """Policy log-probs (with gradients when enabled) and reference log-probs (without)."""
        tokens = (batch["labels"][:, 1:] != IGNORE).sum(dim=1)
        policy = self.row_logps(batch)
        with torch.no_grad(), self.lm.disable_adapter():
            reference = self.row_logps(batch)
        pairs = policy.shape[0] // 2
        return PairScores(
            policy[:pairs], policy[pairs:], reference[:pairs], reference[pairs:], tokens[:pairs], tokens[pairs:]
        )

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return pair_losses(self.scores(batch), self.beta, self.kind).sum()


class ReferenceFreeLoss(PreferenceLoss):
    """SimPO (``objective="simpo"``) or ORPO (``"orpo"``) on a
    :class:`~polyadapt_text.preference.PreferenceCollator` batch: one forward pass with the
    adapter, none with it disabled (neither loss has a reference model)."""

    def __init__(self, model: Any, objective: str, beta: float = 2.0, gamma: float = 0.5, lam: float = 0.1):
        if objective not in ("simpo", "orpo"):
            raise ValueError(f"unknown reference-free objective {objective!r}; use simpo or orpo")
        super().__init__(model, beta=beta, kind=objective)
        self.gamma = gamma
        self.lam = lam

    def averages(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Average answer log-probabilities (chosen, rejected) under the adapted model, each ``(pairs,)``."""
        tokens = (batch["labels"][:, 1:] != IGNORE).sum(dim=1).clamp(min=1)
        averages = self.row_logps(batch) / tokens
        pairs = averages.shape[0] // 2
        return averages[:pairs], averages[pairs:]

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        chosen, rejected = self.averages(batch)
        if self.kind == "simpo":
            return simpo_losses(chosen, rejected, self.beta, self.gamma).sum()
        return orpo_losses(chosen, rejected, self.lam).sum()
