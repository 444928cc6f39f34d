from localdigest.review.cache import ReviewCache
from localdigest.review.pipeline import Reviewer
from localdigest.llm.local import LocalModel
from localdigest.sources.feeds import load_feeds
from localdigest.llm.registry import ModelSpec
from localdigest.review.prompts import load_prompt
from conftest import HF_FEED
from localdigest.testing.tiny_model import write_tiny_gguf


def reviewer(tiny_gguf, cache_dir, **generation) -> Reviewer:
    spec = ModelSpec("tiny", {"path": str(tiny_gguf)}, n_ctx=16384, generation={"max_tokens": 4096, **generation})
    return Reviewer(LocalModel(spec, tiny_gguf), load_prompt(), ReviewCache(cache_dir))


def record_stream(model, events: list) -> None:
    """Log what passes through the model's stream of answers, in order: ("take", request) as the
    decoder takes a request, ("done", request) as its answer comes back."""
    stream = model.complete_stream
    taken = {}

    def recording(take, *args, **kw):
        def logged():
            request = take()
            if request is not None:
                events.append(("take", request))
                taken[id(request.tag)] = request
            return request

        for tag, completion in stream(logged, *args, **kw):
            events.append(("done", taken[id(tag)]))
            yield tag, completion

    model.complete_stream = recording


def requests(events: list) -> list:
    return [request for kind, request in events if kind == "take"]


def test_cached_rerun_does_not_load_the_model(tiny_gguf, tmp_path):
    papers = load_feeds([str(HF_FEED)]).papers[:3]
    first = reviewer(tiny_gguf, tmp_path / "cache")
    reviews = [first.review(p).review for p in papers]
    assert first.stats.generated == 3 and first.model.loaded

    second = reviewer(tiny_gguf, tmp_path / "cache")
    results = [second.review(p) for p in papers]
    assert [r.review for r in results] == reviews and all(r.cached for r in results)
    assert second.stats.cached == 3 and not second.model.loaded


def test_one_paper_on_a_local_model_is_fast_forwarded_too(tiny_gguf, tmp_path):
    one = reviewer(tiny_gguf, tmp_path / "cache")  # batch size 1
    result = one.review(load_feeds([str(HF_FEED)]).papers[0])
    assert result.review is not None and result.cost["forced_tokens"] >= 40, result.cost


def test_cache_key_covers_prompt_model_and_settings(tiny_gguf, tmp_path):
    paper = load_feeds([str(HF_FEED)]).papers[0]
    base = reviewer(tiny_gguf, tmp_path / "c")
    hotter = reviewer(tiny_gguf, tmp_path / "c", temperature=0.9)
    assert base.key(paper) != hotter.key(paper)
    other_prompt = Reviewer(base.model, load_prompt("instruct"), None)
    assert other_prompt.key(paper) != base.key(paper)
    edited = type(paper)(**{**paper.__dict__, "abstract": paper.abstract + " Revised."})
    assert base.key(edited) != base.key(paper)
    other_weights = write_tiny_gguf(tmp_path / "other.gguf", seed=1)  # the same name, another file
    assert reviewer(other_weights, tmp_path / "c").key(paper) != base.key(paper)
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(tiny_gguf.read_bytes())  # the same weights elsewhere: the same reviews
    assert reviewer(copy, tmp_path / "c").key(paper) == base.key(paper)
    chatml = Reviewer(LocalModel(ModelSpec("tiny", {"path": str(tiny_gguf)}, chat_format="chatml", n_ctx=16384,
                                           generation={"max_tokens": 4096}), tiny_gguf), load_prompt(), None)
    assert chatml.key(paper) != base.key(paper)  # another chat format is another prompt


