"""Build real vLLM objects exactly as ``--engine vllm`` builds them, on a CPU, without installing vLLM.

The light modules of vLLM (``vllm.sampling_params``, ``vllm.lora.request``, ``vllm.inputs``,
``vllm.outputs``, ``vllm.logprobs``) import without a GPU from an unpacked wheel once a few
small packages are at hand (kept out of the project's environment)::

    pip download --no-deps vllm==0.11.0 -d /tmp/vllm_wheels
    mkdir -p /tmp/vllm_src/0.11.0 && unzip -q /tmp/vllm_wheels/vllm-0.11.0-*.whl '*.py' -d /tmp/vllm_src/0.11.0
    pip install --target /tmp/vllm_deps msgspec cbor2 setproctitle pyzmq blake3
    PYTHONPATH=/tmp/vllm_src/0.11.0:/tmp/vllm_deps python scripts/check_vllm_objects.py

It prints the ``SamplingParams`` the servable builds for a few requests and what vLLM refuses,
a ``LoRARequest`` made as ``load_adapter`` makes it, and the servable's reading of real
``RequestOutput`` / ``CompletionOutput`` / ``Logprob`` objects for each way a completion ends.
"""

from __future__ import annotations

import tempfile

import vllm
from polyadapt_text.vllm_engine import VllmServable
from vllm.inputs import TokensPrompt
from vllm.logprobs import Logprob
from vllm.lora.request import LoRARequest
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import SamplingParams

from polyadapt.errors import PolyadaptError
from polyadapt.types import GenerationRequest

SHOWN = ("temperature", "top_p", "seed", "max_tokens", "stop", "logprobs", "frequency_penalty", "logit_bias")


def main() -> None:
    """Run the checks (see the module docs); an unexpected answer raises AssertionError."""
    print("vllm", vllm.__version__, "from", vllm.__file__)
    servable = object.__new__(VllmServable)  # no model: only the methods that build and read vLLM objects
    servable.texts = lambda token: (f"t{token}", f"t{token}".encode())
    for request in (
        GenerationRequest(prompt="x"),
        GenerationRequest(
            prompt="x",
            temperature=0.7,
            top_p=0.9,
            seed=3,
            stop=["\n", "END"],
            logprobs=5,
            frequency_penalty=0.5,
            presence_penalty=-0.5,
            logit_bias={5: 2.0},
            max_tokens=1,
        ),
        GenerationRequest(prompt="x", logprobs=20, temperature=2.0),
    ):
        params = servable.sampling_params(request)
        assert type(params) is SamplingParams
        print("accepted", {name: getattr(params, name) for name in SHOWN})
    for bad in ({"top_p": 0.0}, {"frequency_penalty": 2.5}, {"max_tokens": 0}, {"stop": [""]}, {"logprobs": -2}):
        try:
            servable.sampling_params(GenerationRequest(prompt="x", temperature=0.5, **bad))
            raise AssertionError(f"vLLM accepted {bad}")
        except PolyadaptError as exc:
            print("refused", exc)
    folder = tempfile.mkdtemp()
    lora = LoRARequest(lora_name="a", lora_int_id=1, lora_path=folder)  # as load_adapter makes it
    assert LoRARequest("a", 1, folder) == lora and (lora.lora_name, lora.lora_int_id) == ("a", 1)
    print("LoRARequest", lora)
    steps = [
        {11: Logprob(-0.5, 3, "a"), 21: Logprob(-0.1, 1, "b"), 22: Logprob(-0.2, 2, "c")},
        {12: Logprob(-0.3, 1, "d"), 22: Logprob(-0.4, 2, "e")},
        {2: Logprob(-0.01, 1, "</s>"), 5: Logprob(-3.0, 2, "x")},
    ]
    prompt = TokensPrompt(prompt_token_ids=[1, 2, 3, 4])
    for stop_reason, reason, entries in ((None, "stop", 2), (7, "stop", 2), ("END", "stop", 3), (None, "length", 3)):
        completion = CompletionOutput(
            index=0,
            text="ab",
            token_ids=[11, 12, 2],
            cumulative_logprob=None,
            logprobs=steps,
            finish_reason=reason,
            stop_reason=stop_reason,
        )
        output = RequestOutput(
            request_id="0",
            prompt=None,
            prompt_token_ids=[1, 2, 3, 4],
            prompt_logprobs=None,
            outputs=[completion],
            finished=True,
        )
        result = servable.result(GenerationRequest(prompt="x", logprobs=2), prompt, output)
        assert (result.prompt_tokens, result.completion_tokens, len(result.logprobs or [])) == (4, 3, entries)
        print(
            reason, repr(stop_reason), [(e.token, e.logprob, [alt[0] for alt in e.top]) for e in result.logprobs or []]
        )
    print("all as expected")


if __name__ == "__main__":
    main()
