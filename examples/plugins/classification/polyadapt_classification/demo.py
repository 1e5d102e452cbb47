"""The demo's base model: a tiny random Llama built offline, nothing downloaded.

    python -m polyadapt_classification.demo demo/tiny-classifier

writes a 2-layer Llama (random weights, about 0.15 M parameters) and a byte-level BPE
tokenizer whose vocabulary is learnt from :data:`CORPUS`, a few unlabelled sentences of
insurance customer service, so that the demo's words are whole tokens or a few pieces. A
random base classifies at chance; the demo shows what a LoRA adapter and a trained head
make of it in well under a minute on a CPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: Unlabelled text the tiny tokenizer learns its vocabulary from (none of it is demo data).
CORPUS = [
    "Thank you for contacting customer support about your insurance policy today.",
    "Our team reviews every claim for damage, theft, loss or injury and replies within two days.",
    "Your premium, invoice, bill, receipt and statement are in the payments section of your account.",
    "You can change the cover, the address, the drivers, the vehicle or the start date of a policy.",
    "Please report the accident, the storm, the flood, the fire or the burglary as soon as possible.",
    "Payments by card, direct debit or bank transfer are charged monthly, quarterly or annually.",
    "A refund of an overpayment or a double charge goes back to the original card.",
    "We can add or remove a named driver, a car, a motorbike or an add-on such as breakdown cover.",
    "The deductible, the excess and the limit of cover are listed on the policy schedule.",
    "Send photos of the damaged roof, window, door, floor, ceiling, wall or bumper with the claim.",
    "Late fees, instalments, balances and due dates are explained on the billing page.",
    "Home, contents, buildings, travel, pet and car insurance can be renewed or cancelled online.",
    "The water leak, burst pipe and hail damage were repaired after the loss adjuster's visit.",
    "Update your name, your mileage, your alarm or the use of your car for business at any time.",
    "Someone stole the bike, the laptop, the phone and the jewellery from the house last night.",
    "How do I pay, why was I charged, when is the payment due, and can I get my money back?",
    "Is the hospital, the vet, the repair or the replacement covered by my policy?",
    "I would like to know how to start, file, submit or check a claim for the damage.",
    "We moved house, bought a new car, got married and our son passed his driving test.",
    "The wind blew a tree onto the garage and the fence fell on the neighbour's van.",
    "Thanks, I need help with my account. Could you check this for me and send an email?",
    "My husband, my wife, my daughter and my son all drive the family car to work.",
    "The kitchen, the bathroom, the basement and the living room were soaked by the leak.",
    "Could you explain the amount on my credit card and the extra fee on the statement?",
    "We want to lower the monthly cost, raise the excess and keep the same level of cover.",
    "The airline lost my suitcase on holiday and the rental company sent me a charge.",
    "Please cancel the renewal, stop the automatic payment and confirm by email.",
    "Vandals broke the glass, smashed the mirror and scratched the paint overnight.",
]


def build_tokenizer(folder: Path, corpus: list[str] | None = None, vocab_size: int = 1000):
    """A byte-level BPE tokenizer learnt from ``corpus`` (default :data:`CORPUS`), saved to ``folder``.

    It ends every text with ``<|endoftext|>`` and pads with a token of its own, so that the
    classifier reads the same summary token at the end of every text.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = list(corpus or CORPUS)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|pad|>", "<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts + [text.lower() for text in texts], trainer=trainer)
    end = ("<|endoftext|>", tokenizer.token_to_id("<|endoftext|>"))
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {end[0]}", pair=f"$A {end[0]} $B {end[0]}", special_tokens=[end]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|endoftext|>", pad_token="<|pad|>", bos_token=None, unk_token=None
    )
    fast.save_pretrained(folder)
    return fast


def build_tiny_base(folder: Path | str, *, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """A tiny random Llama with the tokenizer above, saved to ``folder``; returns the folder.

    It is :func:`polyadapt.testing.models.build_tiny_llama` with this tokenizer and the usual
    0.02 initialisation.
    """
    from polyadapt.testing.models import build_tiny_llama

    return build_tiny_llama(
        Path(folder), hidden=hidden, layers=layers, seed=seed, tokenizer=build_tokenizer, initializer_range=0.02
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m polyadapt_classification.demo [FOLDER]``: build the demo's base model."""
    parser = argparse.ArgumentParser(prog="python -m polyadapt_classification.demo", description=__doc__.split("\n")[0])
    parser.add_argument(
        "folder",
        nargs="?",
        default="demo/tiny-classifier",
        type=Path,
        help="where to write the model (default: demo/tiny-classifier)",
    )
    args = parser.parse_args(argv)
    folder = build_tiny_base(args.folder)
    print(f"tiny base model written to {folder}")


if __name__ == "__main__":
    main()