def test_invalid_answer_is_retried_then_reported(tiny_gguf, tmp_path):
    papers = load_feeds([str(HF_FEED)]).papers[:2]
    broken = reviewer(tiny_gguf, tmp_path / "cache")
    broken.answer_format = 'root ::= "{}"'  # valid JSON, never a valid review
    events = []
    record_stream(broken.model, events)  # one paper at a time still goes through it (fast-forward)
    results = [broken.review(p) for p in papers]
    assert all(r.review is None and "failed validation 3 times" in r.error and "main_work: missing" in r.error
               for r in results)
    assert [r.seed for r in requests(events)] == [42, 43, 44, 42, 43, 44]  # two retries per paper, each with another seed
    assert broken.stats.failed == 2 and len(broken.cache) == 0


def test_answer_copying_the_worked_example_is_rejected(tiny_gguf, tmp_path):
    import json

    copier = reviewer(tiny_gguf, tmp_path / "cache")
    example = copier.prompt.examples[0][1]
    copier.answer_format = "root ::= " + json.dumps(example, ensure_ascii=False)  # the model can only say the example
    result = copier.review(load_feeds([str(HF_FEED)]).papers[0])
    assert result.review is None and "copies the worked example" in result.error


def batched(tiny_gguf, cache_dir, batch_size) -> Reviewer:
    spec = ModelSpec("tiny", {"path": str(tiny_gguf)}, n_ctx=16384, generation={"max_tokens": 4096})
    return Reviewer(LocalModel(spec, tiny_gguf, batch_size=batch_size), load_prompt(), ReviewCache(cache_dir))


def test_batched_reviews_come_back_for_every_paper_and_are_cached(tiny_gguf, tmp_path):
    papers = load_feeds([str(HF_FEED)]).papers[:5]
    first = batched(tiny_gguf, tmp_path / "cache", batch_size=3)
    first.review(papers[1])  # cached before the batched run: batches are made of the others
    events = []
    record_stream(first.model, events)
    results = dict(first.review_many(papers))
    assert sorted(results) == list(range(5)) and all(r.review is not None for r in results.values())
    assert [results[i].paper for i in range(5)] == papers
    assert results[1].cached
    assert [r.messages for r in requests(events)[:3]] == [first.prompt.messages(papers[i]) for i in (0, 2, 3)]
    # Three answers in flight at most, and a finished one's place is taken while the others go on
    in_flight, joined = [0], []
    for i, (kind, _request) in enumerate(events):
        if kind == "take" and i >= 3:
            joined.append(in_flight[-1])  # answers still being written when this one was taken
        in_flight.append(in_flight[-1] + (1 if kind == "take" else -1))
    assert max(in_flight) == 3 and events[3][0] == "done"
    assert any(n > 0 for n in joined), "no answer joined others still being written"
    assert first.stats.generated == 5 and len(first.cache) == 5

    again = batched(tiny_gguf, tmp_path / "cache", batch_size=3)
    assert all(r.cached for _i, r in again.review_many(papers)) and not again.model.loaded


def test_batches_evaluate_the_shared_prefix_once(tiny_gguf, tmp_path):
    papers = load_feeds([str(HF_FEED)]).papers[:4]
    reviewer = batched(tiny_gguf, tmp_path / "cache", batch_size=2)
    reviewer.attempts = 1  # each cost is its paper's first answer (one asked again keeps the prompt's cells)
    # in the papers' order: a batch's answers come back as they finish
    costs = [result.cost for _i, result in sorted(reviewer.review_many(papers), key=lambda done: done[0])]
    assert costs[0]["evaluated_prompt_tokens"] == costs[0]["prompt_tokens"]  # the first paper pays for the prefix
    for cost in costs[1:]:  # the others, in this batch and the next, pay only for their own part
        assert cost["evaluated_prompt_tokens"] < cost["prompt_tokens"] / 2, cost


def test_batched_answers_failing_validation_are_retried_with_another_seed(tiny_gguf, tmp_path):
    papers = load_feeds([str(HF_FEED)]).papers[:2]
    broken = batched(tiny_gguf, tmp_path / "cache", batch_size=2)
    broken.answer_format = 'root ::= "{}"'
    events = []
    record_stream(broken.model, events)
    results = [r for _i, r in broken.review_many(papers)]
    assert all(r.review is None and "failed validation 3 times" in r.error for r in results)
    assert sorted(r.seed for r in requests(events)) == [42, 42, 43, 43, 44, 44]
    assert broken.stats.failed == 2 and len(broken.cache) == 0


