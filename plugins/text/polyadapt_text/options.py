"""``task_options`` of the ``text-generation`` task (pydantic only: cheap to import).

The code task's options extend these, so ``objective: dpo`` means the same on both.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: The objectives that train on preference pairs (``data.kind: preference``).
PREFERENCE_OBJECTIVES = ("dpo", "simpo", "orpo")
#: Which objective each objective-specific option belongs to.
OPTION_OBJECTIVE = {
    "dpo_beta": "dpo",
    "dpo_loss": "dpo",
    "simpo_beta": "simpo",
    "simpo_gamma": "simpo",
    "orpo_lambda": "orpo",
}


class TextOptions(BaseModel):
    """What a text run optimises: next-token loss (``sft``) or a preference loss (``dpo``,
    ``simpo``, ``orpo``). An objective's own options (``dpo_*``, ``simpo_*``, ``orpo_lambda``)
    may be set only with that objective: one set with another is refused, named, not ignored."""

    model_config = ConfigDict(extra="forbid")

    objective: Literal["sft", "dpo", "simpo", "orpo"] = Field(
        "sft",
        description="sft: next-token loss on text, instruction or chat records; dpo: direct preference "
        "optimisation on preference pairs (data.kind: preference, records {prompt, chosen, rejected}), the "
        "reference model being the base with the adapter disabled; simpo: SimPO on the same pairs (no "
        "reference model: the margin of the answers' average log-probabilities); orpo: ORPO on the same pairs "
        "(no reference model: the chosen answer's next-token loss plus an odds-ratio loss)",
    )
    dpo_beta: float = Field(
        0.1, gt=0, le=10, description="DPO's beta: how far the adapted model may move from the reference"
    )
    dpo_loss: Literal["sigmoid", "ipo"] = Field(
        "sigmoid",
        description="sigmoid: the DPO paper's -log sigmoid(beta * margin); ipo: IPO's squared loss on "
        "per-token log-ratio margins, (margin - 1/(2 beta))^2",
    )
    simpo_beta: float = Field(
        2.0,
        gt=0,
        le=100,
        description="SimPO's beta: the scale of the reward, beta times an answer's average log-probability",
    )
    simpo_gamma: float = Field(
        0.5,
        ge=0,
        le=100,
        description="SimPO's target reward margin gamma (as TRL's simpo_gamma, not the paper's gamma/beta "
        "ratio): the loss is -log sigmoid(beta * (average log-prob chosen - rejected) - gamma)",
    )
    orpo_lambda: float = Field(
        0.1,
        gt=0,
        le=100,
        description="ORPO's lambda (TRL's beta): the weight of the odds-ratio loss next to the chosen answer's "
        "next-token loss",
    )

    @model_validator(mode="after")
    def _options_of_the_objective(self) -> TextOptions:
        stray = [
            name
            for name in OPTION_OBJECTIVE
            if name in self.model_fields_set and OPTION_OBJECTIVE[name] != self.objective
        ]
        if stray:
            owners = ", ".join(f"task_options.{name} is objective {OPTION_OBJECTIVE[name]}'s" for name in stray)
            raise ValueError(
                f"{owners}, but task_options.objective is {self.objective}; remove it or set that objective"
            )
        return self
