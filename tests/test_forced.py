"""Fast-forwarding what the review schema forces: the skeleton, and real decoding on the tiny model."""

import json

import pytest

from localdigest.llm.base import AnswerFormat, Request
from localdigest.llm.forced import Skeleton, literal_prefix
from localdigest.llm.local import LocalModel
from localdigest.llm.registry import ModelSpec
from localdigest.review.checks import NEVER_WRITE
from localdigest.review.grammar import schema_to_gbnf
from localdigest.review.prompts import load_prompt
from localdigest.review.schema import REVIEW_SCHEMA, Review
from localdigest.sources.papers import Paper
from test_reviews import valid_dict

SKELETON = Skeleton.from_schema(REVIEW_SCHEMA)
MAIN_WORK = "本文提出了 LongLoRA。它用移位短注意力扩展上下文。"  # two sentences: the grammar asks for two at least
FULL = json.dumps({**valid_dict(), "main_work": MAIN_WORK,
                   "scores": {name: {"reason": score["reason"], "score": score["score"]}  # grammar order
                              for name, score in valid_dict()["scores"].items()}}, ensure_ascii=False)


@pytest.mark.parametrize("text, forced", [
    ("", '{"main_work": "'),
    ("{", '"main_work": "'),
    ('{"main_work": "本文', ""),  # inside a value: the model's to write
    ('{"main_work": "本文\\"引号\\"。"', ', "highlights": "'),  # escaped quotes do not end the value
    ('{"main_work":"本文。",', ' "highlights": "'),  # the grammar's optional spaces, left out before
    ('{"main_work": "本文。", "highlights": "亮点。", "keywords": [{"en": "A", "zh": "甲"}', ', {"en": "'),
    (FULL[:FULL.index('"score": 4.5') + len('"score": 4')], ""),  # "4" may become "4.5"
    (FULL[:FULL.index('"score": 4.5') + len('"score": 4.5}')], ', "innovation": {"reason": "'),
    (FULL[:-3], ""),  # "score": 0 may still become 0.5
    (FULL[:-2], "}}"),
    ('{"main_work" : "', ""),  # not the skeleton's text: nothing is assumed
    (FULL, ""),
])
def test_what_the_schema_forces(text, forced):
    assert SKELETON.forced(text) == forced


def test_the_values_an_answer_so_far_has_closed():
    cut = FULL.index('"keywords"') + 5  # inside a key: 主要工作 and 亮点 are closed
    assert SKELETON.values(FULL[:cut]) == {"main_work": MAIN_WORK, "highlights": valid_dict()["highlights"]}
    assert SKELETON.values('{"main_work": "本文\\"引号\\"。') == {}  # escaped quotes do not close it
    assert SKELETON.values('{"main_work": "本文\\"引号\\"。"') == {"main_work": '本文"引号"。'}  # escapes undone
    assert SKELETON.values('{"main_work" : "本文。", ') == {}  # not the skeleton's text
    whole = SKELETON.values(FULL)
    assert whole["keywords.4.zh"] == valid_dict()["keywords"][4]["zh"] and "scores.practicality.score" not in whole
    assert whole["scores.recommendation.reason"] == valid_dict()["scores"]["recommendation"]["reason"]
    # A pattern's opening words are the value's own, though the skeleton forces them
    prompt = load_prompt()
    opened = FULL
    for name, opening in prompt.openings:
        opened = opened.replace(f'"{name}": {{"reason": "', f'"{name}": {{"reason": "{opening}')
    reason = Skeleton.from_schema(prompt.schema()).values(opened)["scores.recommendation.reason"]
    assert reason == dict(prompt.openings)["recommendation"] + valid_dict()["scores"]["recommendation"]["reason"]


def test_an_answer_ends_where_stop_early_says_after_a_value_closes(tiny_gguf):
    model, answer = two_at_a_time(tiny_gguf)
    conversation = load_prompt().messages(Paper("2309.1", "Paper 1", "An abstract."))
    seen = []

    def after_main_work(text: str) -> bool:
        seen.append(text)
        return "main_work" in SKELETON.values(text)

    whole = model.complete_many([conversation], answer, seed=3)[0]
    request = Request(conversation, answer, seed=3, stop_early=after_main_work)
    todo = [request]
    (_tag, cut), = model.complete_stream(lambda: todo.pop() if todo else None)
    assert cut.stopped_early and not whole.stopped_early
    assert cut.text.endswith(', "highlights": "') and whole.text.startswith(cut.text)  # the same answer, cut
    # Asked at the answer's start and when 主要工作 closed: each time the schema's fixed text followed
    assert seen[0] == '{"main_work": "' and len(seen) == 2 and cut.completion_tokens < whole.completion_tokens / 2


