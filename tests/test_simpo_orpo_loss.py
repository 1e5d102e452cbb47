"""SimPO and ORPO against TRL's implementations on the same tiny model and the same pairs.

TRL 1.16 ships both under ``trl.experimental``: SimPO as ``CPOTrainer(loss_type="simpo")``
(with ``cpo_alpha=0``: no behaviour-cloning term, which is SimPO as published) and ORPO as
``ORPOTrainer``. Their legacy tokenization differs from ours (and from ``DPOTrainer``'s,
which ours matches) only by one more EOS after the chat template's end-of-turn; their
tokens are fed to our collator as they are, so the comparison is of the losses,
log-probabilities and rewards on one batch. Neither objective runs the reference (the
adapter disabled), and gradients reach the adapter only.
"""

from __future__ import annotations

import pytest
import torch
from polyadapt_text.data import IGNORE
from polyadapt_text.dpo import ReferenceFreeLoss, log_odds_ratios, orpo_losses, simpo_losses
from polyadapt_text.options import TextOptions
from polyadapt_text.preference import PreferenceCollator, PreferenceExample, build_pairs
from polyadapt_text.preference_eval import reference_free_rows
from test_dpo_loss import LORA, PAIRS, load_tiny

BETA, GAMMA, LAMBDA = 2.0, 0.5, 0.1


def trl_trainer(folder, tmp_path, objective: str):
    """TRL's CPO (SimPO loss) or ORPO trainer on the tiny base, attaching the adapter itself."""
    from datasets import Dataset
    from peft import LoraConfig

    records = [
        {
            "prompt": p["prompt"],
            "chosen": [{"role": "assistant", "content": p["chosen"]}],
            "rejected": [{"role": "assistant", "content": p["rejected"]}],
        }
        for p in PAIRS
    ]
    common = dict(
        output_dir=str(tmp_path / "trl"),
        per_device_train_batch_size=2,
        report_to=[],
        use_cpu=True,
        bf16=False,
        max_length=512,
        remove_unused_columns=False,
    )
    if objective == "simpo":
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        args = CPOConfig(beta=BETA, loss_type="simpo", simpo_gamma=GAMMA, cpo_alpha=0.0, **common)
        trainer_class = CPOTrainer
    else:
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        args = ORPOConfig(beta=LAMBDA, **common)
        trainer_class = ORPOTrainer
    base, tokenizer = load_tiny(folder)
    trainer = trainer_class(
        model=base,
        args=args,
        train_dataset=Dataset.from_list(records),
        processing_class=tokenizer,
        peft_config=LoraConfig(**LORA),
    )
    return trainer, tokenizer


def trl_batch(trainer):
    """TRL's tokenized pairs as our examples, and TRL's loss and metrics on them as one batch."""
    rows = [trainer.train_dataset[i] for i in range(len(PAIRS))]
    batch = trainer.data_collator(rows)
    trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch)
    metrics = {key: values[-1] for key, values in trainer._stored_metrics["train"].items()}
    pairs = []
    for row in rows:
        cut = row["chosen_labels"].count(IGNORE)
        assert row["rejected_labels"].count(IGNORE) == cut
        assert row["chosen_input_ids"][:cut] == row["rejected_input_ids"][:cut]
        pairs.append(
            PreferenceExample(
                row["chosen_input_ids"][:cut], row["chosen_input_ids"][cut:], row["rejected_input_ids"][cut:]
            )
        )
    return pairs, float(loss), metrics


def assert_our_tokens_less_trls_extra_eos(trl_pairs, tokenizer):
    ours = build_pairs(tokenizer, PAIRS, max_length=512)
    for mine, theirs in zip(ours, trl_pairs, strict=True):
        assert mine.prompt_ids == theirs.prompt_ids
        assert mine.chosen_ids + [tokenizer.eos_token_id] == theirs.chosen_ids
        assert mine.rejected_ids + [tokenizer.eos_token_id] == theirs.rejected_ids


def test_simpo_loss_logps_and_rewards_match_trl_cpo_simpo(tiny_text_model, tmp_path):
    trainer, tokenizer = trl_trainer(tiny_text_model, tmp_path, "simpo")
    pairs, trl_loss, metrics = trl_batch(trainer)
    assert_our_tokens_less_trls_extra_eos(pairs, tokenizer)
    scorer = ReferenceFreeLoss(trainer.model, "simpo", beta=BETA, gamma=GAMMA)
    assert scorer._fused  # the fused projection + cross-entropy path, no full-vocabulary logits
    batch = PreferenceCollator(tokenizer.pad_token_id)(pairs)
    with torch.no_grad():
        ours = scorer(batch) / batch["num_items"]
        chosen, rejected = scorer.averages(batch)
        scores = scorer.scores(batch)

    assert (chosen - rejected).abs().min() > 1e-3
    assert ours.item() == pytest.approx(trl_loss, rel=1e-4, abs=1e-6)
    assert chosen.mean().item() == pytest.approx(metrics["logps/chosen"], rel=1e-4)
    assert rejected.mean().item() == pytest.approx(metrics["logps/rejected"], rel=1e-4)
    assert (BETA * chosen).mean().item() == pytest.approx(metrics["rewards/chosen"], rel=1e-4)
    assert (BETA * rejected).mean().item() == pytest.approx(metrics["rewards/rejected"], rel=1e-4)

    options = TextOptions(objective="simpo", simpo_beta=BETA, simpo_gamma=GAMMA)
    rows = {row.metric: row for row in reference_free_rows(scores, options)}
    assert rows["reward margin"].adapted == pytest.approx(metrics["rewards/margins"], abs=1e-4)
    assert rows["reward accuracy"].adapted == pytest.approx(metrics["rewards/accuracies"])
    assert rows["SimPO loss"].adapted == pytest.approx(trl_loss, abs=1e-4)
    assert rows["SimPO loss"].lower_is_better and rows["SimPO loss"].role == "other"


