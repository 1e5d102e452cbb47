"""``POST /v1/classifications``: the classes of one text or a list of texts.

    curl localhost:8000/v1/classifications -H 'content-type: application/json' \
      -d '{"model": "tiny-classifier:support-intents", "input": ["I was charged twice"]}'

answers ``{"object": "list", "model": ..., "data": [{"index": 0, "label": "billing",
"score": 0.93, "scores": {"billing": 0.93, "claim": 0.04, "policy-change": 0.03}}]}``.
Each text passes the serving policy first (redacted or refused as it says); requests for one
base are micro-batched with other clients' requests.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from polyadapt.serving.routes import Route, RouteContext
from polyadapt_classification.api import ClassificationRequest

#: The most texts one request may hold.
MAX_INPUTS = 2048


class ClassificationBody(BaseModel):
    """The JSON body: the model (``base`` or ``base:adapter``) and the text(s) to classify."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    input: str | list[str]

    @field_validator("input")
    @classmethod
    def _texts(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts:
            raise ValueError("give at least one text")
        if len(texts) > MAX_INPUTS:
            raise ValueError(f"at most {MAX_INPUTS} texts per request")
        if any(not text.strip() for text in texts):
            raise ValueError("a text must not be blank")
        return value

    def inputs(self) -> list[str]:
        """The texts, as a list."""
        return [self.input] if isinstance(self.input, str) else list(self.input)


async def classifications(body: ClassificationBody, ctx: RouteContext) -> dict[str, Any]:
    """Classify each text of ``body`` with the model it names."""
    what = "text classification"
    target = ctx.resolve(body.model, method="classify", what=what)
    texts = [ctx.check_prompt(text, target) for text in body.inputs()]
    requests = [ClassificationRequest(text=text, adapter=target.adapter) for text in texts]
    results = await ctx.submit(target, "classify", requests, what=what)
    data = [
        {"index": index, "label": result.label, "score": result.score, "scores": result.scores}
        for index, result in enumerate(results)
    ]
    return {"object": "list", "model": body.model, "data": data}


ROUTES = [
    Route(
        "/v1/classifications",
        classifications,
        body=ClassificationBody,
        summary="Classify texts with a text-classification model or adapter",
    )
]
