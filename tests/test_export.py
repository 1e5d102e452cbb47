"""``polyadapt export``: a run's adapter as merged weights, GGUF or a copy, written whole or
not at all, checked by loading it back, and recorded in lineage (adapter hash → file hashes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gguf")

from conftest import domain_text, make_config, write_jsonl  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from polyadapt import runner  # noqa: E402
from polyadapt.cli import app  # noqa: E402
from polyadapt.config import load_config  # noqa: E402
from polyadapt.errors import ConfigError, PolyadaptError  # noqa: E402
from polyadapt.export import EXPORT_RECORD, export_run, file_hashes  # noqa: E402
from polyadapt.lineage.provenance import weights_hash  # noqa: E402
from polyadapt.lineage.store import LineageStore  # noqa: E402
from polyadapt.plugins import PluginManager  # noqa: E402

PROMPTS = ["The Solvanta rider covers the Marlowe deductible.", "Water boils at one hundred degrees."]


@pytest.fixture(scope="module")
def pm():
    import polyadapt_text

    return PluginManager(load_entrypoints=False, plugins={"text": polyadapt_text})


@pytest.fixture(scope="module")
def text_run(pm, tiny_text_model, tmp_path_factory):
    """One short text run shared by the module, and the lineage database it was recorded in."""
    return short_text_run(pm, tmp_path_factory.mktemp("export-run"), tiny_text_model)


def short_text_run(pm, root: Path, base: Path) -> tuple:
    """A 4-step text run on ``base`` under ``root`` (no evaluation), and its lineage database URL."""
    data = {
        "train": write_jsonl(root / "data" / "train.jsonl", [{"text": t} for t in domain_text(40, 1)]),
        "eval": write_jsonl(root / "data" / "eval.jsonl", [{"text": t} for t in domain_text(8, 2)]),
        "general": write_jsonl(root / "data" / "general.jsonl", [{"text": "Water boils at sea level."}] * 2),
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POLYADAPT_HOME", str(root / "state"))
        patch.delenv("POLYADAPT_DB_URL", raising=False)
        patch.setenv("POLYADAPT_SCANCODE", "off")
        config = load_config(make_config(root, base, data, max_steps=4), ["evaluation.enabled=false"])
        run, _, _ = runner.adapt(pm, config)
    return run, f"sqlite:///{root / 'state' / 'lineage.db'}"


@torch.no_grad()
def logits_of(model, tokenizer, prompts=PROMPTS):
    """Logits of ``model`` on each prompt (as ``tokenizer`` splits it), one tensor per prompt."""
    return [model(torch.tensor([tokenizer(p)["input_ids"]])).logits[0].float() for p in prompts]


def peft_model(run):
    """The base with the run's adapter, unmerged: what the export must reproduce."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(run.config.base_model.id, dtype=torch.float32)
    return PeftModel.from_pretrained(base, str(run.adapter_dir)).eval(), AutoTokenizer.from_pretrained(
        run.config.base_model.id
    )


def test_merged_export_gives_the_peft_models_logits_and_is_recorded(pm, text_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run, db = text_run
    result = export_run(pm, run.dir, "merged", out=tmp_path / "merged", db=db)

    folder = tmp_path / "merged"
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= set(result.files)
    merged = AutoModelForCausalLM.from_pretrained(folder)  # plain transformers, no peft
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert merged.dtype == torch.float32
    assert not any("lora" in name for name, _ in merged.named_parameters())
    adapted, base_tokenizer = peft_model(run)
    for ours, theirs in zip(logits_of(merged, tokenizer), logits_of(adapted, base_tokenizer), strict=True):
        assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()
    with adapted.disable_adapter():  # the adapter does change the model: the check above can fail
        base_logits = logits_of(adapted, base_tokenizer)
    assert not torch.allclose(logits_of(merged, tokenizer)[0], base_logits[0], atol=1e-3)
    assert tokenizer.chat_template == base_tokenizer.chat_template

    # the record: in the folder (hashes of what is there) and in the lineage store
    record = json.loads((folder / EXPORT_RECORD).read_text())
    assert record["adapter_weights_hash"] == weights_hash(run.adapter_dir) == result.adapter_hash
    on_disk = {k: v for k, v in file_hashes(folder).items() if k != EXPORT_RECORD}
    assert record["files"] == on_disk == result.files
    assert record["facts"]["verification"]["top1_agreement"] == 1.0
    with LineageStore.open(db) as store:
        (stored,) = [e for e in store.exports(run.id) if e["path"] == str(folder.resolve())]
    assert stored["format"] == "merged" and stored["adapter_hash"] == result.adapter_hash
    assert stored["files"] == on_disk


def test_merged_export_in_half_precision(pm, text_run, tmp_path):
    from transformers import AutoModelForCausalLM

    run, db = text_run
    export_run(pm, run.dir, "merged", quant="bf16", out=tmp_path / "m16", db=db)
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "m16").dtype == torch.bfloat16