# A 主要工作 that says what the paper found, as the checks want (MIN_MAIN_WORK), besides the flaw a test is about
LONG_ENOUGH = "它把 LLaMA2 7B 的上下文从 4k 扩展到 100k，只在单台 8 卡 A100 机器上训练，推理时仍用原来的全注意力，困惑度与全量微调相当。"


def test_a_flawed_answer_is_asked_again_with_the_problem_stated_then_shown_with_a_flag(tiny_gguf, tmp_path):
    import json

    from localdigest.output.render import DigestInfo, render_markdown

    flawed = {"main_work": "我们提出一种新的方法，用于长上下文微调。" + LONG_ENOUGH, "highlights": "只需两行代码。",
              "keywords": [{"en": f"Keyword {i}", "zh": f"关键词{i}"} for i in range(5)],
              "scores": {k: {"reason": r, "score": 3} for k, r in
                         zip(("practicality", "innovation", "recommendation"), ("好用。", "新颖。", "值得读。"))}}
    answer = json.dumps(flawed, ensure_ascii=False)
    stubborn = reviewer(tiny_gguf, tmp_path / "cache")
    stubborn.answer_format = "root ::= " + json.dumps(answer, ensure_ascii=False)  # it can only say this
    events = []
    record_stream(stubborn.model, events)
    paper = load_feeds([str(HF_FEED)]).papers[0]
    result = stubborn.review(paper)
    asked = [r.messages for r in requests(events)]
    assert len(asked) == 3 and asked[0] == stubborn.prompt.messages(paper)
    # The same question, with what was wrong last time appended to it
    assert asked[1][:-1] == asked[0][:-1] and asked[1][-1]["content"].startswith(asked[0][-1]["content"])
    assert "第一人称" in asked[1][-1]["content"].removeprefix(asked[0][-1]["content"])
    assert result.review is not None and result.flags == ("main_work is in the first person",)
    # What the review cost counts all three answers, not just the one kept
    assert result.cost["attempts"] == 3 and result.cost["kept_attempt"] == 1
    assert result.cost["sent_back_for"] == ["main_work is in the first person"] * 2  # for the bench's count
    # (the same text each time, in slightly different tokens: the random model picks the split)
    assert result.cost["all_completion_tokens"] > 2.5 * result.cost["completion_tokens"]
    assert result.cost["all_seconds"] > result.cost["seconds"]
    # The reader of the Chinese digest is told in Chinese; the log and the JSON keep the English line
    assert result.notes == ("主要工作用了第一人称",)
    markdown = render_markdown(DigestInfo("2023-09-22", "m", "p"), [result])
    assert "> ⚠️ 自动检查提示：主要工作用了第一人称" in markdown and "first person" not in markdown
    again = reviewer(tiny_gguf, tmp_path / "cache").review(paper)  # cached, and flagged again on the way out
    assert again.cached and again.flags == result.flags and again.notes == result.notes


def review_answering_only(answer: dict, tiny_gguf, tmp_path):
    """A review by a model whose grammar allows only `answer`: (its JSON, the `starts` of each
    complete_many call, the result)."""
    import json

    text = json.dumps(answer, ensure_ascii=False)
    stubborn = reviewer(tiny_gguf, tmp_path / "cache")
    stubborn.answer_format = "root ::= " + json.dumps(text, ensure_ascii=False)
    events = []
    record_stream(stubborn.model, events)
    result = stubborn.review(load_feeds([str(HF_FEED)]).papers[0])
    return text, [r.start for r in requests(events)], result


