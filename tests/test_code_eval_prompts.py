"""Exact-match and pass@k prompts end where the tokenizer would end a token.

BPE code tokenizers write a line break and the next line's indentation as one token
(``"\\n   "``). A prompt cut right after a line break ends in a bare ``"\\n"`` token that
never occurs inside a file, and a model's continuation of it comes back empty (the toolz
walkthrough scored 0.00 everywhere that way). The prompts are cut before the trailing
whitespace instead, and the continuation's first new line is what is scored.
"""

from __future__ import annotations

import pytest
from code_helpers import code_bpe_tokenizer, module_text
from polyadapt.types import GenerationResult
from polyadapt_code.evaluate import (
    continued_line,
    exact_match,
    line_probes,
    probe_prompt,
    task_prompt,
)
from polyadapt_text.serve import request_stop


@pytest.fixture(scope="module")
def tokenizer():
    return code_bpe_tokenizer()


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def test_the_tokenizer_merges_a_line_break_with_the_indentation(tokenizer):
    pieces = [tokenizer.decode([i]) for i in ids(tokenizer, module_text(3))]
    assert "\n   " in pieces and "\n       " in pieces


def test_the_old_cut_ends_in_a_bare_newline_the_new_cut_is_a_token_prefix(tokenizer):
    files = [{"text": module_text(i)} for i in range(50, 54)]
    probes = line_probes(files, 200, seed=0)
    indented = [p for p in probes if p[1].startswith(" ")]
    assert len(indented) > 10
    for before, line, after in probes:
        file_ids = ids(tokenizer, before + line + after)
        # new: the prompt's tokens are exactly the file's first tokens (what training saw),
        # and the file's next token is the line break with the line's indentation
        new = ids(tokenizer, probe_prompt(before))
        assert file_ids[: len(new)] == new
        gap = before[len(probe_prompt(before)) :]
        indent = line[: len(line) - len(line.lstrip())]
        assert tokenizer.decode(file_ids[len(new) :]).startswith(gap + line)
        if indent:
            assert tokenizer.decode([file_ids[len(new)]]).startswith("\n" + indent[:-1])
    for before, line, after in indented:
        # old: the prompt ends in a bare "\n" token the file never contains there
        old = ids(tokenizer, before)
        assert tokenizer.decode([old[-1]]) == "\n"
        assert ids(tokenizer, before + line + after)[: len(old)] != old


def test_task_prompts_lose_their_trailing_line_break(tokenizer):
    prompt = 'def first(seq):\n    """The first element of seq."""\n'
    body = "    return seq[0]\n"
    sent = task_prompt(prompt)
    assert sent == prompt[:-1]
    full = ids(tokenizer, prompt + body)
    assert full[: len(ids(tokenizer, sent))] == ids(tokenizer, sent)
    assert tokenizer.decode([ids(tokenizer, prompt)[-1]]) == "\n"  # the old prompt's last token


@pytest.mark.parametrize(
    "completion, line",
    [
        ("\n    return total + 4\n\n\ndef", "    return total + 4"),
        ("\n\n\n    return total + 4   ", "    return total + 4"),  # blank lines between: not judged
        ("  \n  return total + 4", "  return total + 4"),  # indentation is kept (and judged)
        (" + 1\n    return total + 4", None),  # went on with the previous line
        ("", None),
        ("\n\n", None),
    ],
)
def test_continued_line(completion, line):
    assert continued_line(completion) == line


class OracleServable:
    """Generates what the file says comes next, as the tokenizer writes it (a perfect model
    of the held-out file), optionally continuing the previous line instead."""

    def __init__(self, tokenizer, text: str, *, previous_line: bool = False):
        self.tokenizer, self.text, self.previous_line = tokenizer, text, previous_line
        self.requests = []

    def generate(self, requests):
        out = []
        for request in requests:
            self.requests.append(request)
            start = self.text.index(request.prompt) + len(request.prompt)
            line_start = start + len(self.text[start:]) - len(self.text[start:].lstrip())
            end = self.text.index(request.suffix, line_start) if request.suffix else len(self.text)
            rest = self.text[start:end]
            text = tokenizer_cut(self.tokenizer, rest, request.max_tokens)
            cut = request_stop(text, request)  # the serving stop rule, as TextServable applies it
            text = text[:cut] if cut >= 0 else text
            out.append(
                GenerationResult(
                    text=(" = 0" + text) if self.previous_line else text, prompt_tokens=0, completion_tokens=0
                )
            )
        return out


def tokenizer_cut(tokenizer, text: str, count: int) -> str:
    return tokenizer.decode(ids(tokenizer, text)[:count])


@pytest.mark.parametrize("fim", [False, True])
def test_exact_match_scores_a_perfect_model_one_and_a_wrong_one_zero(tokenizer, fim):
    text = module_text(60)
    probes = line_probes([{"text": text}], 8, seed=1)
    oracle = OracleServable(tokenizer, text)
    base, adapted, shown = exact_match(oracle, probes, budget=64, max_tokens=24, fim=fim)
    assert (base, adapted) == (1.0, 1.0)
    assert [s["base"] for s in shown] == [line.rstrip() for _, line, _ in probes]
    for request in oracle.requests:
        assert not request.prompt.endswith("\n")
        assert request.stop == ["\n"] and request.stop_after_content  # one line, then stop
        if fim:
            assert request.suffix.startswith("\n")  # the target line's own line break
    wrong = OracleServable(tokenizer, text, previous_line=True)
    assert exact_match(wrong, probes, budget=64, max_tokens=24, fim=fim)[:2] == (0.0, 0.0)
