"""Tiny models built from configs for the tests: random weights, saved and re-loaded
through the real loading code. No hub access."""

from __future__ import annotations

from pathlib import Path

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CORPUS = [
    "The policyholder filed a claim under the Solvanta rider after the storm.",
    "An underwriter reviews the deductible, the premium and the coverage limit.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "Please summarise the claim and list the covered perils.",
    "def add(a, b):\n    return a + b\n",
    "Hello, how are you today? I am fine, thank you very much.",
]


def build_tokenizer(folder: Path, vocab_size: int = 400):
    """A small byte-level BPE tokenizer with ChatML special tokens, saved to ``folder``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", bos_token=None,
        pad_token="<|endoftext|>", unk_token=None,
    )
    fast.chat_template = CHATML
    fast.save_pretrained(folder)
    return fast


def build_tiny_llama(folder: Path, *, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """A 2-layer Llama with random weights and the tokenizer above, saved to ``folder``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(folder)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=None, tie_word_embeddings=True,
        # larger than the usual 0.02 so that a frozen head can express peaked predictions
        initializer_range=0.2,
    )
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    return folder