def assert_reloaded_gguf_matches(model, tokenizer, adapted, base_tokenizer, quant: str, prompts=PROMPTS) -> None:
    """The GGUF read back by transformers gives the PEFT model's logits: exactly enough at f16
    (top-1 everywhere, |Δ| < 0.05), within q8_0's rounding otherwise (top-1 ≥ 0.9, |Δ| < 1.5)."""
    ours, theirs = logits_of(model, tokenizer, prompts), logits_of(adapted, base_tokenizer, prompts)
    diff = torch.cat([(a - b).abs().flatten() for a, b in zip(ours, theirs, strict=True)])
    top1 = torch.cat([a.argmax(-1) == b.argmax(-1) for a, b in zip(ours, theirs, strict=True)]).float().mean()
    if quant == "f16":
        assert float(diff.max()) < 0.05 and float(top1) == 1.0
    else:
        assert float(diff.max()) < 1.5 and float(top1) >= 0.9


@pytest.mark.parametrize("quant", ["f16", "q8_0"])
def test_gguf_export_round_trips_through_transformers(pm, text_run, tmp_path, quant):
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run, db = text_run
    result = export_run(pm, run.dir, "gguf", quant=quant, out=tmp_path / "gguf", db=db)
    name = f"{run.id}-{quant}.gguf"
    assert {name, "Modelfile", "README.md"} <= set(result.files)
    assert (tmp_path / "gguf" / "Modelfile").read_text() == f"FROM ./{name}\n"

    reader = gguf.GGUFReader(tmp_path / "gguf" / name)
    fields = {key: field.contents() for key, field in reader.fields.items() if key != "tokenizer.ggml.tokens"}
    assert fields["general.architecture"] == "llama"
    assert fields["llama.block_count"] == 2 and fields["llama.attention.head_count_kv"] == 2
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.merges"]
    assert "im_start" in fields["tokenizer.chat_template"]
    assert fields["tokenizer.ggml.add_bos_token"] is False  # the tiny tokenizer adds none; llama.cpp is told
    assert fields["tokenizer.ggml.eos_token_id"] == AutoTokenizer.from_pretrained(run.adapter_dir).eos_token_id
    kinds = {t.name: t.tensor_type.name for t in reader.tensors}
    assert kinds["blk.0.attn_q.weight"] == quant.upper() and kinds["blk.0.attn_norm.weight"] == "F32"
    assert "output.weight" not in kinds  # tied embeddings: llama.cpp reads token_embd

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "gguf", gguf_file=name, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "gguf", gguf_file=name)
    adapted, base_tokenizer = peft_model(run)
    assert_reloaded_gguf_matches(model, tokenizer, adapted, base_tokenizer, quant)
    figures = result.facts["verification"]
    assert figures["tokenizer_identical"] and figures["top1_agreement"] >= (0.98 if quant == "f16" else 0.9)
    assert result.facts["tensor_types"].get(quant.upper(), 0) == 15


def test_peft_export_is_a_copy_of_the_adapter(pm, text_run, tmp_path):
    run, db = text_run
    result = export_run(pm, run.dir, "peft", out=tmp_path / "peft", db=db)
    assert result.files == file_hashes(run.adapter_dir)
    assert weights_hash(tmp_path / "peft") == weights_hash(run.adapter_dir)


