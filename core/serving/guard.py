"""The governance policy at serving: prompts and outputs scanned, redacted or refused.

Every prompt (each chat message) passes the policy's redactor before the model sees it and
every output before the client does. A finding the policy redacts, masks or hashes is
rewritten; one it refuses (or drops) refuses the request (HTTP 400, ``content_policy``) or,
for an output, withholds it (``finish_reason: "content_filter"``). Each decision becomes one
line of the audit log: time, model, adapter, direction, rule, action, count; never content.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from polyadapt.serving.schemas import ApiError
from polyadapt.types import GenerationRequest, GenerationResult

if TYPE_CHECKING:  # pragma: no cover
    from polyadapt.governance.audit import AuditLog
    from polyadapt.governance.policy import Policy
    from polyadapt.governance.redact import Redactor, TextOutcome
    from polyadapt.serving.metrics import ServingMetrics

#: What a client gets instead of an output the policy withholds.
WITHHELD = ""


def refusal() -> ApiError:
    """The 400 answer to a request whose prompt holds what the policy refuses (no rule named:
    the audit log has it, and naming it would tell a prober what was found)."""
    return ApiError(
        400,
        "the request was refused by the serving policy: the prompt holds content "
        "the policy does not allow (see the audit log for the rule)",
        code="content_policy",
    )


class ServingGuard:
    """Applies ``policy`` through ``redactor`` to prompts and outputs and audits each decision."""

    def __init__(self, policy: Policy, redactor: Redactor, audit: AuditLog):
        self.policy, self.redactor, self.audit = policy, redactor, audit
        self.metrics: ServingMetrics | None = None  # the app's, set when it is built

    def _audit(self, outcome: TextOutcome, *, model: str, adapter: str | None, direction: str) -> None:
        for kind, count in outcome.findings.items():
            self.audit.record(
                adapter=adapter,
                model=model,
                direction=direction,
                rule=f"pii.{kind}",
                action=outcome.actions.get(kind, "redact"),
                count=count,
            )
        if outcome.blocked_terms:
            self.audit.record(
                adapter=adapter,
                model=model,
                direction=direction,
                rule="blocked_terms",
                action=self.policy.blocked_terms_action,
                count=outcome.blocked_terms,
            )
        if self.metrics is not None:
            self.metrics.count_governance(
                outcome, direction=direction, blocked_terms_action=self.policy.blocked_terms_action
            )

    def _apply(self, text: str, *, model: str, adapter: str | None, direction: str) -> tuple[str, bool]:
        """(text as it may pass, whether the policy refuses it)."""
        outcome = self.redactor.apply(text)
        self._audit(outcome, model=model, adapter=adapter, direction=direction)
        return outcome.text, bool(outcome.refused or outcome.dropped)

    def check_request(self, request: GenerationRequest, *, model: str) -> GenerationRequest:
        """``request`` with its prompt redacted; :class:`ApiError` 400 when the policy refuses it."""
        if not self.policy.serving.scan_prompts:
            return request
        refused = False
        prompt, messages, suffix = request.prompt, request.messages, request.suffix
        if prompt is not None:
            prompt, refused = self._apply(prompt, model=model, adapter=request.adapter, direction="prompt")
        if suffix is not None:  # fill-in-the-middle: the suffix reaches the model too
            suffix, refused_here = self._apply(suffix, model=model, adapter=request.adapter, direction="prompt")
            refused = refused or refused_here
        if messages is not None:
            cleaned = []
            for message in messages:
                content, refused_here = self._apply(
                    message["content"], model=model, adapter=request.adapter, direction="prompt"
                )
                refused = refused or refused_here
                cleaned.append({**message, "content": content})
            messages = cleaned
        if refused:
            raise refusal()
        return replace(request, prompt=prompt, messages=messages, suffix=suffix)

    def check_result(self, result: GenerationResult, *, model: str, adapter: str | None) -> GenerationResult:
        """``result`` with its text redacted, or withheld (``content_filter``) when refused; the
        token log-probabilities of a text changed either way are dropped (their tokens would
        spell what was removed)."""
        if not self.policy.serving.scan_outputs:
            return result
        text, refused = self._apply(result.text, model=model, adapter=adapter, direction="output")
        if refused:
            return replace(result, text=WITHHELD, finish_reason="content_filter", logprobs=None)
        return replace(result, text=text, logprobs=result.logprobs if text == result.text else None)

    def check_prompt_text(self, text: str, *, model: str, adapter: str | None) -> str:
        """One input text (a route's prompt or document) as it may reach the model, audited as a
        prompt; :class:`ApiError` 400 ``content_policy`` when the policy refuses it."""
        if not self.policy.serving.scan_prompts:
            return text
        cleaned, refused = self._apply(text, model=model, adapter=adapter, direction="prompt")
        if refused:
            raise refusal()
        return cleaned

    def check_output_text(
        self, text: str, *, model: str, adapter: str | None, direction: str = "output"
    ) -> tuple[str, bool]:
        """(one output text as the client may see it, whether it is withheld), audited under
        ``direction``; a withheld text is :data:`WITHHELD`."""
        if not self.policy.serving.scan_outputs:
            return text, False
        cleaned, refused = self._apply(text, model=model, adapter=adapter, direction=direction)
        return (WITHHELD, True) if refused else (cleaned, False)

    def redact(self, text: str) -> str:
        """``text`` with the policy's redactions applied, not audited (for the parts of an output
        already checked whole) and only where outputs are scanned."""
        if not self.policy.serving.scan_outputs:
            return text
        return self.redactor.apply(text).text
