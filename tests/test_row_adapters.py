"""Per-row adapters stacked in one pass (polyadapt.row_adapters) give what PEFT's mixed batch gives."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from polyadapt.row_adapters import BASE_ROW, adapters_by_row, rows_supported  # noqa: E402
from polyadapt.testing.models import build_tiny_llama  # noqa: E402

#: Adapters that differ in rank, targets, scaling rule and alpha, as users' adapters do.
ADAPTERS = {
    "small": dict(r=2, lora_alpha=4, target_modules=["q_proj"]),
    "wide": dict(r=8, lora_alpha=8, target_modules=["q_proj", "v_proj", "gate_proj", "down_proj"]),
    "rs": dict(r=4, lora_alpha=16, use_rslora=True, target_modules=["k_proj", "o_proj", "up_proj"]),
}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The tiny Llama with the three random (non-zero) adapters above loaded into one PeftModel."""
    folder = tmp_path_factory.mktemp("rows")
    model_dir = build_tiny_llama(folder / "base")
    for seed, (name, options) in enumerate(ADAPTERS.items()):
        torch.manual_seed(seed)
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        config = LoraConfig(init_lora_weights=False, task_type="CAUSAL_LM", **options)
        get_peft_model(base, config).save_pretrained(folder / name)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(base, folder / "small", adapter_name="small")
    for name in ("wide", "rs"):
        peft_model.load_adapter(folder / name, adapter_name=name)
    return peft_model.eval()


def batch(rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(7)
    ids = torch.randint(5, 300, (rows, 12))
    return ids, torch.ones_like(ids)


@torch.inference_mode()
def peft_logits(model, names):
    ids, mask = batch(len(names))
    return model(input_ids=ids, attention_mask=mask, adapter_names=names).logits


@torch.inference_mode()
def stacked_logits(model, names):
    ids, mask = batch(len(names))
    with adapters_by_row(model, names) as extra:
        assert extra == {}, "plain LoRA adapters must take the stacked path"
        return model(input_ids=ids, attention_mask=mask).logits


def test_stacked_rows_equal_peft_mixed_batch(model):
    names = ["wide", BASE_ROW, "small", "rs", "wide", "small"]
    expected = peft_logits(model, names)
    got = stacked_logits(model, names)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4)
    # and each row really is its own adapter: rows for different adapters differ from the base row
    assert not torch.allclose(got[0], got[1], atol=1e-3)
    assert not torch.allclose(got[2], got[1], atol=1e-3)


def test_each_row_equals_that_adapter_alone(model):
    names = ["rs", "small", BASE_ROW, "wide"]
    together = stacked_logits(model, names)
    for row, name in enumerate(names):
        ids, mask = batch(len(names))
        with torch.inference_mode(), adapters_by_row(model, [name]):
            alone = model(input_ids=ids[row : row + 1], attention_mask=mask[row : row + 1]).logits[0]
        assert torch.allclose(together[row], alone, atol=1e-5, rtol=1e-4), name


def test_greedy_generation_matches_peft_mixed_batch(model):
    names = ["small", "rs", BASE_ROW, "wide"]
    ids, mask = batch(len(names))
    settings = dict(max_new_tokens=10, min_new_tokens=10, do_sample=False, pad_token_id=0)
    with torch.inference_mode():
        expected = model.generate(input_ids=ids, attention_mask=mask, adapter_names=names, **settings)
        with adapters_by_row(model, names) as extra:
            got = model.generate(input_ids=ids, attention_mask=mask, **settings, **extra)
    assert torch.equal(got, expected)


def test_hooks_and_adapter_state_are_restored(model):
    ids, mask = batch(2)
    with torch.inference_mode(), adapters_by_row(model, ["wide", "wide"]):
        wide = model(input_ids=ids, attention_mask=mask).logits
    with torch.inference_mode():
        stacked_logits(model, ["small", "rs"])
        after = model(input_ids=ids, attention_mask=mask).logits  # the active adapter, no hooks left
    assert torch.allclose(after, wide, atol=1e-6)
    assert all(not module._forward_hooks for module in model.modules())


def test_a_batch_of_the_wrong_size_is_refused_not_misapplied(model):
    ids, mask = batch(3)
    with torch.inference_mode(), adapters_by_row(model, ["small", "rs"]):
        with pytest.raises(RuntimeError, match="a batch of 3 rows reached a layer set up for 2"):
            model(input_ids=ids, attention_mask=mask)


def test_dora_falls_back_to_peft_mixed_batch(tmp_path):
    model_dir = build_tiny_llama(tmp_path / "base")
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(r=2, target_modules=["q_proj"], use_dora=True, init_lora_weights=False)
    peft_model = get_peft_model(base, config, adapter_name="dora")
    peft_model.add_adapter("plain", LoraConfig(r=2, target_modules=["v_proj"], init_lora_weights=False))
    assert not rows_supported(peft_model, ["dora", "plain"])
    assert rows_supported(peft_model, ["plain"])
    with adapters_by_row(peft_model, ["dora", "plain"]) as extra:
        assert extra == {"adapter_names": ["dora", "plain"]}