def test_cli_export_and_lineage_show(pm, text_run, tmp_path, monkeypatch):
    import polyadapt.plugins

    run, db = text_run
    monkeypatch.setattr(polyadapt.plugins, "get_plugin_manager", lambda: pm)
    cli = CliRunner()
    out = tmp_path / "cli-gguf"
    done = cli.invoke(
        app, ["export", str(run.dir), "--format", "gguf", "--quant", "q8_0", "--out", str(out), "--db", db]
    )
    assert done.exit_code == 0, done.output
    assert "top-1 agreement" in done.output and str(out) in done.output.replace("\n", "")

    shown = cli.invoke(app, ["lineage", "show", run.id, "--db", db, "--json"])
    assert shown.exit_code == 0, shown.output
    exports = [e for e in json.loads(shown.output)["exports"] if e["path"] == str(out.resolve())]
    assert exports and exports[0]["format"] == "gguf" and exports[0]["options"] == {"quant": "q8_0"}
    assert exports[0]["adapter_hash"] == weights_hash(run.adapter_dir)
    tree = cli.invoke(app, ["lineage", "show", run.id, "--db", db])
    assert tree.exit_code == 0, tree.output
    assert "export gguf quant q8_0" in tree.output and "top1_agreement" in tree.output

    # exporting again to the same folder replaces the earlier export
    again = cli.invoke(app, ["export", str(run.dir), "--format", "peft", "--out", str(out), "--db", db])
    assert again.exit_code == 0, again.output
    assert not list(out.glob("*.gguf")) and (out / "adapter_config.json").is_file()

    bad = cli.invoke(app, ["export", str(run.dir), "--format", "onnx", "--db", db])
    assert bad.exit_code == 2 and "peft, merged, gguf" in bad.output


def test_a_failed_check_leaves_no_folder_and_no_record(pm, text_run, tmp_path, monkeypatch):
    import polyadapt_text.export as text_export

    run, db = text_run
    real = text_export.compare

    def poor(*args, **kwargs):
        return real(*args, **kwargs) | {"top1_agreement": 0.5}

    monkeypatch.setattr(text_export, "compare", poor)
    target = tmp_path / "exports" / "bad"
    with pytest.raises(PolyadaptError, match="top-1 agreement 50.00%"):
        export_run(pm, run.dir, "gguf", quant="q8_0", out=target, db=db)
    assert not target.exists() and list((tmp_path / "exports").iterdir()) == []
    with LineageStore.open(db) as store:
        assert not [e for e in store.exports(run.id) if e["path"] == str(target.resolve())]


