"""GGUF export of Qwen2 (Qwen2.5, Qwen2.5-Coder) and the 4- and 5-bit types.

What llama.cpp's ``Qwen2Model`` writes: hyperparameters under ``qwen2.*``, no Q/K
permutation, q/k/v biases, tied or untied output, pre-tokenizer ``qwen2``; checked against
gguf-py's own tables and by reloading the file with transformers. The 4/5-bit types keep the
output projection at q8_0 and norms/biases at f32; their weights are checked against the
originals by dequantizing what was written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
gguf = pytest.importorskip("gguf")

from test_export import assert_reloaded_gguf_matches, logits_of, short_text_run  # noqa: E402

from polyadapt.errors import PolyadaptError  # noqa: E402
from polyadapt.export import EXPORT_RECORD, export_run, file_hashes  # noqa: E402
from polyadapt.lineage.provenance import weights_hash  # noqa: E402
from polyadapt.lineage.store import LineageStore  # noqa: E402
from polyadapt.plugins import PluginManager  # noqa: E402

PROMPTS = ["The Solvanta rider covers the Marlowe deductible.", "def add(a, b):\n    return a + b\n", "17 * 23 = 391"]
LOW_BIT = ["q5_1", "q5_0", "q4_1", "q4_0"]


def build_tiny_qwen2(folder: Path, *, tied: bool = True, seed: int = 0) -> Path:
    """A 2-layer random Qwen2 with random q/k/v biases and a byte-level BPE tokenizer split
    the way Qwen2's is (NFC, Qwen2's regex, then byte-level), saved to ``folder``."""
    from polyadapt_text.gguf_export import QWEN2_SPLIT
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from polyadapt.testing.models import CHATML, CORPUS

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", bos_token=None, pad_token="<|endoftext|>", unk_token=None
    )
    fast.chat_template = CHATML
    fast.save_pretrained(folder)
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(fast) + 16,  # padded past the tokenizer, as Qwen2.5's 151936 is
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=fast.pad_token_id,
        eos_token_id=fast.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=tied,
        initializer_range=0.2,
        rope_theta=1_000_000.0,
    )
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():  # Qwen2's biases start at zero: make them matter
        for name, parameter in model.named_parameters():
            if name.endswith(".bias"):
                parameter.normal_(0.0, 0.2)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


@torch.no_grad()
def fields_of(path: Path) -> dict:
    """The GGUF's metadata, but the token list."""
    reader = gguf.GGUFReader(path)
    return {key: field.contents() for key, field in reader.fields.items() if key != "tokenizer.ggml.tokens"}


def expected_qwen2_names(n_layers: int, *, tied: bool) -> set[str]:
    """The tensor names llama.cpp's qwen2 graph loads, from gguf-py's own tables."""
    names: set[str] = set()
    for tensor in gguf.MODEL_TENSORS[gguf.MODEL_ARCH.QWEN2]:
        if tensor == gguf.MODEL_TENSOR.ROPE_FREQS or (tied and tensor == gguf.MODEL_TENSOR.OUTPUT):
            continue
        template = gguf.TENSOR_NAMES[tensor]
        for bid in range(n_layers) if "{bid}" in template else [None]:
            base = template.format(bid=bid)
            names.add(base + ".weight")
            if tensor in (gguf.MODEL_TENSOR.ATTN_Q, gguf.MODEL_TENSOR.ATTN_K, gguf.MODEL_TENSOR.ATTN_V):
                names.add(base + ".bias")
    return names


@pytest.fixture(scope="module")
def pm():
    import polyadapt_text

    return PluginManager(load_entrypoints=False, plugins={"text": polyadapt_text})


@pytest.fixture(scope="module")
def qwen2_run(pm, tmp_path_factory):
    """A short text run on a tiny tied Qwen2, and the lineage database it was recorded in."""
    root = tmp_path_factory.mktemp("qwen2-export")
    return short_text_run(pm, root, build_tiny_qwen2(root / "tiny-qwen2"))