def test_asked_again_a_local_model_keeps_the_fields_before_the_problem(tiny_gguf, tmp_path):
    """A first-person 亮点 is written anew, its 主要工作 is not: the answer asked again goes on from
    the first answer's `"highlights": "`, so it costs only the rest (the grammar here allows one answer)."""
    flawed = {"main_work": "本文提出一种用于长上下文微调的新方法，并在多个模型上验证。" + LONG_ENOUGH,
              "highlights": "我们只需两行代码。",
              "keywords": [{"en": f"Keyword {i}", "zh": f"关键词{i}"} for i in range(5)],
              "scores": {k: {"reason": r, "score": 3} for k, r in
                         zip(("practicality", "innovation", "recommendation"), ("好用。", "新颖。", "值得读。"))}}
    answer, starts, result = review_answering_only(flawed, tiny_gguf, tmp_path)
    kept = answer[:answer.index('"highlights": "') + len('"highlights": "')]
    assert starts == ["", kept, kept]
    assert result.flags == ("highlights is in the first person",) and result.cost["attempts"] == 3
    # Each answer asked again wrote the 亮点 onwards only (the first paid for 主要工作's ~90 characters too)
    first, rest = result.cost["completion_tokens"], result.cost["all_completion_tokens"] - result.cost["completion_tokens"]
    assert rest < 1.6 * first, (first, rest)
    assert result.cost["given_tokens"] == 0  # the kept answer is the first, written whole
    assert result.cost["all_forced_tokens"] >= result.cost["forced_tokens"]  # (none here: a bare grammar has no skeleton)


def test_a_copy_that_comes_back_after_keeping_the_first_fields_gets_a_last_answer_from_the_start(tiny_gguf, tmp_path):
    copying = {"main_work": "本文提出一种用于长上下文微调的新方法，并在多个模型上验证。" + LONG_ENOUGH,
               "highlights": "只需两行代码就能接入现有训练流程。",
               "keywords": [{"en": f"Keyword {i}", "zh": f"关键词{i}"} for i in range(5)],
               "scores": {"practicality": {"reason": "能拿来用的是两行代码的实现。", "score": 4},
                          "innovation": {"reason": "与已有工作相比，新在移位短注意力。", "score": 4},
                          "recommendation": {"reason": "推荐给做语音识别的研究者和要给音频配字幕的开发者。", "score": 4}}}
    answer, starts, result = review_answering_only(copying, tiny_gguf, tmp_path)
    kept = answer[:answer.index('"recommendation": {"reason": "') + len('"recommendation": {"reason": "推荐给')]
    assert starts == ["", kept, ""]  # the second keeps all but the copied reason; the last starts afresh
    assert result.review is None and "copies the worked example" in result.error


def test_an_answer_that_misreads_a_number_ends_at_that_field_and_is_asked_again(tiny_gguf, tmp_path):
    """A number the paper does not give, in 主要工作: the local model stops there (the rest would be
    thrown away) and is asked again; the last answer is written whole and kept with the flag. Here
    the grammar allows one answer, and the schema's skeleton fast-forwards its fixed text."""
    import json

    from localdigest.llm.base import AnswerFormat

    openings = dict(load_prompt().openings)
    misread = {"main_work": "本文提出一种有 7.5 亿参数的长上下文微调方法。" + LONG_ENOUGH,
               "highlights": "移位短注意力只需两行代码即可在训练中实现，推理时仍用全注意力，困惑度与全量微调相当。",
               "keywords": [{"en": f"Keyword {i}", "zh": f"关键词{i}"} for i in range(5)],
               "scores": {name: {"reason": openings[name] + reason, "score": 3} for name, reason in
                          zip(("practicality", "innovation", "recommendation"), ("训练脚本。", "移位短注意力。", "做长上下文的人。"))}}
    text = json.dumps(misread, ensure_ascii=False)
    model = reviewer(tiny_gguf, tmp_path / "cache")
    model.answer_format = AnswerFormat("root ::= " + json.dumps(text, ensure_ascii=False), load_prompt().schema())
    record_stream(model.model, events := [])
    result = model.review(load_feeds([str(HF_FEED)]).papers[0])
    assert [r.stop_early is not None for r in requests(events)] == [True, True, False]  # none on the last
    assert [r.start for r in requests(events)] == ["", "", ""]  # 主要工作 is the answer's first field
    assert result.flags == ("writes 7.5 亿, a number the paper does not give",)
    assert result.cost["sent_back_for"] == ["misreads a number"] * 2 and result.cost["attempts"] == 3
    # The two answers asked again stopped after 主要工作: together less than the whole last one
    whole = result.cost["completion_tokens"]
    assert result.cost["all_completion_tokens"] - whole < whole, result.cost


