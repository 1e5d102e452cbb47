"""``task_options`` of the ``text-generation`` task (pydantic only: cheap to import).

The code task's options extend these, so ``objective: dpo`` means the same on both.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TextOptions(BaseModel):
    """What a text run optimises: next-token loss (``sft``) or a preference loss (``dpo``)."""

    model_config = ConfigDict(extra="forbid")

    objective: Literal["sft", "dpo"] = Field(
        "sft",
        description="sft: next-token loss on text, instruction or chat records; dpo: direct preference "
        "optimisation on preference pairs (data.kind: preference, records {prompt, chosen, rejected}), the "
        "reference model being the base with the adapter disabled",
    )
    dpo_beta: float = Field(
        0.1, gt=0, le=10, description="DPO's beta: how far the adapted model may move from the reference"
    )
    dpo_loss: Literal["sigmoid", "ipo"] = Field(
        "sigmoid",
        description="sigmoid: the DPO paper's -log sigmoid(beta * margin); ipo: IPO's squared loss on "
        "per-token log-ratio margins, (margin - 1/(2 beta))^2",
    )
