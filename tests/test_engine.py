import json
import re

import pytest

from localdigest.llm.local import LocalModel
from localdigest.errors import ModelError
from localdigest.review.grammar import schema_to_gbnf
from localdigest.llm.registry import ModelSpec
from localdigest.sources.papers import Paper
from localdigest.review.prompts import load_prompt
from localdigest.review.schema import PROSE, REVIEW_SCHEMA, SCORE_VALUES, SENTENCE_END, Review
from localdigest.testing.tiny_model import write_tiny_gguf

PAPER = Paper(arxiv_id="2309.12307", title="LongLoRA", abstract="We present LongLoRA, an efficient fine-tuning approach.")


def tiny(path, chat_format="gguf", n_ctx=16384, max_tokens=4096) -> LocalModel:
    return LocalModel(ModelSpec("tiny", {"path": str(path)}, chat_format=chat_format, n_ctx=n_ctx,
                                generation={"max_tokens": max_tokens}), path)


def test_grammar_constrained_output_always_validates(tiny_gguf):
    # Through complete_many, the path every local review takes (one paper or a batch). complete()
    # returns llama-cpp-python's text, which drops bytes that are not UTF-8: from random weights
    # that once left a keyword empty (a failed validation, asked again by the pipeline).
    model = tiny(tiny_gguf)
    messages = load_prompt().messages(PAPER)
    for seed in range(3):
        completion = model.complete_many([messages], schema_to_gbnf(REVIEW_SCHEMA), seed=seed)[0]
        assert not any(ord(c) < 0x20 for c in completion.text), "raw control character in output"
        review = Review.from_json(completion.text)  # random weights, yet the grammar forces the schema
        assert all(s.score in SCORE_VALUES for s in review.scores().values())
        # and the prose shapes: 主要工作 has two sentences at least, like every GPT-4 reference
        assert re.fullmatch(PROSE["main_work"].pattern, review.main_work)
        assert len(re.findall(f"[{SENTENCE_END}]", review.main_work)) >= 2
        assert re.fullmatch(PROSE["highlights"].pattern, review.highlights)
        assert completion.completion_tokens > 20 and completion.prompt_tokens > 100


def test_model_loads_lazily_and_once(tiny_gguf):
    model = tiny(tiny_gguf)
    assert not model.loaded
    model.complete([{"role": "user", "content": "hi"}], 'root ::= "ok"', seed=0)
    llama = model._llama
    model.complete([{"role": "user", "content": "hi"}], 'root ::= "ok"', seed=0)
    assert model._llama is llama


def test_the_llamas_own_context_is_small_until_something_decodes_in_it(tiny_gguf):
    """Reviews decode in the batch decoder's context, so the Llama's own has TOKENIZER_CTX cells (an
    idle 4096-cell one held 102 MiB of Qwen 1.5B's KV cache); complete() needs n_ctx and gets it,
    the model loaded again, and reviews go on after that on a new batch decoder."""
    from localdigest.llm.local import TOKENIZER_CTX

    model = tiny(tiny_gguf)
    messages = load_prompt().messages(PAPER)
    first = model.complete_many([messages], schema_to_gbnf(REVIEW_SCHEMA), seed=0)[0]
    assert model._llama.n_ctx() == TOKENIZER_CTX < model.n_ctx
    assert model.complete([{"role": "user", "content": "hi"}], 'root ::= "ok"', seed=0).text == "ok"
    assert model._llama.n_ctx() == model.n_ctx
    llama = model._llama
    assert model.complete_many([messages], schema_to_gbnf(REVIEW_SCHEMA), seed=0)[0].text == first.text
    assert model._llama is llama  # no load back down


def test_threads_default_to_the_physical_cores_this_process_may_use(tiny_gguf):
    import os
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo").read_text()
    cores = set(re.findall(r"physical id\s*:\s*(\d+).*?core id\s*:\s*(\d+)", cpuinfo, re.S))
    allowed = len(os.sched_getaffinity(0))
    assert tiny(tiny_gguf).threads == (min(allowed, len(cores)) if cores else allowed)
    assert tiny(tiny_gguf).threads <= allowed  # never more threads than the process may run


def test_gguf_without_chat_template_needs_an_explicit_format(tmp_path):
    path = write_tiny_gguf(tmp_path / "bare.gguf", chat_template=None)
    with pytest.raises(ModelError) as caught:
        tiny(path).complete([{"role": "user", "content": "hi"}], 'root ::= "ok"', seed=0)
    assert "has no chat template" in caught.value.message and "chatml" in caught.value.fix
    completion = tiny(path, chat_format="chatml").complete([{"role": "user", "content": "hi"}], 'root ::= "ok"', seed=0)
    assert completion.text == "ok"


def test_corrupt_gguf_is_a_clear_error(tmp_path, tiny_gguf):
    broken = tmp_path / "truncated.gguf"
    broken.write_bytes(tiny_gguf.read_bytes()[:5000])
    with pytest.raises(ModelError, match="could not load"):
        tiny(broken).complete([{"role": "user", "content": "hi"}], 'root ::= "ok"', seed=0)


def test_prompt_longer_than_context_is_a_clear_error(tiny_gguf):
    with pytest.raises(ModelError) as caught:
        tiny(tiny_gguf, n_ctx=256).complete(load_prompt().messages(PAPER), 'root ::= "ok"', seed=0)
    assert "context is 256" in caught.value.message and "n_ctx" in caught.value.fix


def test_same_seed_same_answer(tiny_gguf):
    model = tiny(tiny_gguf)
    messages = load_prompt().messages(PAPER)
    grammar = schema_to_gbnf(REVIEW_SCHEMA)
    first = model.complete(messages, grammar, seed=7).text
    assert tiny(tiny_gguf).complete(messages, grammar, seed=7).text == first
    json.loads(first)
