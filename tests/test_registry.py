"""The adapter registry: versions, references, the promotion gate, promote, rollback, retire."""

from __future__ import annotations

import math

import pytest
from polyadapt.errors import PolyadaptError
from polyadapt.lineage.registry import (
    PromotionGate,
    PromotionRefused,
    base_matches,
    check_promotion,
    parse_ref,
    relative_improvement,
)
from polyadapt.lineage.store import LineageStore

GATE = PromotionGate(min_domain_improvement=0.05, max_general_regression=0.05)


def _rows(domain: tuple[float, float], general: tuple[float, float] | None = None) -> list[dict]:
    rows = [
        {
            "dataset": "eval.jsonl",
            "metric": "perplexity",
            "base": domain[0],
            "adapted": domain[1],
            "lower_is_better": True,
            "role": "domain",
        }
    ]
    if general is not None:
        rows.append(
            {
                "dataset": "builtin",
                "metric": "perplexity",
                "base": general[0],
                "adapted": general[1],
                "lower_is_better": True,
                "role": "general",
            }
        )
    return rows


@pytest.fixture
def store(tmp_path):
    with LineageStore(f"sqlite:///{tmp_path / 'lineage.db'}") as opened:
        yield opened


def _version(store: LineageStore, n: int, *, rows: list[dict], name: str = "claims", base: str = "org/base"):
    run_id = f"{base}-{name}-run-{n}"
    store.start_run(
        run_id,
        task="text-generation",
        plugin="text",
        config_hash="h",
        config={},
        seed=1,
        environment={},
        base_model=base,
        datasets={},
    )
    adapter = store.register_adapter(
        run_id, base_model=base, name=name, path=f"/runs/{n}/adapter", weights_hash=f"{n:064x}"
    )
    store.record_metrics(run_id, rows)
    return adapter


def test_parse_ref_forms():
    assert parse_ref("claims") == parse_ref("claims")
    assert (parse_ref("claims").name, parse_ref("claims").base, parse_ref("claims").version) == ("claims", None, None)
    assert (parse_ref("claims@3").name, parse_ref("claims@3").version) == ("claims", 3)
    ref = parse_ref("HuggingFaceTB/SmolLM2-135M:claims@12")
    assert (ref.base, ref.name, ref.version) == ("HuggingFaceTB/SmolLM2-135M", "claims", 12)
    for bad in ("claims@x", "claims@0", "base:", "@2"):
        with pytest.raises(PolyadaptError):
            parse_ref(bad)


def test_base_names_match_either_way():
    assert base_matches("HuggingFaceTB/SmolLM2-135M", "SmolLM2-135M")
    assert base_matches("SmolLM2-135M", "HuggingFaceTB/SmolLM2-135M")  # registered under the short name
    assert base_matches("/models/smollm2-q8.gguf", "smollm2-q8")
    assert not base_matches("org/model-a", "model")
    assert not base_matches("SmolLM2-135M", "SmolLM2")


def test_relative_improvement_directions():
    assert relative_improvement(20, 10, True) == pytest.approx(0.5)
    assert relative_improvement(0.5, 0.6, False) == pytest.approx(0.2)
    assert relative_improvement(10, 11, True) == pytest.approx(-0.1)
    assert relative_improvement(0, 0, True) == 0.0 and relative_improvement(0, 1, False) == math.inf
    assert math.isnan(relative_improvement(10, math.nan, True))


def test_gate_rules():
    assert check_promotion(_rows((20, 18), (30, 31)), GATE).passed  # 10 % better; 3.3 % worse
    too_small = check_promotion(_rows((20, 19.5)), GATE)  # 2.5 % better, needs 5 %
    assert not too_small.passed and "at least 5.0% better" in too_small.failures()[0]
    regress = check_promotion(_rows((20, 10), (30, 33)), GATE)  # general 10 % worse, allowed 5 %
    assert not regress.passed and "10.0% worse" in regress.failures()[0]
    assert "allowed <= 5.0% worse" in regress.failures()[0]
    # A zero margin still demands that the adapter beats the base.
    assert not check_promotion(_rows((20, 20)), PromotionGate()).passed
    assert check_promotion(_rows((20, 19.9)), PromotionGate()).passed
    no_domain = check_promotion([{"dataset": "g", "metric": "p", "base": 1, "adapted": 1, "role": "general"}], GATE)
    assert not no_domain.passed and "no domain evaluation" in no_domain.failures()[0]
    assert not check_promotion(_rows((20, math.nan)), GATE).passed
    # Higher-is-better metrics are gated the right way round.
    accuracy = [
        {"dataset": "qa", "metric": "accuracy", "base": 0.5, "adapted": 0.6, "lower_is_better": False, "role": "domain"}
    ]
    assert check_promotion(accuracy, GATE).passed
    # Several domain figures: one clearing the margin is enough, as long as none gets worse.
    flat = {
        "dataset": "qa",
        "metric": "exact match",
        "base": 0.0,
        "adapted": 0.0,
        "lower_is_better": False,
        "role": "domain",
    }
    assert check_promotion([*_rows((20, 15)), flat], GATE).passed
    worse = {**flat, "adapted": -0.1}
    assert not check_promotion([*_rows((20, 15)), worse], GATE).passed


def test_gate_reads_a_governance_policy():
    policy_module = pytest.importorskip("polyadapt.governance.policy")
    gate = policy_module.Policy().promotion
    assert check_promotion(_rows((20, 10), (30, 30)), gate).passed
    assert not check_promotion(_rows((20, 10), (30, 60)), gate).passed