def peft_model(run):
    """The base with the run's adapter, unmerged: what the export must reproduce."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(run.config.base_model.id, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(run.adapter_dir)).eval()
    return model, AutoTokenizer.from_pretrained(run.config.base_model.id)


@pytest.mark.parametrize("quant", ["f16", "q8_0"])
def test_qwen2_gguf_is_llama_cpps_layout_and_round_trips(pm, qwen2_run, tmp_path, quant):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run, db = qwen2_run
    result = export_run(pm, run.dir, "gguf", quant=quant, out=tmp_path / "gguf", db=db)
    name = f"{run.id}-{quant}.gguf"
    path = tmp_path / "gguf" / name
    config = json.loads((Path(run.config.base_model.id) / "config.json").read_text())

    fields = fields_of(path)
    assert fields["general.architecture"] == "qwen2" and fields["tokenizer.ggml.pre"] == "qwen2"
    assert fields["qwen2.block_count"] == 2 and fields["qwen2.embedding_length"] == 64
    assert fields["qwen2.feed_forward_length"] == 128 and fields["qwen2.context_length"] == 512
    assert fields["qwen2.attention.head_count"] == 4 and fields["qwen2.attention.head_count_kv"] == 2
    assert fields["qwen2.rope.freq_base"] == pytest.approx(1e6)
    assert fields["qwen2.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-6)
    assert "qwen2.rope.dimension_count" not in fields  # Qwen2Model keeps TextModel's parameters
    assert not [key for key in fields if key.startswith("llama.")]
    file_type = gguf.LlamaFileType.MOSTLY_F16 if quant == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0
    assert fields["general.file_type"] == file_type
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.merges"]
    assert fields["tokenizer.ggml.add_bos_token"] is False and "bos_token_id" not in fields
    assert len(gguf.GGUFReader(path).fields["tokenizer.ggml.tokens"].data) == config["vocab_size"]

    kinds = {t.name: t.tensor_type.name for t in gguf.GGUFReader(path).tensors}
    assert set(kinds) == expected_qwen2_names(2, tied=True)  # tied: no output.weight
    assert kinds["blk.0.attn_q.bias"] == kinds["blk.1.attn_v.bias"] == "F32"
    assert kinds["blk.0.attn_q.weight"] == kinds["token_embd.weight"] == quant.upper()

    # no permutation: attn_q is q_proj as it is (up to f16 rounding), its bias too
    reader = {t.name: t for t in gguf.GGUFReader(path).tensors}
    merged_q = gguf.quants.dequantize(reader["blk.0.attn_q.weight"].data, reader["blk.0.attn_q.weight"].tensor_type)
    adapted, base_tokenizer = peft_model(run)
    q_proj = adapted.base_model.model.model.layers[0].self_attn.q_proj
    with torch.no_grad():
        expected_q = (q_proj.base_layer.weight + q_proj.get_delta_weight("default")).numpy()
    assert abs(merged_q.reshape(expected_q.shape) - expected_q).max() < (2e-3 if quant == "f16" else 0.05)
    bias = gguf.quants.dequantize(reader["blk.0.attn_q.bias"].data, reader["blk.0.attn_q.bias"].tensor_type)
    assert torch.allclose(torch.from_numpy(bias.copy()), q_proj.base_layer.bias.detach(), atol=1e-6)

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "gguf", gguf_file=name, dtype=torch.float32).eval()
    assert type(model).__name__ == "Qwen2ForCausalLM" and model.config.tie_word_embeddings
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "gguf", gguf_file=name)
    assert_reloaded_gguf_matches(model, tokenizer, adapted, base_tokenizer, quant, PROMPTS)

    figures = result.facts["verification"]
    assert figures["tokenizer_identical"] and figures["top1_agreement"] >= (0.98 if quant == "f16" else 0.9)
    assert result.facts["architecture"] == "qwen2" and result.facts["pre_tokenizer"] == "qwen2"
    record = json.loads((tmp_path / "gguf" / EXPORT_RECORD).read_text())
    assert record["adapter_weights_hash"] == weights_hash(run.adapter_dir)
    assert record["files"] == {k: v for k, v in file_hashes(tmp_path / "gguf").items() if k != EXPORT_RECORD}
    assert record["facts"]["architecture"] == "qwen2"
    with LineageStore.open(db) as store:
        (stored,) = [e for e in store.exports(run.id) if e["path"] == str((tmp_path / "gguf").resolve())]
    assert stored["format"] == "gguf" and stored["options"] == {"quant": quant}
    assert stored["files"][name] == record["files"][name]


def test_untied_qwen2_writes_its_output_and_reloads(tmp_path):
    """Qwen2.5 from 3B up has its own output projection: written as output.weight."""
    from polyadapt_text.gguf_export import write_gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_tiny_qwen2(tmp_path / "untied", tied=False, seed=3)
    facts = write_gguf(folder, tmp_path / "untied.gguf", "f16", name="untied")
    kinds = {t.name: t.tensor_type.name for t in gguf.GGUFReader(tmp_path / "untied.gguf").tensors}
    assert set(kinds) == expected_qwen2_names(2, tied=False) and kinds["output.weight"] == "F16"
    assert facts["tensors"] == len(kinds)

    original = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="untied.gguf", dtype=torch.float32).eval()
    assert not reloaded.config.tie_word_embeddings
    assert not torch.equal(reloaded.lm_head.weight, reloaded.model.embed_tokens.weight)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    for ours, theirs in zip(
        logits_of(reloaded, tokenizer, PROMPTS), logits_of(original, tokenizer, PROMPTS), strict=True
    ):
        assert float((ours - theirs).abs().max()) < 0.05
        assert torch.equal(ours.argmax(-1), theirs.argmax(-1))


def test_tensor_type_rule():
    from polyadapt_text.gguf_export import tensor_type

    assert tensor_type("blk.0.attn_q.weight", (64, 64), "Q4_0") == "Q4_0"
    assert tensor_type("blk.0.attn_q.bias", (64,), "Q4_0") == "F32"
    assert tensor_type("blk.0.attn_norm.weight", (64,), "F16") == "F32"
    assert tensor_type("output.weight", (400, 64), "Q4_1") == "Q8_0"  # llama-quantize: q6_K
    assert tensor_type("token_embd.weight", (400, 64), "Q5_0", output_like=True) == "Q8_0"
    assert tensor_type("token_embd.weight", (400, 64), "Q5_0") == "Q5_0"  # untied: the file's type
    assert tensor_type("blk.0.ffn_down.weight", (64, 48), "Q4_0") == "F16"  # 48 is no whole block
    assert tensor_type("blk.0.ffn_down.weight", (64, 48), "Q8_0") == "F16"
    assert tensor_type("output.weight", (400, 64), "F16", output_like=True) == "F16"
    assert tensor_type("output.weight", (400, 64), "Q8_0", output_like=True) == "Q8_0"


@pytest.mark.parametrize("quant", LOW_BIT)
def test_low_bit_types_are_written_and_read_back_exactly(tiny_text_model, tmp_path, quant):
    """Each 4/5-bit file: the types the rule gives, weights near the originals, and
    transformers' reader returns exactly what was written."""
    from polyadapt_text.gguf_arch import permute
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    facts = write_gguf_of(tiny_text_model, tmp_path / "m.gguf", quant)
    reader = gguf.GGUFReader(tmp_path / "m.gguf")
    kinds = {t.name: t.tensor_type.name for t in reader.tensors}
    assert kinds["token_embd.weight"] == "Q8_0"  # tied: the output projection
    assert kinds["blk.0.attn_q.weight"] == kinds["blk.1.ffn_down.weight"] == quant.upper()
    assert kinds["blk.0.attn_norm.weight"] == kinds["output_norm.weight"] == "F32"
    assert facts["tensor_types"] == {quant.upper(): 14, "Q8_0": 1, "F32": 5}
    assert fields_of(tmp_path / "m.gguf")["general.file_type"] == getattr(gguf.LlamaFileType, f"MOSTLY_{quant.upper()}")

    original = load_file(str(tiny_text_model / "model.safetensors"))
    tensors = {t.name: t for t in reader.tensors}
    written = tensors["blk.0.ffn_gate.weight"]
    values = gguf.quants.dequantize(written.data, written.tensor_type).reshape(128, 64)
    source = original["model.layers.0.mlp.gate_proj.weight"].numpy()
    error = abs(values - source).max() / abs(source).max()
    assert 0 < error < (0.15 if quant.startswith("q4") else 0.08), error  # quantized, and sanely
    q = tensors["blk.1.attn_q.weight"]
    q_values = gguf.quants.dequantize(q.data, q.tensor_type).reshape(64, 64)
    assert abs(q_values - permute(original["model.layers.1.self_attn.q_proj.weight"].numpy(), 4, 4)).max() < 0.2

    model = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf", dtype=torch.float32)
    loaded = model.model.layers[0].mlp.gate_proj.weight.detach().numpy()
    assert (loaded == values).all()


