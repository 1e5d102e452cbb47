"""The tiny test models now live in the package (``polyadapt.testing.models``) so plugin
authors build the same ones; this module keeps the old import path for the benchmarks."""

from polyadapt.testing.models import CHATML, CORPUS, build_tiny_llama, build_tokenizer  # noqa: F401