def test_versions_are_numbered_per_base_and_name(store):
    a1 = _version(store, 1, rows=[])
    a2 = _version(store, 2, rows=[])
    other = _version(store, 3, rows=[], name="claims", base="org/other-base")
    assert (a1.version, a2.version, other.version) == (1, 2, 1)
    assert a1.status == "candidate"
    again = store.register_adapter(
        a1.run_id, base_model="org/base", name="claims", path="/x", weights_hash=a1.weights_hash
    )
    assert again == a1  # re-registering the same weights from the same run is idempotent
    with pytest.raises(PolyadaptError, match="not allowed"):
        store.register_adapter(a1.run_id, base_model="org/base", name="bad:name", path="/x", weights_hash="0")
    with pytest.raises(PolyadaptError, match="several base models"):
        store.find_adapter("claims")
    assert store.find_adapter("base:claims@2") == a2  # short base name
    assert store.find_adapter("org/other-base:claims") == other
    assert store.find_adapter(a2.run_id) == a2
    assert [a.ref for a in store.list_adapters(base_model="base")] == ["org/base:claims@1", "org/base:claims@2"]


def test_promotion_refused_when_domain_does_not_improve(store):
    _version(store, 1, rows=_rows((20, 19.8), (30, 30)))
    with pytest.raises(PromotionRefused) as refused:
        store.promote("claims", gate=GATE)
    message = str(refused.value)
    assert "org/base:claims@1" in message and "base 20, adapted 19.8" in message and "1.0% better" in message
    assert "--force" in message
    assert "no domain metric is at least 5.0% better" in message
    assert [c.passed for c in refused.value.checks] == [True, True]  # nothing got worse, too little gained
    assert store.active_adapters() == []
    assert store.registry_version() == 0  # nothing was recorded


def test_promotion_refused_when_general_regresses(store):
    _version(store, 1, rows=_rows((20, 10), (30, 36)))
    with pytest.raises(PromotionRefused, match=r"builtin perplexity: base 30, adapted 36 \(20.0% worse"):
        store.promote("claims", gate=GATE)


def test_promotion_refused_without_evaluation(store):
    _version(store, 1, rows=[])
    with pytest.raises(PromotionRefused, match="no domain evaluation"):
        store.promote("claims", gate=GATE)


def test_forced_promotion_is_recorded_as_forced(store):
    _version(store, 1, rows=_rows((20, 25)))
    promoted = store.promote("claims", gate=GATE, force=True, actor="ana", reason="hotfix")
    assert promoted.status == "active"
    [event] = store.lineage("claims@1")["adapters"][0]["events"]
    assert event["event"] == "force-promote" and event["forced"] is True and event["actor"] == "ana"
    assert event["reason"].startswith("hotfix (failed checks: no domain metric is at least 5.0% better")
    assert "domain eval.jsonl perplexity: base 20, adapted 25 (25.0% worse, must not be worse) FAILS" in event["reason"]


def test_promote_retires_the_previous_and_rollback_restores_it(store):
    v1 = _version(store, 1, rows=_rows((20, 15)))
    v2 = _version(store, 2, rows=_rows((20, 12)))
    v3 = _version(store, 3, rows=_rows((20, 10)))
    store.promote("claims", version=1, gate=GATE)
    store.promote("claims", version=2, gate=GATE)
    store.promote("claims", gate=GATE)  # newest: 3
    statuses = {a.version: a.status for a in store.list_adapters()}
    assert statuses == {1: "retired", 2: "retired", 3: "active"}
    before = store.registry_version()
    assert store.promote("claims", gate=GATE).id == v3.id  # already active: no change
    assert store.registry_version() == before

    assert store.rollback("claims").id == v2.id
    assert {a.version: a.status for a in store.list_adapters()} == {1: "retired", 2: "active", 3: "retired"}
    assert store.rollback("claims").id == v1.id
    assert [a.id for a in store.active_adapters()] == [v1.id]
    with pytest.raises(PolyadaptError, match="no earlier one to roll back to"):
        store.rollback("claims")
    assert store.registry_version() > before
    events = store.lineage("claims@2")["adapters"][0]["events"]
    assert [(e["event"], e["version"], e["previous_version"]) for e in events] == [
        ("promote", 2, 1),
        ("promote", 3, 2),
        ("rollback", 2, 3),
        ("rollback", 1, 2),
    ]


def test_rollback_skips_retired_versions_and_needs_an_active_one(store):
    _version(store, 1, rows=_rows((20, 15)))
    v2 = _version(store, 2, rows=_rows((20, 12)))
    _version(store, 3, rows=_rows((20, 10)))
    with pytest.raises(PolyadaptError, match="no active version"):
        store.rollback("claims")
    for version in (1, 2, 3):
        store.promote("claims", version=version, gate=GATE)
    store.retire("claims", version=2, reason="bad outputs")
    assert store.rollback("claims").version == 1  # 2 was retired by hand: never back
    assert store.find_adapter("claims@2").status == "retired" and v2.status == "candidate"
    with pytest.raises(PolyadaptError, match="has no version 9"):
        store.promote("claims", version=9, gate=GATE)
    with pytest.raises(PolyadaptError, match="no adapter named 'other'"):
        store.rollback("other")


def test_repromoting_a_retired_version_then_rolling_back(store):
    for n in (1, 2):
        _version(store, n, rows=_rows((20, 10)))
    store.promote("claims", version=1, gate=GATE)
    store.promote("claims", version=2, gate=GATE)
    store.rollback("claims")  # 1 active
    store.promote("claims", version=2, gate=GATE)  # 2 again
    assert store.rollback("claims").version == 1
