"""Continuous batching on the real decoder (llm.batch.BatchDecoder.stream), on the tiny model."""

import time

from localdigest.llm.base import AnswerFormat, Request
from localdigest.llm.local import LocalModel
from localdigest.llm.registry import ModelSpec
from localdigest.review.checks import NEVER_WRITE
from localdigest.review.grammar import schema_to_gbnf
from localdigest.review.prompts import load_prompt
from localdigest.review.schema import REVIEW_SCHEMA
from localdigest.sources.papers import Paper

ANSWER = AnswerFormat(schema_to_gbnf(REVIEW_SCHEMA), REVIEW_SCHEMA, avoid=NEVER_WRITE)


def papers_with_room_for(answer_tokens: list[int], tiny_gguf) -> tuple[list[Request], dict]:
    """Requests whose answers the context cuts after about `answer_tokens` tokens each (their
    abstracts differ in length; the context is what the longest prompt needs plus a little), so
    they end at different steps; and the model settings that do it."""
    probe = LocalModel(ModelSpec("tiny", {"path": str(tiny_gguf)}, n_ctx=16384), tiny_gguf)
    papers = [Paper(f"2309.{i}", f"Paper {i}", "Sparse attention for long contexts. " + "More words here. " * (n // 4))
              for i, n in enumerate(answer_tokens)]
    messages = [load_prompt().messages(paper) for paper in papers]
    longest = max(probe.prompt_tokens(m) for m in messages)
    spec = dict(n_ctx=longest + 8 + 24, generation={"max_tokens": 4096, "temperature": 0.0})
    return [Request(m, ANSWER, seed=3, tag=i) for i, m in enumerate(messages)], spec


def test_answers_that_join_others_midway_are_the_ones_they_get_alone(tiny_gguf):
    """Five answers through two places: each finished answer's place is taken by the next at once,
    and each answer is token for token what it is decoded alone (at temperature 0, on the tiny
    model's float weights llama.cpp gives the same logits however many sequences a decode holds),
    so prefix sharing, trimming and reused KV cells change nothing."""
    requests, spec = papers_with_room_for([0, 40, 8, 80, 16], tiny_gguf)
    model = LocalModel(ModelSpec("tiny", {"path": str(tiny_gguf)}, **spec), tiny_gguf, batch_size=1)
    model.prefix_states = False  # the batched run below starts a new context: it would read back the prefix
    alone = [model.complete_many([request.messages], ANSWER, seed=3)[0] for request in requests]
    assert [c.completion_tokens for c in alone] == [364, 194, 330, 24, 296]  # they end at different steps

    model.batch_size = 2
    todo, taken, finished = list(requests), [], []

    def take():
        if not todo:
            return None
        taken.append(todo[0].tag)
        return todo.pop(0)

    together = {}
    started = time.perf_counter()
    for tag, completion in model.complete_stream(take):
        together[tag] = completion
        finished.append((tag, list(taken)))
    wall = time.perf_counter() - started
    assert [together[i].text for i in range(5)] == [c.text for c in alone]
    # (answers of 364, 194, 330, 24 and 296 tokens) Paper 1 finished first and paper 2 took its place
    # while paper 0 went on; paper 3, taken when 0 finished, finished before paper 2, taken earlier.
    assert finished == [(1, [0, 1]), (0, [0, 1, 2]), (3, [0, 1, 2, 3]), (2, [0, 1, 2, 3, 4]), (4, [0, 1, 2, 3, 4])]
    # Only the first answer paid for the shared prefix; the seconds, each answer's prompt evaluation
    # included (about 5% here: without it they came to 0.94 of the wall), add up to the wall time.
    assert together[0].evaluated_prompt_tokens == together[0].prompt_tokens
    assert all(together[i].evaluated_prompt_tokens < together[i].prompt_tokens / 2 for i in range(1, 5))
    assert all(0 < c.prompt_seconds < c.seconds for c in together.values())
    assert 0.97 * wall <= sum(c.seconds for c in together.values()) <= wall


def test_a_stream_fed_from_its_own_answers(tiny_gguf):
    """take() may hand out a request made from an answer that just came back (a review asked
    again): it is decoded in the place that answer left."""
    requests, spec = papers_with_room_for([0, 30], tiny_gguf)
    model = LocalModel(ModelSpec("tiny", {"path": str(tiny_gguf)}, **spec), tiny_gguf, batch_size=2)
    todo, seen = list(requests), []
    for tag, completion in model.complete_stream(lambda: todo.pop(0) if todo else None):
        seen.append((tag, completion.completion_tokens))
        if tag == 1:  # the shorter answer came back first: ask it again while paper 0 goes on
            todo.append(Request(requests[1].messages, ANSWER, seed=4, tag="again"))
    # decoded beside paper 0, and (shorter again) back before it
    assert [tag for tag, _tokens in seen] == [1, "again", 0] and seen[1][1] > 0


def test_an_answer_with_no_room_yet_waits_for_the_others_then_gets_a_larger_context(tiny_gguf):
    """The context is sized for the first answers; a longer prompt handed out later waits until they
    are done, then gets a context of its size, and is still what it is alone."""
    spec = ModelSpec("tiny", {"path": str(tiny_gguf)}, n_ctx=16384, generation={"max_tokens": 40, "temperature": 0.0})
    # The long abstract must not fit the context sized for the first two (the default prompt is ~6100
    # bytes, a token each to the tiny model): at 80 repeats it fit once the instructions grew (stop 44).
    papers = [Paper("2309.1", "Short", "Sparse attention."), Paper("2309.2", "Long", "Sparse attention. " * 150),
              Paper("2309.3", "Short too", "Dense attention.")]
    requests = [Request(load_prompt().messages(paper), ANSWER, seed=3, tag=i) for i, paper in enumerate(papers)]
    model = LocalModel(spec, tiny_gguf, batch_size=1)
    alone = [model.complete_many([request.messages], ANSWER, seed=3)[0].text for request in requests]
    model.batch_size = 2
    todo = [requests[0], None, requests[1], requests[2]]  # None: nothing to hand out at that moment
    taken, order = [], []

    def take():
        request = todo.pop(0) if todo else None
        if request:
            taken.append(request.tag)
        return request

    together = {}
    for tag, completion in model.complete_stream(take):
        order.append((tag, list(taken), model._batch_decoder._n_ctx))
        together[tag] = completion.text
    assert [together[i] for i in range(3)] == alone
    # The long one was taken while paper 0 was written, but started only after it, beside paper 2.
    assert [(tag, tags) for tag, tags, _cells in order] == [(0, [0, 1]), (1, [0, 1, 2]), (2, [0, 1, 2])]
    assert order[0][2] < order[1][2] == order[2][2], order  # cells: the context grew once
