"""The lean gated MLP: same loss and gradients bit for bit, one activation fewer per MLP."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from polyadapt_text.lean_mlp import _lean_forward, use_lean_gated_mlps  # noqa: E402
from polyadapt_text.loss import CausalLMLoss  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402
from transformers.models.llama.modeling_llama import LlamaMLP  # noqa: E402


def _tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=97,
        hidden_size=32,
        intermediate_size=88,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        initializer_range=0.2,
    )
    return LlamaForCausalLM(config)


def _with_lora(model, targets, dropout):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, target_modules=targets, init_lora_weights=False)
    return get_peft_model(model, config)


def _batch(seed: int = 1) -> dict:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 97, (2, 24), generator=generator)
    labels = ids.clone()
    labels[0, :5] = -100
    return {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids)}


def _plain_loss(model) -> torch.Tensor:
    """The loss as transformers computes it, through the model's own MLP forward."""
    batch = _batch()
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), reduction="sum"
    )


def _loss_and_grads(model, compute):
    torch.manual_seed(7)  # the same dropout masks in both runs
    model.zero_grad()
    loss = compute(model)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(
    ("targets", "dropout", "autocast"),
    [
        (["q_proj", "k_proj", "v_proj", "o_proj"], 0.0, False),
        (["gate_proj", "up_proj", "down_proj", "q_proj"], 0.1, False),
        (["q_proj", "k_proj", "v_proj", "o_proj"], 0.0, True),  # bf16 activations, as precision auto may pick
    ],
)
def test_lean_mlp_gives_the_same_loss_and_gradients_bit_for_bit(targets, dropout, autocast):
    plain = _with_lora(_tiny_llama(), targets, dropout).train()
    lean = copy.deepcopy(plain)
    assert use_lean_gated_mlps(lean) == 2

    def loss(model):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            return _plain_loss(model)

    plain_loss, plain_grads = _loss_and_grads(plain, loss)
    lean_loss, lean_grads = _loss_and_grads(lean, loss)
    assert torch.equal(plain_loss, lean_loss)
    assert plain_grads.keys() == lean_grads.keys() and plain_grads
    for name, grad in plain_grads.items():
        assert torch.equal(grad, lean_grads[name]), name


def test_the_loss_wrapper_gives_the_model_lean_mlps_and_the_same_gradients_under_checkpointing():
    plain = _with_lora(_tiny_llama(), ["q_proj", "v_proj"], 0.0).train()
    checkpointed = copy.deepcopy(plain)
    checkpointed.get_base_model().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    scorer = CausalLMLoss(checkpointed)
    assert all(m.forward.__func__ is _lean_forward for m in checkpointed.modules() if isinstance(m, LlamaMLP))
    plain_loss, plain_grads = _loss_and_grads(plain, _plain_loss)
    lean_loss, lean_grads = _loss_and_grads(checkpointed, lambda m: scorer(_batch()))
    assert torch.allclose(plain_loss, lean_loss, rtol=1e-5)
    for name, grad in plain_grads.items():
        assert torch.allclose(grad, lean_grads[name], rtol=1e-4, atol=1e-6), name


def _saved_bytes(model) -> int:
    storages: dict[int, int] = {}
    frozen = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(tensor):
        ptr = tensor.untyped_storage().data_ptr()
        if ptr not in frozen:
            storages[ptr] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _plain_loss(model)
    return sum(storages.values())


def test_lean_mlp_keeps_one_activation_fewer_per_mlp():
    plain = _with_lora(_tiny_llama(), ["q_proj", "k_proj", "v_proj", "o_proj"], 0.0)
    lean = copy.deepcopy(plain)
    use_lean_gated_mlps(lean)
    config = plain.get_base_model().config
    silu_output = 2 * 24 * config.intermediate_size * 4  # batch x length x width, fp32
    assert _saved_bytes(plain) - _saved_bytes(lean) == config.num_hidden_layers * silu_output


def test_calling_it_again_changes_nothing():
    model = _tiny_llama()
    assert use_lean_gated_mlps(model) == 2
    forwards = [m.__dict__["forward"] for m in model.modules() if isinstance(m, LlamaMLP)]
    assert use_lean_gated_mlps(model) == 2
    assert [m.__dict__["forward"] for m in model.modules() if isinstance(m, LlamaMLP)] == forwards


class _ScaledMLP(LlamaMLP):
    """A gated MLP of the same shape whose forward does something else."""

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x)) * 0.5


def test_a_gated_mlp_with_another_forward_keeps_its_own():
    model = _tiny_llama()
    scaled = _ScaledMLP(model.config)
    scaled.load_state_dict(model.model.layers[0].mlp.state_dict())
    model.model.layers[0].mlp = scaled
    assert use_lean_gated_mlps(model) == 1  # only the second layer's plain LlamaMLP
    assert "forward" not in scaled.__dict__


def test_an_mlp_wrapped_by_someone_else_is_left_alone():
    model = _tiny_llama()
    mlp = model.model.layers[1].mlp
    wrapped = mlp.forward

    def hook(x):
        return wrapped(x)

    mlp.forward = hook  # as accelerate's offload hooks do
    assert use_lean_gated_mlps(model) == 1
    assert mlp.__dict__["forward"] is hook