def write_gguf_of(folder: Path, output: Path, quant: str) -> dict:
    """``write_gguf`` of a model folder, named after the file."""
    from polyadapt_text.gguf_export import write_gguf

    return write_gguf(folder, output, quant, name=output.stem)


def test_low_bit_export_is_judged_by_its_own_threshold(pm, qwen2_run, tmp_path, monkeypatch):
    """``--quant q4_0`` through ``polyadapt export``: recorded like the others when its
    agreement reaches the q4_0 threshold, refused with the figure when it does not."""
    import polyadapt_text.export as text_export

    run, db = qwen2_run
    measured = {}
    real = text_export.compare

    def remember(*args, **kwargs):  # the last comparison is against the unrounded merged model
        figures = real(*args, **kwargs)
        measured.update(figures)
        return figures

    monkeypatch.setattr(text_export, "compare", remember)
    target = tmp_path / "q4"
    need = text_export.MIN_TOP1["q4_0"]
    assert text_export.MIN_TOP1["q8_0"] > text_export.MIN_TOP1["q5_0"] > need >= 0.5
    try:
        result = export_run(pm, run.dir, "gguf", quant="q4_0", out=target, db=db)
    except PolyadaptError as exc:
        assert measured["top1_agreement"] < need
        assert f"top-1 agreement {measured['top1_agreement']:.2%} (at least {need:.0%} needed)" in str(exc)
        assert not target.exists()
    else:
        assert measured["top1_agreement"] >= need
        assert result.facts["tensor_types"]["Q4_0"] == 14 and result.facts["quant"] == "q4_0"
        with LineageStore.open(db) as store:
            assert [e for e in store.exports(run.id) if e["path"] == str(target.resolve())]

    # the tiny random model is refused at q4_0 (0.42 measured); with the floor taken away the same
    # file is kept and recorded like any other, its figure in the record
    monkeypatch.setitem(text_export.MIN_TOP1, "q4_0", 0.0)
    result = export_run(pm, run.dir, "gguf", quant="q4_0", out=target, db=db)
    assert result.facts["tensor_types"] == {"Q4_0": 14, "Q8_0": 1, "F32": 11}
    assert result.facts["verification"]["top1_agreement"] == measured["top1_agreement"]
    record = json.loads((target / EXPORT_RECORD).read_text())
    assert record["options"] == {"quant": "q4_0"} and record["facts"]["quant"] == "q4_0"
    with LineageStore.open(db) as store:
        (stored,) = [e for e in store.exports(run.id) if e["path"] == str(target.resolve())]
    assert stored["adapter_hash"] == weights_hash(run.adapter_dir)