def test_skeletons_exist_only_for_schemas_without_choices_between_values():
    with pytest.raises(ValueError):
        Skeleton.from_schema({"type": "object", "properties": {"a": {"enum": ["x", "y"]}}})


def two_at_a_time(tiny_gguf):
    """The tiny model decoding up to two papers together, and the review schema as its answer format."""
    spec = ModelSpec("tiny", {"path": str(tiny_gguf)}, n_ctx=16384, generation={"max_tokens": 4096})
    return LocalModel(spec, tiny_gguf, batch_size=2), AnswerFormat(schema_to_gbnf(REVIEW_SCHEMA), REVIEW_SCHEMA,
                                                                   avoid=NEVER_WRITE)


def test_fast_forward_on_the_real_decoder_keeps_answers_valid_and_saves_steps(tiny_gguf):
    model, answer = two_at_a_time(tiny_gguf)
    conversations = [load_prompt().messages(Paper(f"2309.{i}", f"Paper {i}", "An abstract.")) for i in range(1)]
    fast = model.complete_many(conversations, answer, seed=3)
    model.fast_forward = False
    slow = model.complete_many(conversations, answer, seed=3)
    for completion in fast + slow:
        Review.from_json(completion.text)  # random weights: the grammar alone keeps them valid
    assert all(c.forced_tokens == 0 for c in slow)
    # The review skeleton is ~60 tokens of keys and brackets; most of it comes without a step.
    assert all(c.forced_tokens >= 40 for c in fast), [c.forced_tokens for c in fast]
    assert all(c.forced_tokens < c.completion_tokens for c in fast)


def test_prompt_lookup_drafts_change_no_token_and_save_steps(tiny_gguf):
    """Drafts are only guesses: each is kept when sampling picks it anyway, so at temperature 0 the
    answers are the plain decoder's, token for token (the tiny model's float kernels give the same
    logits however many tokens a decode holds; Q4_K on llama.cpp's batched kernels rounds differently,
    see benchmarks/decoding.py)."""
    spec = ModelSpec("tiny", {"path": str(tiny_gguf)}, n_ctx=16384,
                     generation={"max_tokens": 200, "temperature": 0.0})
    model = LocalModel(spec, tiny_gguf, batch_size=2)
    answer = AnswerFormat(schema_to_gbnf(REVIEW_SCHEMA), REVIEW_SCHEMA, avoid=NEVER_WRITE)
    conversations = [load_prompt().messages(Paper(f"2309.{i}", f"Paper {i}", "Sparse attention for long contexts."))
                     for i in range(2)]
    plain = model.complete_many(conversations, answer, seed=3)
    model.lookahead = 4
    drafted = model.complete_many(conversations, answer, seed=3)
    assert [c.text for c in drafted] == [c.text for c in plain]
    assert all(c.drafted_tokens == 0 for c in plain)
    # Random weights repeat themselves, so prompt lookup guesses right often.
    assert all(0 < c.accepted_tokens <= c.drafted_tokens for c in drafted), \
        [(c.accepted_tokens, c.drafted_tokens) for c in drafted]
    assert all(c.completion_tokens == p.completion_tokens for c, p in zip(drafted, plain))


@pytest.mark.parametrize("pattern, prefix", [
    ("^推荐给[^。]{0,9}。$", "推荐给"),
    ("^与已有工作相比，[^。]{0,9}。$", "与已有工作相比，"),
    ("^a\\.b\\d", "a.b"),  # an escaped mark is text, \d is a class
    ("^ab*c", "a"),  # b is optional
    ("^[本此]文", ""),
    ("^abc|^xyz", ""),  # an alternation shares no prefix
    ("abc", ""),  # not anchored
])
def test_the_text_a_pattern_starts_with(pattern, prefix):
    assert literal_prefix(pattern) == prefix