def test_clear_errors(pm, text_run, tmp_path):
    run, db = text_run
    with pytest.raises(ConfigError, match=r"--format 'onnx'.*exports peft, merged, gguf"):
        export_run(pm, run.dir, "onnx", db=db)
    with pytest.raises(ConfigError, match=r"--quant 'q4_k'.*f16, q8_0"):
        export_run(pm, run.dir, "gguf", quant="q4_k", out=tmp_path / "x", db=db)
    with pytest.raises(ConfigError, match="--quant means nothing to --format peft"):
        export_run(pm, run.dir, "peft", quant="f16", out=tmp_path / "y", db=db)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds no earlier export"):
        export_run(pm, run.dir, "peft", out=occupied, db=db)
    assert (occupied / "keep.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="adapter folder"):
        export_run(pm, run.dir, "peft", out=run.dir, db=db)

    # a run folder whose adapter is missing
    broken = tmp_path / "no-adapter"
    broken.mkdir()
    (broken / "config.yaml").write_text((run.dir / "config.yaml").read_text())
    with pytest.raises(PolyadaptError, match="no adapter yet"):
        export_run(pm, broken, "merged", db=db)
    with pytest.raises(PolyadaptError, match="not a run folder"):
        export_run(pm, tmp_path, "merged", db=db)


def test_unsupported_architecture_and_tokenizer_are_named():
    from polyadapt_text.gguf_export import check_supported, pre_tokenizer_name

    with pytest.raises(PolyadaptError, match=r"architecture 'gpt2'.*supports the architectures llama.*--format merged"):
        check_supported({"model_type": "gpt2"})
    with pytest.raises(PolyadaptError, match=r"rope scaling 'llama3'"):
        check_supported({"model_type": "llama", "rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5}})
    check_supported({"model_type": "llama", "rope_parameters": {"rope_type": "default", "rope_theta": 1e4}})
    assert pre_tokenizer_name({"pre_tokenizer": {"type": "ByteLevel"}}) == "gpt-2"
    smollm = {
        "type": "Sequence",
        "pretokenizers": [{"type": "Digits", "individual_digits": True}, {"type": "ByteLevel"}],
    }
    assert pre_tokenizer_name({"pre_tokenizer": smollm}) == "smollm"
    with pytest.raises(PolyadaptError, match=r"pre-tokenizer is \['Metaspace'\]"):
        pre_tokenizer_name({"pre_tokenizer": {"type": "Metaspace"}})


def test_gguf_export_of_an_unsupported_architecture_is_refused_before_loading(pm, text_run, tmp_path, monkeypatch):
    """The architecture is read from the base's config before any weight is loaded."""
    import polyadapt_text.export as text_export
    import polyadapt_text.gguf_export as gguf_export

    run, db = text_run
    monkeypatch.setattr(gguf_export, "SUPPORTED_ARCHITECTURES", {"mistral": "LLAMA"})  # llama unsupported

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(text_export, "merged_model", never)
    with pytest.raises(PolyadaptError, match=r"architecture 'llama'.*supports the architectures mistral"):
        export_run(pm, run.dir, "gguf", out=tmp_path / "g", db=db)
    assert not (tmp_path / "g").exists()


def test_permutation_is_llama_cpps():
    """The Q/K permutation is llama.cpp's: transformers' reverse permutation undoes it."""
    import numpy as np
    from polyadapt_text.gguf_export import permute

    rng = np.random.default_rng(0)
    weights = rng.standard_normal((4 * 8, 16)).astype(np.float32)  # 4 heads of 8
    permuted = permute(weights, 4, 4)
    assert not np.array_equal(permuted, weights)
    # transformers' _reverse_permute_weights, spelled out
    back = permuted.reshape(4, 8 // 2, 2, 16).swapaxes(1, 2).reshape(weights.shape)
    assert np.array_equal(back, weights)
    k = rng.standard_normal((2 * 8, 16)).astype(np.float32)  # 2 key/value heads
    assert np.array_equal(permute(k, 4, 2).reshape(2, 4, 2, 16).swapaxes(1, 2).reshape(k.shape), k)


@pytest.mark.slow
def test_speech_merged_export_loads_in_plain_whisper(tmp_path):
    whisper = pytest.importorskip("whisper")
    import polyadapt_speech
    from peft import PeftModel
    from polyadapt_speech.testing import build_tiny_whisper
    from speech_helpers import audio_folder, sentences, speech_config

    from polyadapt.config import RunConfig

    pm = PluginManager(load_entrypoints=False, plugins={"speech": polyadapt_speech})
    base = build_tiny_whisper(tmp_path / "base" / "tiny-whisper.pt")
    data = {
        "train": audio_folder(tmp_path / "train", sentences(8, 1)),
        "eval": audio_folder(tmp_path / "eval", sentences(2, 2), seed=100),
        "general": audio_folder(tmp_path / "general", ["Water boils at one hundred degrees."] * 2, seed=200),
    }
    run, _, _ = runner.adapt(pm, RunConfig.model_validate(speech_config(tmp_path, base, data, max_steps=3)))
    result = export_run(pm, run.dir, "merged")
    assert result.path == (run.dir / "exports" / "merged").resolve()
    assert set(result.files) == {f"{run.id}.pt", "README.md"}
    with LineageStore.open() as store:
        (record,) = store.exports(run.id)
    assert record["format"] == "merged" and record["adapter_hash"] == weights_hash(run.adapter_dir)

    merged = whisper.load_model(str(result.path / f"{run.id}.pt"), device="cpu").eval()
    adapted = PeftModel.from_pretrained(whisper.load_model(str(base), device="cpu"), str(run.adapter_dir)).eval()
    mel, tokens = torch.randn(1, 80, 300), torch.tensor([[50257, 50362, 383, 1757]])
    with torch.no_grad():
        assert torch.allclose(merged(mel, tokens), adapted(mel, tokens), atol=1e-4)
    with pytest.raises(ConfigError, match="--format 'gguf'.*exports peft, merged"):
        export_run(pm, run.dir, "gguf")


@pytest.mark.slow
def test_image_lora_and_merged_pipeline_exports(tiny_base_model, tmp_path):
    pytest.importorskip("diffusers")
    import polyadapt_image
    from diffusers import DiffusionPipeline
    from image_helpers import write_image_config
    from polyadapt_image.testing import make_test_images

    pm = PluginManager(load_entrypoints=False, plugins={"image": polyadapt_image})
    base = tiny_base_model("image")
    make_test_images(tmp_path / "data", n=8, size=24, bad=False)
    options = {
        "resolution": 16,
        "min_image_size": 8,
        "inference_steps": 2,
        "eval_seeds": [0],
        "train_text_encoder": True,
    }
    path = write_image_config(tmp_path, base, tmp_path / "data", name="brand", task_options=options, max_steps=4)
    run, _, _ = runner.adapt(pm, load_config(path))

    lora = export_run(pm, run.dir, "lora")
    assert (
        lora.files["pytorch_lora_weights.safetensors"]
        == file_hashes(run.adapter_dir)["pytorch_lora_weights.safetensors"]
    )

    result = export_run(pm, run.dir, "merged")
    assert "model_index.json" in result.files and result.facts["verification"]["unet_max_abs_diff"] < 1e-3
    assert "text_encoder_max_abs_diff" in result.facts["verification"]

    def draw(pipe):
        pipe.set_progress_bar_config(disable=True)
        generator = torch.Generator().manual_seed(5)
        with torch.no_grad():
            return pipe(
                "a solvanta style banner",
                num_inference_steps=2,
                height=16,
                width=16,
                generator=generator,
                output_type="pt",
            ).images

    merged = DiffusionPipeline.from_pretrained(result.path)  # no LoRA to load
    with_lora = DiffusionPipeline.from_pretrained(base)
    with_lora.load_lora_weights(str(run.adapter_dir))
    plain = DiffusionPipeline.from_pretrained(base)
    ours, theirs, untouched = draw(merged), draw(with_lora), draw(plain)
    assert torch.allclose(ours, theirs, atol=1e-3)
    assert not torch.allclose(ours, untouched, atol=1e-4)  # the LoRA is in there
    with pytest.raises(ConfigError, match="--quant means nothing"):
        export_run(pm, run.dir, "merged", quant="f16", out=tmp_path / "q")


def test_low_bit_gguf_is_checked_against_its_rounded_twin(pm, text_run, tmp_path, monkeypatch):
    """At q4_0 the file agrees with the merged model only where rounding allows, but with the
    merged model rounded as the file stores it everywhere; a layout fault fails that check."""
    import polyadapt_text.export as text_export
    import polyadapt_text.gguf_export as gguf_export

    run, db = text_run
    monkeypatch.setitem(text_export.MIN_TOP1, "q4_0", 0.0)  # judge the layout alone
    result = export_run(pm, run.dir, "gguf", quant="q4_0", out=tmp_path / "q4", db=db)
    twin = result.facts["verification"]["against_rounded_twin"]
    assert twin["top1_agreement"] == 1.0 and twin["max_abs_diff"] < 1e-3
    assert result.facts["verification"]["top1_agreement"] < 1.0  # the rounding itself moves positions

    monkeypatch.setattr(gguf_export, "transform", lambda arch, name, data, n_head, n_kv: data)  # no Q/K permutation
    with pytest.raises(PolyadaptError, match="laid out wrongly"):
        export_run(pm, run.dir, "gguf", quant="q4_0", out=tmp_path / "broken", db=db)
    assert not (tmp_path / "broken").exists()
