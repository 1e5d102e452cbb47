"""The code plugin's metric rows against the promotion gate: perplexity, next-line and FIM
exact match are domain metrics, pass@k is one too when a task set is given (its role is
``task_options.tasks_role``), and the general perplexity is the forgetting check."""

from __future__ import annotations

import pytest
from polyadapt.lineage.registry import PromotionGate, check_promotion
from polyadapt.types import MetricRow
from polyadapt_code.options import CodeOptions


def code_rows(
    *, ppl=(3.0, 2.0), next_line=(0.2, 0.3), fim=(0.1, 0.2), general=(20.0, 20.5), pass1=(0.4, 0.6), tasks_role="domain"
):
    """Rows shaped exactly as ``polyadapt_code.evaluate`` writes them."""
    return [
        MetricRow("held-out files", "perplexity", *ppl, role="domain"),
        MetricRow("general", "perplexity", *general, role="general"),
        MetricRow("held-out files", "next-line exact match", *next_line, lower_is_better=False, role="domain"),
        MetricRow("held-out files", "FIM exact match", *fim, lower_is_better=False, role="domain"),
        MetricRow("tasks", "pass@1", *pass1, lower_is_better=False, role=tasks_role),
    ]


def test_pass_at_k_is_a_domain_metric_by_default():
    assert CodeOptions().tasks_role == "domain"


def test_an_adapter_better_everywhere_passes():
    result = check_promotion(code_rows(), PromotionGate())
    assert result.passed, result.failures()
    gated = {(c.dataset, c.metric): c.role for c in result.checks}
    assert gated == {
        ("held-out files", "perplexity"): "domain",
        ("general", "perplexity"): "general",
        ("held-out files", "next-line exact match"): "domain",
        ("held-out files", "FIM exact match"): "domain",
        ("tasks", "pass@1"): "domain",
    }


@pytest.mark.parametrize(
    "worse",
    [
        {"next_line": (0.3, 0.2)},  # lower perplexity does not excuse worse completions
        {"fim": (0.3, 0.2)},
        {"pass1": (0.6, 0.4)},  # nor a task set that now fails more
        {"ppl": (2.0, 2.5)},
    ],
)
def test_any_worse_domain_metric_refuses(worse):
    result = check_promotion(code_rows(**worse), PromotionGate())
    assert not result.passed
    assert len([c for c in result.checks if not c.passed]) == 1


def test_unchanged_exact_match_passes_when_something_improves():
    # a small model often leaves exact match where it was (0 -> 0): not worse, so allowed
    result = check_promotion(code_rows(next_line=(0.0, 0.0), fim=(0.0, 0.0), pass1=(0.0, 0.0)), PromotionGate())
    assert result.passed, result.failures()
    # ... but nothing better at all is refused
    result = check_promotion(
        code_rows(ppl=(2.0, 2.0), next_line=(0.0, 0.0), fim=(0.0, 0.0), pass1=(0.0, 0.0)), PromotionGate()
    )
    assert not result.passed and "no domain metric is better" in result.failures()[0]


def test_margin_and_roles_of_the_task_set():
    # with a 10% margin, one domain metric clearing it is enough
    gate = PromotionGate(min_domain_improvement=0.10)
    assert check_promotion(
        code_rows(ppl=(3.0, 2.9), next_line=(0.2, 0.2), fim=(0.1, 0.1), pass1=(0.4, 0.6)), gate
    ).passed
    assert not check_promotion(
        code_rows(ppl=(3.0, 2.9), next_line=(0.2, 0.2), fim=(0.1, 0.1), pass1=(0.4, 0.4)), gate
    ).passed
    # tasks_role other: pass@k is reported, not gated; general: a regression check
    assert check_promotion(code_rows(pass1=(0.6, 0.4), tasks_role="other"), PromotionGate()).passed
    assert not check_promotion(code_rows(pass1=(0.6, 0.4), tasks_role="general"), PromotionGate()).passed