def test_orpo_loss_odds_ratio_and_rewards_match_trl_orpo(tiny_text_model, tmp_path):
    trainer, tokenizer = trl_trainer(tiny_text_model, tmp_path, "orpo")
    pairs, trl_loss, metrics = trl_batch(trainer)
    assert_our_tokens_less_trls_extra_eos(pairs, tokenizer)
    scorer = ReferenceFreeLoss(trainer.model, "orpo", lam=LAMBDA)
    collate = PreferenceCollator(tokenizer.pad_token_id)
    batch = collate(pairs)
    with torch.no_grad():
        ours = scorer(batch) / batch["num_items"]
        chosen, rejected = scorer.averages(batch)
        scores = scorer.scores(batch)
        # TRL's NLL term is one token mean over the chosen rows' prompt and answer: ours, scored so
        full = dict(batch)
        chosen_rows = batch["attention_mask"][: len(pairs)] == 1
        labels = torch.where(chosen_rows, batch["input_ids"][: len(pairs)], IGNORE)
        full["labels"] = torch.cat([labels, batch["labels"][len(pairs) :]])
        full_nll = -scorer.row_logps(full)[: len(pairs)].sum() / (labels[:, 1:] != IGNORE).sum()

    lor = log_odds_ratios(chosen, rejected)
    assert chosen.mean().item() == pytest.approx(metrics["logps/chosen"], rel=1e-4)
    assert rejected.mean().item() == pytest.approx(metrics["logps/rejected"], rel=1e-4)
    assert lor.mean().item() == pytest.approx(metrics["log_odds_chosen"], rel=1e-4, abs=1e-6)
    assert torch.nn.functional.logsigmoid(lor).mean().item() == pytest.approx(metrics["log_odds_ratio"], rel=1e-4)
    assert full_nll.item() == pytest.approx(metrics["nll_loss"], rel=1e-4)
    odds_ratio_part = (ours - (-chosen).mean()).item()
    assert full_nll.item() + odds_ratio_part == pytest.approx(trl_loss, rel=1e-4)  # TRL's loss, term for term
    assert odds_ratio_part == pytest.approx(trl_loss - metrics["nll_loss"], rel=1e-4, abs=1e-6)

    rows = {row.metric: row for row in reference_free_rows(scores, TextOptions(objective="orpo"))}
    assert rows["reward margin"].adapted == pytest.approx(metrics["log_odds_chosen"], abs=1e-4)
    assert rows["reward accuracy"].adapted == pytest.approx(metrics["rewards/accuracies"])
    assert rows["ORPO loss"].adapted == pytest.approx(ours.item(), abs=1e-4)


@pytest.mark.parametrize("objective", ["simpo", "orpo"])
def test_no_reference_pass_and_gradients_reach_the_adapter_only(tiny_text_model, objective, monkeypatch):
    from peft import LoraConfig, get_peft_model

    base, tokenizer = load_tiny(tiny_text_model)
    model = get_peft_model(base, LoraConfig(**LORA))
    batch = PreferenceCollator(tokenizer.pad_token_id)(build_pairs(tokenizer, PAIRS, max_length=512))
    scorer = ReferenceFreeLoss(model, objective)

    def no_reference():
        raise AssertionError("the reference-free loss ran the base with the adapter disabled")

    monkeypatch.setattr(model, "disable_adapter", no_reference)
    loss = scorer(batch)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    assert grads and all("lora_" in name for name in grads)
    assert any(g.abs().sum() > 0 for g in grads.values())


def test_the_formulas_at_known_points():
    chosen, rejected = torch.tensor([-1.0, -2.0]), torch.tensor([-2.0, -1.0])
    # SimPO: -log sigmoid(beta * (ac - ar) - gamma)
    expected = -torch.nn.functional.logsigmoid(torch.tensor([2.0 - 0.5, -2.0 - 0.5]))
    assert torch.allclose(simpo_losses(chosen, rejected, 2.0, 0.5), expected)
    # ORPO: log odds(p) = log p - log(1 - p), with p = e^a
    p_c, p_r = torch.exp(chosen), torch.exp(rejected)
    by_hand = torch.log(p_c / (1 - p_c)) - torch.log(p_r / (1 - p_r))
    assert torch.allclose(log_odds_ratios(chosen, rejected), by_hand)
    assert torch.allclose(orpo_losses(chosen, rejected, 0.1), -chosen - 0.1 * torch.nn.functional.logsigmoid(by_hand))
    # an answer predicted with certainty (average log-prob 0) keeps the loss finite
    assert torch.isfinite(orpo_losses(torch.tensor([0.0]), torch.tensor([-1.0]), 0.1)).all()
    assert torch.isfinite(log_odds_ratios(torch.tensor([-1e-9]), torch.tensor([-30.0]))).all()
