"""Tiny base models for tests: random weights, built from configs, saved to a folder.

Each modality has one builder in :data:`TINY_MODELS`; a builder takes an empty folder and
returns the folder a plugin loads as its base (``base_model.id`` in a run config). The
models are small enough to train a few steps in well under a second on a CPU, and nothing
is downloaded.

``text`` is built here: a 2-layer Llama with a 400-token byte-level BPE tokenizer and a
ChatML chat template, loadable with ``AutoModelForCausalLM`` and ``AutoTokenizer``.
Text-shaped modalities (code, or a plugin's own modality whose records are text) use it
too. Other builders come with the plugins' tasks (:meth:`polyadapt.task.Task.tiny_models`)
and are looked up when first asked for; :func:`register_tiny_model` adds one by hand.

torch, tokenizers and transformers are imported by the builders only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerFast

#: The chat template of the tiny tokenizer (ChatML, as SmolLM2 and Qwen use).
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

#: What the tiny tokenizer is trained on: a little of everything the tests feed it.
CORPUS = [
    "The policyholder filed a claim under the Solvanta rider after the storm.",
    "An underwriter reviews the deductible, the premium and the coverage limit.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "Please summarise the claim and list the covered perils.",
    "def add(a, b):\n    return a + b\n",
    "Hello, how are you today? I am fine, thank you very much.",
]


def build_tokenizer(folder: Path, vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A small byte-level BPE tokenizer with ChatML special tokens, saved to ``folder``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        bos_token=None,
        pad_token="<|endoftext|>",
        unk_token=None,
    )
    fast.chat_template = CHATML
    fast.save_pretrained(folder)
    return fast


def build_tiny_llama(
    folder: Path,
    *,
    hidden: int = 64,
    layers: int = 2,
    seed: int = 0,
    tokenizer: Callable[[Path], Any] | None = None,
    initializer_range: float = 0.2,
) -> Path:
    """A 2-layer Llama with random weights and a small tokenizer, saved to ``folder``.

    ``tokenizer(folder)`` builds and saves the tokenizer (default: :func:`build_tokenizer`,
    ChatML); the model's vocabulary, pad and end tokens follow it. ``initializer_range`` is
    0.2, larger than the usual 0.02, so that a frozen head can express peaked predictions.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    built = (tokenizer or build_tokenizer)(folder)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(built),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=built.pad_token_id,
        eos_token_id=built.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        initializer_range=initializer_range,
    )
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    return folder


#: name -> builder(folder) -> the folder (or file) a plugin loads as its base model. ``text``
#: is the core's; plugins add theirs through :meth:`polyadapt.task.Task.tiny_models`, found
#: when first asked for, or :func:`register_tiny_model`.
TINY_MODELS: dict[str, Callable[[Path], Path]] = {"text": build_tiny_llama}
#: name -> the name of the model's folder, which is also the base model's display name
#: (what clients ask for at serving); ``tiny-<name>`` when not listed.
TINY_MODEL_NAMES: dict[str, str] = {"text": "tiny-llama"}


def _from_tasks(name: str) -> Callable[[Path], Path] | None:
    """The builder called ``name`` that an installed plugin's task offers, if any (remembered
    in :data:`TINY_MODELS`, with its folder name when the task gives one as
    ``(builder, folder_name)``)."""
    from polyadapt.plugins import get_plugin_manager

    for task in get_plugin_manager().tasks.values():
        offered = task.tiny_models().get(name)
        if offered is None:
            continue
        builder, folder_name = offered if isinstance(offered, tuple) else (offered, None)
        register_tiny_model(name, builder, folder_name)
        return builder
    return None


def register_tiny_model(modality: str, builder: Callable[[Path], Path], name: str | None = None) -> None:
    """Make ``builder`` the tiny base model of ``modality`` (replacing any earlier one).

    Call it from a plugin's ``conftest.py`` until polyadapt ships a builder for the
    modality; ``tiny_base_model(modality)`` then uses it. ``name`` names the model's folder.
    """
    TINY_MODELS[modality] = builder
    TINY_MODEL_NAMES[modality] = name or f"tiny-{modality}"


def tiny_model_name(modality: str) -> str:
    """The folder name (and display name) of the tiny base model of ``modality``."""
    if modality not in TINY_MODELS:
        _from_tasks(modality)
    return TINY_MODEL_NAMES.get(modality, f"tiny-{modality}")


def build_tiny_model(modality: str, folder: Path) -> Path:
    """Build the tiny base model of ``modality`` into ``folder`` and return the folder."""
    builder = TINY_MODELS.get(modality) or _from_tasks(modality)
    if builder is None:
        known = ", ".join(sorted(TINY_MODELS))
        raise LookupError(
            f"no tiny base model called {modality!r} (the core has: {known}; installed plugins add "
            "theirs through Task.tiny_models). Text-shaped modalities (code, your own text records) "
            "can use 'text'; install the plugin that offers it, or register a builder with "
            "polyadapt.testing.register_tiny_model(name, builder)"
        )
    return builder(Path(folder))