def test_reason_openings_are_written_by_the_grammar_not_sampled(tiny_gguf):
    """The default prompt's reasons open with fixed words (能拿来用的是 / 与已有工作相比， / 推荐给), and
    主要工作 with 本文: the grammar makes them certain, and fast-forwarding appends them with the keys
    around them."""
    prompt = load_prompt()
    schema = prompt.schema()
    openings = dict(prompt.openings)
    assert openings == {"main_work": "本文", "practicality": "能拿来用的是", "innovation": "与已有工作相比，",
                        "recommendation": "推荐给"}
    skeleton = Skeleton.from_schema(schema)
    before = FULL[:FULL.index('"practicality"') - 1]
    assert skeleton.forced(before) == '{"practicality": {"reason": "能拿来用的是'
    spec = ModelSpec("tiny", {"path": str(tiny_gguf)}, n_ctx=16384, generation={"max_tokens": 4096})
    model = LocalModel(spec, tiny_gguf, batch_size=1)
    answer = AnswerFormat(schema_to_gbnf(schema), schema, avoid=NEVER_WRITE)
    conversation = [prompt.messages(Paper("2309.1", "Paper 1", "An abstract."))]
    fast = model.complete_many(conversation, answer, seed=3)[0]
    plain_forced = model.complete_many(conversation, AnswerFormat(schema_to_gbnf(REVIEW_SCHEMA), REVIEW_SCHEMA,
                                                                  avoid=NEVER_WRITE), seed=3)[0].forced_tokens
    model.fast_forward = False
    slow = model.complete_many(conversation, answer, seed=3)[0]
    for completion in (fast, slow):  # random weights: only the grammar puts the openings there
        review = Review.from_json(completion.text)
        assert all(score.reason.startswith(openings[name]) for name, score in review.scores().items())
        assert review.main_work.startswith("本文")
    assert fast.forced_tokens > plain_forced


def test_where_a_field_starts_in_an_answer():
    """A review asked again keeps its answer up to the first field with a problem (review.pipeline)."""
    assert SKELETON.paths[:3] == ("main_work", "highlights", "keywords.0.en")
    assert SKELETON.paths[-2:] == ("scores.recommendation.reason", "scores.recommendation.score")
    assert SKELETON.start_of(FULL, "highlights") == FULL[:FULL.index('"highlights": "') + len('"highlights": "')]
    keywords = SKELETON.start_of(FULL, "keywords")
    assert keywords.endswith('"keywords": [{"en": "') and FULL.startswith(keywords)
    innovation = SKELETON.start_of(FULL, "scores.innovation")
    assert innovation.endswith('"innovation": {"reason": "') and '"practicality": {"reason"' in innovation
    assert SKELETON.start_of(FULL, "scores") == FULL[:FULL.index('"practicality": {"reason": "') + 28]
    # The answer's first field, the whole answer, a field it does not have: nothing to keep
    assert SKELETON.start_of(FULL, "main_work") is None and SKELETON.start_of(FULL, "") is None
    assert SKELETON.start_of(FULL, "title") is None
    assert SKELETON.start_of('{"main_work" : "本文。", "highlights": "', "keywords") is None  # not the skeleton's text
    assert SKELETON.start_of(FULL[:40], "keywords") is None  # the answer ends before it
    # With the prompt's reason openings, they are part of what is kept
    prompt = load_prompt()
    opened = FULL
    for name, opening in prompt.openings:
        opened = opened.replace(f'"{name}": {{"reason": "', f'"{name}": {{"reason": "{opening}')
    kept = Skeleton.from_schema(prompt.schema()).start_of(opened, "scores.recommendation")
    assert kept.endswith('"recommendation": {"reason": "推荐给') and opened.startswith(kept)


def test_an_answer_goes_on_from_a_given_start_on_the_real_decoder(tiny_gguf):
    model, answer = two_at_a_time(tiny_gguf)
    conversations = [load_prompt().messages(Paper(f"2309.{i}", f"Paper {i}", "An abstract.")) for i in range(2)]
    first = model.complete_many(conversations, answer, seed=3)
    start = SKELETON.start_of(FULL, "scores")  # an earlier answer's 主要工作, 亮点 and keywords
    again = model.complete_many(conversations, answer, seed=3, starts=[start, ""])
    assert again[0].text.startswith(start) and again[0].text != FULL
    kept = Review.from_json(again[0].text)  # the grammar took the start and went on from there
    assert kept.main_work == MAIN_WORK and kept.keywords == Review.from_json(FULL).keywords
    assert again[0].completion_tokens < first[0].completion_tokens / 2, (again[0], first[0])  # only the scores
    other = again[1].text  # the other paper's answer is its own, written from its beginning
    assert not other.startswith(start[:20]) and Review.from_json(other) and again[1].completion_tokens > 100
    # A start the grammar refuses is dropped whole: the answer is written from its beginning
    refused = model.complete_many(conversations[:1], answer, seed=4, starts=['{"title": "'])[0]
    assert refused.text.startswith('{"main_work": "') and Review.from_json(refused.text)