def test_qwen2_pre_tokenizer_and_refusals_are_named():
    from polyadapt_text.gguf_export import QWEN2_SPLIT, check_supported, pre_tokenizer_name

    split = {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": False}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}
    qwen2 = {"type": "Sequence", "pretokenizers": [split, byte_level]}
    assert pre_tokenizer_name({"pre_tokenizer": qwen2}) == "qwen2"
    llama3 = {**split, "pattern": {"Regex": QWEN2_SPLIT.replace(r"\p{N}|", r"\p{N}{1,3}|")}}
    with pytest.raises(PolyadaptError, match=r"pre-tokenizer is \['Split', 'ByteLevel'\]"):
        pre_tokenizer_name({"pre_tokenizer": {"type": "Sequence", "pretokenizers": [llama3, byte_level]}})

    check_supported({"model_type": "qwen2", "use_sliding_window": False, "rope_parameters": {"rope_theta": 1e6}})
    with pytest.raises(PolyadaptError, match=r"qwen2 with use_sliding_window.*--format merged"):
        check_supported({"model_type": "qwen2", "use_sliding_window": True})
    with pytest.raises(PolyadaptError, match=r"rope scaling 'yarn' of qwen2"):
        check_supported({"model_type": "qwen2", "rope_scaling": {"type": "yarn", "factor": 4.0}})
    with pytest.raises(PolyadaptError, match=r"architecture 'qwen3'.*llama, qwen2 \(.*Qwen2\.5-Coder\)"):
        check_supported({"model_type": "qwen3"})
