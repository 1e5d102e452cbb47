"""The DPO loss against TRL's ``DPOTrainer`` on the same tiny model and the same pairs: the
token ids of prompt and answers, the summed answer log-probabilities, the rewards and the
loss agree; the reference is the adapter disabled (no second copy of the weights)."""

from __future__ import annotations

import pytest
import torch
from polyadapt_text.dpo import PreferenceLoss
from polyadapt_text.preference import PreferenceCollator, PreferenceExample, build_pairs, fit_pair

PAIRS = [
    {
        "prompt": [{"role": "user", "content": "What is the deductible of the storm rider?"}],
        "chosen": "The deductible is 250 euros per claim.",
        "rejected": "No idea, figure it out yourself.",
    },
    {
        "prompt": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Can I file a claim after the storm?"},
        ],
        "chosen": "Yes: please file it within 30 days.",
        "rejected": "We guarantee every claim is paid tomorrow.",
    },
]


LORA = dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)


def load_tiny(folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), AutoTokenizer.from_pretrained(folder)


@pytest.fixture
def peft_model(tiny_text_model):
    from peft import LoraConfig, get_peft_model

    base, tokenizer = load_tiny(tiny_text_model)
    # random B as well as A, so that the adapter changes the log-probabilities
    return get_peft_model(base, LoraConfig(**LORA)), tokenizer


def trl_trainer(folder, tmp_path, loss_type: str):
    """TRL's DPO trainer on the tiny base, attaching the adapter itself (so that its reference
    is the base with the adapter disabled, as ours: given a PEFT model, TRL keeps a copy of
    that adapter as the reference instead)."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    records = [
        {
            "prompt": p["prompt"],
            "chosen": [{"role": "assistant", "content": p["chosen"]}],
            "rejected": [{"role": "assistant", "content": p["rejected"]}],
        }
        for p in PAIRS
    ]
    args = DPOConfig(
        output_dir=str(tmp_path / "trl"),
        beta=0.1,
        loss_type=[loss_type],
        per_device_train_batch_size=2,
        report_to=[],
        use_cpu=True,
        bf16=False,
        max_length=None,
        dataset_num_proc=None,
    )
    base, tokenizer = load_tiny(folder)
    dataset = Dataset.from_list(records)
    trainer = DPOTrainer(
        model=base, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=LoraConfig(**LORA)
    )
    return trainer, tokenizer


def trl_batch_metrics(trainer):
    """TRL's tokenized pairs, and its loss and metrics on one batch of them."""
    rows = [trainer.train_dataset[i] for i in range(len(PAIRS))]
    batch = trainer.data_collator(rows)
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch)
    mode = "train" if trainer.model.training else "eval"
    metrics = {key: values[-1] for key, values in trainer._metrics[mode].items()}
    return rows, float(loss), metrics


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_loss_logps_and_rewards_match_trl(tiny_text_model, tmp_path, loss_type):
    trainer, tokenizer = trl_trainer(tiny_text_model, tmp_path, loss_type)
    model = trainer.model.eval()
    trl_rows, trl_loss, metrics = trl_batch_metrics(trainer)

    pairs = build_pairs(tokenizer, PAIRS, max_length=512)
    scorer = PreferenceLoss(model, beta=0.1, kind=loss_type)
    batch = PreferenceCollator(tokenizer.pad_token_id)(pairs)
    with torch.no_grad():
        ours = scorer(batch) / batch["num_items"]
        scores = scorer.scores(batch)

    for pair, row in zip(pairs, trl_rows):  # the same tokens: prompt with generation prompt, answers with <|im_end|>
        assert (pair.prompt_ids, pair.chosen_ids, pair.rejected_ids) == (
            row["prompt_ids"],
            row["chosen_ids"],
            row["rejected_ids"],
        )
    assert scores.margins().abs().min() > 1e-3, "the adapter should move the log-probabilities"
    assert ours.item() == pytest.approx(trl_loss, rel=1e-4, abs=1e-5)
    assert scores.policy_chosen.mean().item() == pytest.approx(metrics["logps/chosen"], rel=1e-4)
    assert scores.policy_rejected.mean().item() == pytest.approx(metrics["logps/rejected"], rel=1e-4)
    rewards = 0.1 * scores.margins()
    assert rewards.mean().item() == pytest.approx(metrics["rewards/margins"], rel=1e-3, abs=1e-6)
    assert (rewards > 0).float().mean().item() == pytest.approx(metrics["rewards/accuracies"])


def test_reference_is_the_adapter_disabled_and_gradients_reach_the_adapter_only(peft_model):
    model, tokenizer = peft_model
    pairs = build_pairs(tokenizer, PAIRS, max_length=512)
    batch = PreferenceCollator(tokenizer.pad_token_id)(pairs)
    scorer = PreferenceLoss(model, beta=0.1)
    scores = scorer.scores(batch)
    with torch.no_grad(), model.disable_adapter():
        plain = PreferenceLoss(model).row_logps(batch)
    assert torch.allclose(torch.cat([scores.ref_chosen, scores.ref_rejected]), plain)
    assert not scores.ref_chosen.requires_grad and scores.policy_chosen.requires_grad
    scorer(batch).backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    assert grads and all("lora_" in name for name in grads)
    assert any(g.abs().sum() > 0 for g in grads.values())


def test_bf16_autocast_on_cpu_gives_the_fp32_loss_closely(peft_model):
    model, tokenizer = peft_model
    batch = PreferenceCollator(tokenizer.pad_token_id)(build_pairs(tokenizer, PAIRS, max_length=512))
    scorer = PreferenceLoss(model, beta=0.1)
    with torch.no_grad():
        exact = scorer.scores(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = scorer.scores(batch)
            loss = scorer(batch)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert torch.allclose(low.policy_chosen, exact.policy_chosen, rtol=0.05, atol=0.5)


def test_a_long_pair_keeps_the_end_of_its_prompt_and_the_start_of_its_answers():
    pair = PreferenceExample(list(range(100)), list(range(200, 230)), list(range(300, 310)))
    cut = fit_pair(pair, 64)
    assert cut is not None
    assert cut.prompt_ids == list(range(66, 100))  # 64 - 30 tokens of prompt, its end
    assert cut.chosen_ids == list(range(200, 230)) and cut.rejected_ids == list(range(300, 310))
    cut = fit_pair(pair, 40)  # the prompt keeps half the budget; the answers are cut after it
    assert cut.prompt_ids == list(range(80, 100))
    assert cut.chosen_ids == list(range(200, 220)) and cut.rejected_ids == list(range(300, 310))
    assert fit_pair(PreferenceExample([], [1], [2]), 8) is None


def test_collated_batch_puts_chosen_rows_first_with_labels_on_answers_only():
    pairs = [PreferenceExample([1, 2], [3, 4, 5], [6]), PreferenceExample([7], [8], [9, 10])]
    batch = PreferenceCollator(pad_token_id=0)(pairs)
    assert batch["num_items"] == 2
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5], [7, 8, 0, 0, 0], [1, 2, 6, 0, 0], [7, 9, 10, 0, 0]]
    assert batch["labels"].tolist() == [
        [-100, -100, 3, 4, 5],
        [-100, 8, -100, -100, -100],
        [-100, -100, 6, -100, -100],
        [-100, 9, 10, -100, -100],
    ]
    assert batch["attention_mask"].sum().item() == batch["num_tokens"] == 13