def test_an_answer_going_on_from_a_start_fits_the_context_its_first_answer_had(tiny_gguf):
    """The start counts against the answer's token limit, so the answer asked again needs no more KV
    cells than the first and reuses the prompt evaluated for it (RMT at stop 38: a new context, the
    whole 2195-token prompt evaluated again)."""
    conversation = load_prompt().messages(Paper("2309.1", "Paper 1", "An abstract."))
    probe = LocalModel(ModelSpec("tiny", {"path": str(tiny_gguf)}, n_ctx=16384), tiny_gguf)
    prompt = probe.prompt_tokens(conversation)
    # A limit that leaves the context a few cells to spare for the first answer (it is sized in
    # steps of 1024), fewer than the start has tokens.
    limit = -(-(prompt + 600) // 1024) * 1024 - prompt - 4
    spec = ModelSpec("tiny", {"path": str(tiny_gguf)}, n_ctx=16384, generation={"max_tokens": limit})
    model = LocalModel(spec, tiny_gguf, batch_size=1)
    answer = AnswerFormat(schema_to_gbnf(REVIEW_SCHEMA), REVIEW_SCHEMA, avoid=NEVER_WRITE)
    first = model.complete_many([conversation], answer, seed=3)[0]
    start = SKELETON.start_of(FULL, "scores")  # an earlier answer's 主要工作, 亮点 and keywords
    again = model.complete_many([conversation], answer, seed=4, starts=[start])[0]
    assert again.given_tokens > 4 and again.text.startswith(start)
    assert first.evaluated_prompt_tokens == prompt  # the first answer paid for the prompt; the next, for its start
    assert again.evaluated_prompt_tokens < again.given_tokens + prompt / 2, again


def test_closed_sentences_cost_no_step_on_the_real_decoder(tiny_gguf):
    """The closing quote after a value's last allowed sentence (AnswerFormat.sentence_caps: a reason
    is one sentence) is written without sampling. The grammar allows one answer here, so each run
    writes the same text and only the steps differ; after 主要工作 it has one spelling in the tiny
    model's tokens (bytes, and 。 as one token or three: the reasons end with ！), so the steps are
    counted exactly."""
    import dataclasses

    text = json.dumps({"main_work": MAIN_WORK, "highlights": "亮点！",
                       "keywords": [{"en": f"K{i}", "zh": f"词{i}"} for i in range(5)],
                       "scores": {dimension: {"reason": reason, "score": 3} for dimension, reason in
                                  zip(("practicality", "innovation", "recommendation"), ("好！", "新！", "读！"))}},
                      ensure_ascii=False)
    model, _answer = two_at_a_time(tiny_gguf)
    plain = AnswerFormat("root ::= " + json.dumps(text, ensure_ascii=False), REVIEW_SCHEMA)
    capped = dataclasses.replace(plain, sentence_caps=(("main_work", 4), ("highlights", 3), ("reason", 1)))
    conversation = load_prompt().messages(Paper("2309.1", "Paper 1", "An abstract."))

    def answer(answer_format):
        todo = [Request(conversation, answer_format, seed=3)]
        (_tag, completion), = model.complete_stream(lambda: todo.pop() if todo else None)
        assert completion.text == text
        return completion.completion_tokens - completion.forced_tokens  # sampled: one step each

    assert answer(capped) == answer(plain) - 3  # the three reasons' closing quotes


def test_keywords_known_before_they_are_written_are_forced_with_the_text_around_them():
    """The Chinese of the paper's name and of a glossary term (review.terms.keyword_values): the review
    stage would write them there anyway, so they come with the schema's fixed text."""
    from localdigest.review.terms import keyword_values

    skeleton = Skeleton.from_schema(load_prompt().schema(), known=keyword_values("LongLoRA"))
    summary = '{"main_work": "本文提出。它很好。", "highlights": "亮点。"'
    assert skeleton.forced(summary) == ', "keywords": [{"en": "'  # the English is the model's
    named = summary + ', "keywords": [{"en": "LongLoRA"'
    assert skeleton.forced(named) == ', "zh": "LongLoRA"}, {"en": "'
    first = named + ', "zh": "LongLoRA"}, {"en": "Large Language Models"'
    assert skeleton.forced(first) == ', "zh": "大型语言模型"}, {"en": "'
    assert skeleton.forced(first + ', "zh": "大型语') == '言模型"}, {"en": "'  # the rest of a span cut short
    # Not a term an earlier keyword has (the duplicate check would flag it), nor one the answer left:
    # what follows it is still forced.
    assert skeleton.forced(first + ', "zh": "大型语言模型"}, {"en": "LLMs"') == ', "zh": "'
    assert skeleton.forced(first + ', "zh": "大语言模型"}, {"en": "Fine-tuning"') == ', "zh": "微调"}, {"en": "'
    # Without a name, the name's Chinese is the model's.
    assert Skeleton.from_schema(load_prompt().schema(), known=keyword_values(None)).forced(named) == ', "zh": "'
    # The review stage gives each paper's format its name; papers decoded together share no name.
    from localdigest.review.pipeline import for_papers

    longlora, other = Paper("2309.1", "LongLoRA: Long contexts", "We present LongLoRA."), Paper("2309.2", "Other", "A.")
    base = AnswerFormat("root ::= x", load_prompt().schema())
    assert for_papers(base, [longlora]).known_values("keywords.3.zh", {"keywords.3.en": "LongLoRA"}) == "LongLoRA"
    assert for_papers(base, [longlora, other]).known_values("keywords.3.zh", {"keywords.3.en": "LongLoRA"}) is None


def test_known_keywords_cost_no_step_on_the_real_decoder(tiny_gguf):
    """One answer the grammar allows (as in the closed-sentences test), with and without known values:
    the same text, fewer steps."""
    import dataclasses

    from localdigest.review.terms import keyword_values

    keywords = [("LongLoRA", "LongLoRA"), ("Large Language Models", "大型语言模型"), ("Context", "上下文"),
                ("Fine-tuning", "微调"), ("Attention", "注意力")]
    text = json.dumps({"main_work": MAIN_WORK, "highlights": "亮点！", "keywords": [{"en": e, "zh": z} for e, z in keywords],
                       "scores": {dimension: {"reason": "好！", "score": 3} for dimension in
                                  ("practicality", "innovation", "recommendation")}}, ensure_ascii=False)
    model, _answer = two_at_a_time(tiny_gguf)
    plain = AnswerFormat("root ::= " + json.dumps(text, ensure_ascii=False), REVIEW_SCHEMA)
    known = dataclasses.replace(plain, known_values=keyword_values("LongLoRA"))
    conversation = load_prompt().messages(Paper("2309.1", "LongLoRA: Long contexts", "We present LongLoRA."))

    def steps(answer_format):
        todo = [Request(conversation, answer_format, seed=3)]
        (_tag, completion), = model.complete_stream(lambda: todo.pop() if todo else None)
        assert completion.text == text
        return completion.completion_tokens - completion.forced_tokens

    assert steps(known) <= steps(plain) - sum(map(model.count_tokens, ("LongLoRA", "大型语言模型", "微调")))


def test_a_value_is_closed_where_close_when_says_on_the_real_decoder(tiny_gguf):
    """AnswerFormat.close_when: a 亮点 that has said 主要工作 again by a sentence end gets its closing
    quote there, unsampled, though the grammar would let it go on; one that has not is the model's to
    go on with. The grammar allows a second sentence after each first one, and without close_when the
    tiny model writes it at this seed."""
    import dataclasses

    from localdigest.review.checks import said_already

    def grammar(first: str) -> str:
        head = json.dumps('{"main_work": "' + MAIN_WORK + '", "highlights": "' + first, ensure_ascii=False)
        tail = json.dumps('", "keywords": ' + json.dumps([{"en": f"K{i}", "zh": f"词{i}"} for i in range(5)],
                                                         ensure_ascii=False)
                          + ', "scores": {"practicality": {"reason": "好！", "score": 3}, "innovation": {"reason": '
                          '"新！", "score": 3}, "recommendation": {"reason": "读！", "score": 3}}}', ensure_ascii=False)
        return f'root ::= {head} more? {tail}\nmore ::= "它还有别的内容。"'

    model, _answer = two_at_a_time(tiny_gguf)
    conversation = load_prompt().messages(Paper("2309.1", "Paper 1", "An abstract."))

    def highlights(first: str, **format_fields) -> tuple[str, int]:
        answer_format = dataclasses.replace(AnswerFormat(grammar(first), REVIEW_SCHEMA), **format_fields)
        todo = [Request(conversation, answer_format, seed=2)]
        (_tag, completion), = model.complete_stream(lambda: todo.pop() if todo else None)
        return Review.from_json(completion.text).highlights, completion.completion_tokens - completion.forced_tokens

    repeat, new = MAIN_WORK, "它在长文档问答上比基线好很多。"
    assert highlights(repeat)[0] == highlights(new)[0].replace(new, repeat) == repeat + "它还有别的内容。"
    closed, steps = highlights(repeat, close_when=said_already)
    assert closed == repeat and steps < highlights(repeat)[1]
    assert highlights(new, close_when=said_already)[0] == new + "它还有别的内容。"