def test_a_flaw_a_new_answer_does_not_fix_is_flagged_without_asking_again(tiny_gguf, tmp_path):
    import json

    answer = {"main_work": "本文提出一种用于长上下文微调的新方法，并在多个模型上验证。" + LONG_ENOUGH, "highlights": "只需两行代码。",
              "keywords": [{"en": f"Keyword {i}", "zh": f"关键词{i}"} for i in range(5)],
              "scores": {k: {"reason": "理由相同。", "score": 3} for k in ("practicality", "innovation", "recommendation")}}
    same_reasons = reviewer(tiny_gguf, tmp_path / "cache")
    same_reasons.answer_format = "root ::= " + json.dumps(json.dumps(answer, ensure_ascii=False), ensure_ascii=False)
    record_stream(same_reasons.model, events := [])
    result = same_reasons.review(load_feeds([str(HF_FEED)]).papers[0])
    assert len(requests(events)) == 1 and result.flags == ("two score reasons are identical",)
    assert result.cost["attempts"] == 1 and len(same_reasons.cache) == 1


def test_a_paper_that_releases_nothing_gets_a_reason_for_what_to_learn_not_what_to_take(tiny_gguf, tmp_path):
    """The default prompt's practicality reason opens with 能拿来用的是 ("what a reader can use") for a
    paper that announces a release and with 可借鉴的是 ("what can be learned from it") for one that
    does not: told to name what to use, the 1.5B model offered the models and data of papers that
    release none (README, Prompts). The grammar writes the opening, so random weights write it too;
    the prompt before the paper's own message stays one for both (the prefix is evaluated once)."""
    from localdigest.sources.papers import Paper

    releasing = Paper("2309.1", "Paper 1", "We train a model. Our weights are publicly available.")
    silent = Paper("2309.2", "Paper 2", "We train a model and study its errors.")
    review = reviewer(tiny_gguf, tmp_path)
    record_stream(review.model, events := [])
    results = [review.review(paper) for paper in (releasing, silent)]
    taken = requests(events)
    assert [request.tag.paper for request in taken[:1]] == [releasing] and taken[-1].tag.paper == silent
    for request, opening in ((taken[0], "能拿来用的是"), (taken[-1], "可借鉴的是")):
        reason = request.answer_format.json_schema["properties"]["scores"]["properties"]["practicality"]["properties"]["reason"]
        assert reason["pattern"].startswith(f"^{opening}") and f'"{opening}"' in request.answer_format.gbnf
        assert request.messages[:-1] == taken[0].messages[:-1]
    for result, opening in zip(results, ("能拿来用的是", "可借鉴的是")):
        assert result.review.scores()["practicality"].reason.startswith(opening)


def test_a_reviews_main_work_is_turned_away_from_background_openings(tiny_gguf, tmp_path):
    """The review stage hands the local model its background words for 主要工作 alone: the sampler's
    bans for a review turn 然而 away at a sentence's start there (the tiny vocabulary is bytes, so
    at 然 and the first two bytes of 而, the last byte goes), and nowhere else."""
    review = reviewer(tiny_gguf, tmp_path)
    bans = review.model._banned(review.answer_format)
    assert bans.openings.keys == frozenset({b"main_work"})
    head = "然而".encode()[:-1]
    assert review.model._vocabulary().index("而".encode()[-1:]) in bans.openings.after[head]
