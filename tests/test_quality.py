"""The checks a reader would make, on reviews written the way the 1.5B model really wrote them."""

from dataclasses import replace

import pytest

from localdigest.review.checks import Example, cut_off, english_words, example_of, is_loop, problems

KEPT_CAPITALISED = ("Transformer", "GitHub", "Markdown")
from localdigest.review.prompts import load_prompt
from localdigest.review.schema import PROSE, Review
from test_reviews import valid_dict

PAPER = ("LongLoRA: Efficient Fine-tuning of Long-Context Large Language Models\n"
         "We present LongLoRA, an efficient fine-tuning approach that extends the context sizes of pre-trained "
         "large language models (LLMs), with limited computation cost. LongLoRA extends LLaMA2 7B from 4k "
         "context to 100k, or LLaMA2 70B to 32k on a single 8x A100 machine. Shifted short attention can be "
         "implemented with only two lines of code in training.")
GOOD = ("本文提出 LongLoRA，一种在有限计算成本下扩展大模型上下文长度的高效微调方法。"
        "它在单台 8 卡 A100 机器上把 LLaMA2 7B 的上下文从 4k 扩展到 100k，把 LLaMA2 70B 扩展到 32k。")
# What the checks ask of every 主要工作 beside the sentence a test is about: a result (MIN_MAIN_WORK)
MORE = "在单台 8 卡 A100 机器上，LLaMA2 7B 的上下文从 4k 扩展到 100k，LLaMA2 70B 扩展到 32k。"


def review(**changes) -> Review:
    data = valid_dict()
    data.update({"main_work": GOOD, "highlights": "移位短注意力只需两行代码即可在训练中实现，推理时仍用全注意力。"})
    data.update(changes)
    return Review.from_dict(data)


def texts(found):
    return [problem.text for problem in found]


def real_reviews() -> tuple[dict, list[dict]]:
    """The bench papers of 2023-09-20..22 by title, and the reviews stored for them: the 26
    Qwen2.5-Coder 1.5B wrote (stop 45, seed 42), then stop 46's DreamLLM (see the repair test)."""
    import json

    from conftest import BENCH_DATA, FIXTURES
    from localdigest.sources.feeds import load_feeds

    papers = {paper.title: paper for day in ("2023-09-20", "2023-09-21", "2023-09-22")
              for paper in load_feeds([str(BENCH_DATA / "papers" / f"{day}.json")]).papers}
    return papers, json.loads((FIXTURES / "qwen1.5b_reviews_seed42.json").read_text(encoding="utf-8"))


def default_examples():
    from localdigest.review.pipeline import worked_examples

    return worked_examples(load_prompt("default"))  # as the pipeline reads them: with the prompt's openings


def test_a_reasonable_review_has_no_problems():
    assert problems(review(), default_examples(), PAPER) == []


def test_a_sentence_from_the_worked_example_is_caught_in_any_field():
    """As seen on Qwen-1.5B: the example's reason pasted into an unrelated paper."""
    example_reason = "推荐给做语音识别的研究者和要给音频配字幕的开发者。"
    scores = {**valid_dict()["scores"], "recommendation": {"score": 4, "reason": example_reason}}
    (found,) = [p for p in problems(review(scores=scores), default_examples(), PAPER) if "worked example" in p.text]
    assert found.severe and "照抄" in found.feedback
    assert found.field == "scores.recommendation"  # asked again, the answer is kept up to that reason


def test_one_english_term_an_example_also_uses_is_not_a_copy_but_an_english_sentence_is():
    term = Example(texts=("本文比较学习率调度对 BERT fine-tuning 的影响。",), scores=(1, 1, 1))
    assert not [p for p in problems(review(highlights="本文的 fine-tuning 方法扩展了上下文。"), [term], PAPER)
                if "worked example" in p.text]
    sentence = Example(texts=("它在 zero-shot transfer settings 下接近人类。",), scores=(1, 1, 1))
    (found,) = [p for p in problems(review(highlights="本文在 zero-shot transfer settings 下表现最好。"), [sentence],
                                    PAPER) if "worked example" in p.text]
    assert found.severe and "zero-shottransfers" in found.text


def test_an_english_keyword_of_the_papers_own_words_is_not_a_copy_but_a_foreign_one_is():
    """Baichuan 2's abstract says "multilingual" and "training", never together; the Whisper example's
    keyword "Multilingual Training" is still a fair keyword for it. A term whose words the paper
    never uses is the example's."""
    example = Example(texts=("Multilingual Training", "Learning Rate Schedule"), scores=(1, 1, 1))
    paper = "Baichuan 2: Open Large-scale Language Models. A series of multilingual models, training on 2.6T tokens."

    def copied(en):
        keywords = [{"en": en, "zh": "多语言训练"}] + valid_dict()["keywords"][1:]
        return [p for p in problems(review(keywords=keywords), [example], paper) if "worked example" in p.text]

    assert copied("Multilingual Training") == []
    (found,) = copied("Learning Rate Schedule")
    assert found.severe and "learningrateschedule" in found.text


def test_text_the_paper_itself_shares_with_an_example_is_not_a_copy():
    shared = "large language models (LLMs)"  # in the paper's abstract, and in the example below
    example = Example(texts=("本文研究预测模型和无损压缩之间的等价关系。", f"它研究 {shared} 的压缩能力。"), scores=(1, 1, 1))
    assert problems(review(highlights=f"本文面向 {shared} 做长上下文扩展。"), [example], PAPER) == []


@pytest.mark.parametrize("changes, expected", [
    ({"main_work": "我们提出了 LongLoRA，一种在有限计算成本下扩展上下文的微调方法。"}, "main_work is in the first person"),
    ({"highlights": "We extend LLaMA2 7B from 4k context to 100k on one machine with two lines of code."},
     "not written in Chinese: highlights"),
    ({"main_work": "本文提出 LongLoRA，" + "它" * (PROSE["main_work"].sentence_chars - 15) + "。"}, "main_work is cut off"),
    ({"highlights": "移位短注意力只需两行代码即可实现"}, "highlights is cut off"),
    ({"highlights": GOOD.replace("本文提出", "它是")}, "highlights repeat 主要工作"),
    ({"main_work": GOOD + "推理时仍使用全注意力。" + GOOD}, "main_work says one sentence twice"),
    ({"scores": {**valid_dict()["scores"], "practicality": {"score": 4, "reason": GOOD}}},
     "the practicality reason repeats 主要工作/亮点"),
    ({"main_work": "本文把 LLaMA2 7 亿参数模型的上下文扩展到 100k。"}, "writes 7B as 7 亿 (7B is 70 亿)"),
    # BTLM-3B-8K's 3 billion parameters were "7.5 亿参数" in a bench review: no number of the paper's
    ({"main_work": "本文把 LLaMA2 7B 的上下文扩展到 100k，共 17 亿参数。"}, "writes 17 亿, a number the paper does not give"),
    ({"main_work": "本文提出 LongLoRA，一种扩展大模型上下文长度的高效微调方法。"}, "main_work is too short (34 characters)"),
    ({"keywords": [{"en": "LoRA", "zh": "低秩适配"}, {"en": "lora", "zh": "LoRA"}] + valid_dict()["keywords"][2:]},
     "duplicate keywords"),
    ({"scores": {k: {"score": 4, "reason": "很有用。"} for k in ("practicality", "innovation", "recommendation")}},
     "two score reasons are identical"),
    ({"scores": {"practicality": {"score": 5, "reason": "可用。"}, "innovation": {"score": 3.5, "reason": "新。"},
                 "recommendation": {"score": 4.5, "reason": "值得读。"}}}, "exactly the worked example's"),
])
def test_problems_a_reader_would_see_are_named_and_mild(changes, expected):
    found = [p for p in problems(review(**changes), default_examples(), PAPER) if expected in p.text]
    assert found and not found[0].severe and found[0].feedback
    # Only what a new answer has been seen to fix is asked again; the rest is a flag for the reader.
    assert found[0].ask_again == (expected in ("main_work is in the first person", "not written in Chinese: highlights",
                                               "main_work says one sentence twice", "writes 7B as 7 亿 (7B is 70 亿)",
                                               "main_work is too short (34 characters)",
                                               "writes 17 亿, a number the paper does not give",
                                               "the practicality reason repeats 主要工作/亮点"))
    # Where it starts: asked again, a local model keeps the answer before that field (review.pipeline)
    fields = {"not written in Chinese: highlights": "highlights", "highlights is cut off": "highlights",
              "highlights repeat 主要工作": "highlights", "the practicality reason repeats 主要工作/亮点": "scores.practicality",
              "duplicate keywords": "keywords", "two score reasons are identical": "scores",
              "exactly the worked example's": "scores"}
    assert found[0].field == fields.get(expected, "main_work")


def test_a_reason_built_on_a_worked_examples_sentence_is_flagged():
    """The learning-rate example's innovation reason with this paper's words in its gaps, as Qwen 1.5B
    wrote it in bench reviews (runs of 4-7 characters: under the copy check's 10)."""
    survey = ("Multimodal Foundation Models: From Specialists to General-Purpose Assistants\n"
              "This paper presents a comprehensive survey of the taxonomy and evolution of multimodal foundation models.")
    framed = [("与已有工作相比，本文只在五个核心话题上比较了它们。", survey),
              ("与已有工作相比，SlimPajama 是一个去重的数据集，本文只在六个数据集上比较了它们。",
               "SlimPajama-DC: Understanding Data Combinations for LLM Training\nWe study data combinations."),
              ("与已有工作相比，优势模型和选择性复习都是常见做法，本文只针对 RLHF 进行了创新。",
               "Stabilizing RLHF through Advantage Model and Selective Rehearsal\nWe propose two methods.")]
    for reason, paper in framed:
        scores = {**valid_dict()["scores"], "innovation": {"score": 2, "reason": reason}}
        found = [p for p in problems(review(scores=scores), default_examples(), paper) if "example's sentence" in p.text]
        assert len(found) == 1 and found[0].field == "scores.innovation" and not found[0].ask_again, reason
        assert "本文只" in found[0].text and not found[0].severe
    # Since stop 48: Latin letters weigh ½ as in the copy check, and only the prompt's opening is left
    # out ("推荐给", not "推荐给在小样本文本" that a reason shares with the example beyond it).
    btlm = "BTLM-3B-8K: 7B Parameter Performance in a 3B Parameter Model\nWe introduce a 3 billion parameter model."
    rlhf = "Stabilizing RLHF through Advantage Model and Selective Rehearsal\nWe propose two methods."
    # The reader is quoted the reason's own words (since stop 49), its spaces, capitals and Chinese
    # commas kept: not the compared text's "上微调bert的工程师,".
    for name, reason, paper, quoted in (
            ("recommendation", "推荐给在小数据上微调 BERT 的工程师，BTLM-3B-8K 提供了优秀的性能和长上下文能力。", btlm,
             "上微调 BERT 的工程师，"),
            ("recommendation", "推荐给在小样本文本任务上微调 BART 的工程师，BTLM-3B-8K 提供了优秀的长上下文性能。", btlm,
             "在小样本文本…上微调 B…RT 的工程师，"),
            ("innovation", "与已有工作相比，Advantage Model 和 Selective Rehearsal 是新颖的方法，本文只在 RLHF 训练中应用了它们。",
             rlhf, "法，本文只在…了它们。")):
        scores = {**valid_dict()["scores"], name: {"score": 4, "reason": reason}}
        found = [p for p in problems(review(scores=scores), default_examples(), paper) if "example's sentence" in p.text]
        assert [p.field for p in found] == [f"scores.{name}"], reason
        assert found[0].note.endswith(f"（“{quoted}”）") and f"({quoted!r})" in found[0].text, found[0].note
    # Common words an example's reason also has are no frame, nor a reason of the paper's own.
    for name, reason in (("recommendation", "推荐给需要减少幻觉的大型语言模型的研究者和开发者。"),
                         ("recommendation", "推荐给需要解决数学问题的工程师，特别是那些希望使用开源 LLMs 的工程师。"),
                         ("innovation", "与已有工作相比，LongLoRA 把稀疏局部注意力只用于微调，推理时仍用全注意力。")):
        scores = {**valid_dict()["scores"], name: {"score": 4, "reason": reason}}
        assert not [p for p in problems(review(scores=scores), default_examples(), survey) if "example's sentence" in p.text]


@pytest.mark.parametrize("main_work", [
    "本文把 LLaMA2 70 亿参数模型的上下文扩展到 100k。",  # right: 7B is 70 亿
    "本文把 LLaMA2 7B 的上下文扩展到 100k，把 700 亿参数的 LLaMA2 扩展到 32k。",  # 700 亿 is 70B, and not 7 亿
    "本文的 LLaMA2 有 70.0 亿参数，用 10 万个 token 的上下文。",  # 7B and 100k: the same numbers, written otherwise
    "本文的方法只需两行代码。本文的方法只需两行代码就能接入。",  # similar sentences, not the same one
])
def test_right_numbers_and_distinct_sentences_are_not_problems(main_work):
    assert problems(review(main_work=main_work + MORE), default_examples(), PAPER) == []


@pytest.mark.parametrize("changes, expected", [
    ({"highlights": "演化和学习的" * 12 + "。"}, "highlights repeats itself"),
    ({"keywords": [{"en": "LLM", "zh": "大模型"}] * 5}, "all five keywords are the same"),
    ({"scores": {k: {"score": 0, "reason": r} for k, r in zip(("practicality", "innovation", "recommendation"),
                                                              ("无。", "没有。", "不。"))}}, "every score is 0"),
])
def test_answers_that_say_nothing_are_severe(changes, expected):
    found = [p for p in problems(review(**changes), [], PAPER) if expected in p.text]
    assert found and found[0].severe
    assert found[0].field == {"highlights repeats itself": "highlights", "all five keywords are the same": "keywords",
                              "every score is 0": ""}[expected]


def test_a_reason_may_name_what_the_summary_names():
    # ALMA at seed 42, stop 32: a reason naming the model by its long English name was "restating"
    # by that name's 8-character runs alone, and was asked again twice for it.
    name = "Advanced Language Model-based trAnslator (ALMA)"
    summary = dict(main_work=f"本文通过两阶段微调开发出 {name} 模型。" + MORE,
                   highlights="它在单语数据上先微调，再用少量高质量平行数据微调，翻译质量超过同规模的模型。")
    naming = {**valid_dict()["scores"], "practicality": {"score": 4, "reason": f"能拿来用的是 {name} 模型，无需大量并行数据。"}}
    assert not [p for p in problems(review(**summary, scores=naming), [], PAPER) if "reason repeats" in p.text]
    copying = {**valid_dict()["scores"], "practicality": {
        "score": 4, "reason": f"能拿来用的是 {name}，它在单语数据上先微调，再用少量高质量平行数据微调。"}}
    assert [p.text for p in problems(review(**summary, scores=copying), [], PAPER) if "reason repeats" in p.text] == [
        "the practicality reason repeats 主要工作/亮点"]


def test_first_person_check_leaves_self_words_alone():
    assert problems(review(main_work="本文研究大模型的自我纠错能力，发现自我反思在我国的中文数据上同样有效。" + MORE), [], PAPER) == []


def test_loop_detection_leaves_ordinary_text_alone():
    assert is_loop("the same words " * 10)
    assert not is_loop("We present LongLoRA, an efficient fine-tuning approach that extends the context sizes.")
    assert not is_loop("短文本短文本")  # too short to judge


def test_billions_written_as_yi_are_written_back_as_the_paper_spells_them():
    from localdigest.review.checks import fix_numbers

    paper = "BTLM-3B-8K: 7B Parameter Performance in a 3B Parameter Model\nTrained on 627B tokens; unlike 0.3B models."
    wrong = review(main_work="本文介绍 7 亿参数级别表现的 3亿参数模型，训练了 627 亿个 token。",
                   highlights="比 30 亿参数的模型更好。")
    fixed = fix_numbers(wrong, paper)
    # 3 亿 stays: the paper's 0.3B is 3 亿. 30 亿 (3B) was right already.
    assert fixed.main_work == "本文介绍 7B参数级别表现的 3亿参数模型，训练了 627B个 token。"
    assert fixed.highlights == "比 30 亿参数的模型更好。"
    assert fix_numbers(review(main_work="本文介绍 7 个亿参数的模型。"), paper).main_work == "本文介绍 7B参数的模型。"
    assert not [p for p in problems(fixed, [], paper) if "亿" in p.text]
    assert fix_numbers(review(), PAPER) == review()
    chat = "LMSYS-Chat-1M: A Large-Scale Real-World LLM Conversation Dataset\nOne million conversations, 1M in all."
    fixed = fix_numbers(review(main_work="本文发布包含 1000 万条对话的数据集，来自 21 万个 IP。"), chat)
    assert fixed.main_work == "本文发布包含 1M条对话的数据集，来自 21 万个 IP。"
    assert fix_numbers(review(main_work="本文发布包含 100 万条对话的数据集。"), chat).main_work == "本文发布包含 100 万条对话的数据集。"
    # The same mistakes in Chinese numerals (a later run wrote "一千万真实世界对话"); 一百万 is right, 二十七亿 is 27 亿
    in_words = review(main_work="本文发布包含一千万真实世界对话的数据集，而非一百万条。")
    assert fix_numbers(in_words, chat).main_work == "本文发布包含1M真实世界对话的数据集，而非一百万条。"
    assert [p.text for p in problems(in_words, [], chat) if "万" in p.text] == ["writes 1M as 1000 万 (1M is 100 万)"]
    assert fix_numbers(review(main_work="本文介绍七亿参数的模型，不是二十七亿。"), paper).main_work == "本文介绍7B参数的模型，不是二十七亿。"


def test_a_papers_numbers_are_read_at_their_english_scale():
    from localdigest.review.checks import _unknown_scale, paper_numbers

    given = paper_numbers("BTLM-3B-8K, a 3-billion-parameter model, trained on 627B tokens and 680,000 hours "
                          "of audio, with 100k context and 2.6 trillion tokens; 1.9M pairs.")
    assert {3e9, 627e9, 6.8e5, 1e5, 2.6e12, 1.9e6} <= set(given)
    written = ["30 亿参数", "6270 亿个", "68 万小时", "10 万", "2.6 万亿个", "190 万对", "约 69 万"]
    assert [_unknown_scale(given, text) for text in written] == [None] * 6 + ["69 万"]  # 1% for rounding, no more
    assert _unknown_scale(given, "7.5 亿参数") == "7.5 亿"
    assert _unknown_scale(given, "7.5 个亿参数") == "7.5 亿"  # 个 between, as a review wrote it
    # In words, as LMSYS-Chat-1M gives its size ("one million real-world conversations"): 100 万 is right.
    in_words = paper_numbers("a dataset containing one million real-world conversations, Two-billion tokens, "
                             "ten thousand hours; one model")
    assert {1e6, 2e9, 1e4} <= set(in_words) and _unknown_scale(in_words, "包含 100 万条对话") is None
    assert _unknown_scale(in_words, "包含 1000 万条对话") == "1000 万"
    # In plain digits too, as LMSYS-Chat-1M's review wrote its one million conversations ("包含 100000
    # 条真实世界对话", stop 45, seed 42); a year, a name, a percentage, a decimal or 8192 for 8K is no count.
    lmsys = paper_numbers("one million real-world conversations from 210,000 unique IP addresses; 8K context")
    assert [_unknown_scale(lmsys, text) for text in ("包含 100000 条对话", "共 9999 个", "1,000,000 条对话")] == \
        ["100000", "9999", None]
    assert [_unknown_scale(lmsys, text) for text in ("210,000 个 IP", "8192 的上下文", "ICCV 2023", "2023年",
                                                     "GSM8K 上", "提升 1234%", "1234.5 分", "100 万条")] == [None] * 8
    # Without the paper's text nothing is judged.
    assert not [p for p in problems(review(main_work="本文的模型有 7.5 亿参数。" + MORE), [], "") if "number" in p.text]


def test_an_answers_first_fields_are_checked_for_numbers_as_the_whole_answer_is():
    """NumberChecks.early_problems reads the values an answer has closed so far as problems() reads the repaired
    review: the same number problem, from the same field, and none where a repair puts it right."""
    from localdigest.review.checks import NumberChecks, repair

    btlm = ("BTLM-3B-8K: 7B Parameter Performance in a 3B Parameter Model\n"
            "BTLM-3B-8K is a 3 billion parameter model trained on 627B tokens; it is competitive with 7B models.")
    reason = "推荐给想在手机上跑 75 亿参数模型的工程师。"  # 7.5B: a number the paper does not give
    cases = [({"main_work": "本文介绍 BTLM-3B-8K，一个 7.5 亿参数的开源语言模型。" + MORE}, "main_work"),
             ({"main_work": "本文介绍 BTLM-3B-8K，一个 3 亿参数、在 627 亿个 token 上训练的模型。" + MORE}, None),  # 3B, 627B back
             ({"scores": {**valid_dict()["scores"], "recommendation": {"score": 4, "reason": reason}}},
              "scores.recommendation")]
    for changes, field in cases:
        whole = review(**changes)
        expected = [p for p in problems(repair(whole, btlm), [], btlm) if p.kind == "misreads a number"]
        values = {"main_work": whole.main_work, "highlights": whole.highlights,
                  **{f"keywords.{i}.en": k.en for i, k in enumerate(whole.keywords)},
                  **{f"scores.{name}.reason": score.reason for name, score in whole.scores().items()}}
        found = NumberChecks(btlm).early_problems(values)
        assert [p.text for p in found] == [p.text for p in expected] and [p.field for p in found] == ([field] if field else [])
        assert all(p.ask_again for p in found)
        if field:  # without the field, nothing is found
            assert NumberChecks(btlm).early_problems({k: v for k, v in values.items() if not k.startswith(field)}) == []


@pytest.mark.parametrize("text, size", [
    # Qwen2.5-Coder 1.5B's own sentences (stop 45's bench, seeds 1, 2 and 7)
    ("本文介绍了一个名为 BTLM-3B-8K 的新的 7B参数开源语言模型，它是 Bittensor Language Model 的一个新版本。", "7"),
    ("BTLM-3B-8K 是一个 7B参数的开源语言模型，比其他任何 3B参数模型都好；它在一些 7B参数模型中也表现良好。", "7"),
    ("与已有工作相比，BTLM-3B-8K 是一个 7B参数的开源模型，具有更好的性能和长上下文表现。", "7"),
    ("本文介绍了 BTLM-3B-8K，一个 70 亿参数的模型。", "7"),  # in Chinese units
    ("本文介绍了名为 BTLM-3B-8K 的 3B 参数开源语言模型，甚至比一些 7B 参数模型还好。", None),  # compares
    ("与已有工作相比，BTLM-3B-8K 是一个在 7B参数模型上表现优异的模型。", None),  # "at the 7B level"
    ("本文介绍了 BTLM-3B-8K，一个 30 亿参数的模型。", None),
])
def test_the_size_in_a_models_name_is_the_size_a_review_gives_it(text, size):
    """BTLM-3B-8K's title says "7B Parameter Performance in a 3B Parameter Model", and three of stop
    45's four seeds called it a 7B model in 主要工作: a number the paper gives, so only the name tells."""
    from localdigest.review.checks import NumberChecks

    btlm = NumberChecks("BTLM-3B-8K: 7B Parameter Performance in a 3B Parameter Model\nWe introduce the Bittensor "
                        "Language Model, called \"BTLM-3B-8K\", a new 3 billion parameter open-source language model. "
                        "BTLM-3B-8K performs competitively with 7B models.")
    found = btlm.problem("main_work", text)
    assert (found and (found.text, found.note, found.field, found.ask_again)) == \
        (size and (f"misreads the size in BTLM-3B-8K's name: {size}B (the name says 3B)",
                   f"主要工作把 BTLM-3B-8K（3B）说成了 {size}B 参数的模型", "main_work", True))
    assert NumberChecks("LongLoRA: Efficient Fine-tuning\nLongLoRA extends LLaMA2 7B.").problem(
        "main_work", "LongLoRA 是一个 7B参数的方法。") is None  # a name without a size says nothing


def test_a_number_the_paper_does_not_give_is_found_on_real_answers_and_asked_again_from_its_field():
    """Of the 26 reviews Qwen2.5-Coder 1.5B wrote for the bench papers (stop 45, seed 42), the number
    checks find one: LMSYS-Chat-1M's 主要工作 has "100000 条" for one million conversations, and the
    answer is asked again from 主要工作 (early_problems finds it there, as the answer is written)."""
    from localdigest.review.checks import NumberChecks, repair
    from localdigest.review.pipeline import paper_text

    papers, stored = real_reviews()
    stored = stored[:26]
    found = {}
    for entry in stored:
        text = paper_text(papers[entry["title"]])
        whole = repair(Review.from_dict(entry["review"]), text)
        numbers = [p for p in problems(whole, [], text) if p.kind == "misreads a number"]
        if numbers:
            found[entry["title"].split(":")[0]] = [(p.text, p.field, p.ask_again) for p in numbers]
    assert found == {"LMSYS-Chat-1M": [("writes 100000, a number the paper does not give", "main_work", True)]}
    lmsys = next(entry for entry in stored if entry["title"].startswith("LMSYS-Chat-1M"))
    early = NumberChecks(paper_text(papers[lmsys["title"]])).early_problems({"main_work": lmsys["review"]["main_work"]})
    assert [(p.field, p.note) for p in early] == [("main_work", "主要工作写了摘要里没有的数字 100000")]


def test_a_sentence_the_grammar_stopped_at_its_cap_ends_at_its_last_clause_instead():
    from localdigest.review.checks import end_at_clause, repair

    shape = PROSE["highlights"]
    first = "MetaMath 通过从多个视角重写问题生成新的数据集。"
    long = "实验结果表明，" + "它在两个流行的数学推理基准上都优于现有的开源模型，" * 6 + "尤其在 GSM8"
    cut = long[:shape.sentence_chars - 2] + "。"  # what the grammar forces at the cap
    text = first + cut + "和 MATH 上都更好。"
    repaired = end_at_clause(text, shape)
    assert repaired == first + cut[:cut[:-1].rfind("，")] + "。"
    assert not cut_off(repaired, shape) and repaired.endswith("开源模型。") and len(repaired) > len(first) + 100
    assert end_at_clause(first, shape) == first  # nothing cut: unchanged
    no_clause = "它" * (shape.sentence_chars - 2) + "。"
    assert end_at_clause(first + no_clause, shape) == first  # the earlier sentences stand alone
    assert end_at_clause(no_clause, shape) == no_clause  # nothing to stand on: kept, and flagged
    assert repair(review(highlights=text), PAPER).highlights == repaired


def test_a_whole_sentence_a_repair_lengthens_past_its_cap_is_not_cut_and_a_cache_hit_shows_the_same():
    """DreamLLM's 主要工作 at stop 46's seed 42: a 138-character second sentence opening "梦LLM",
    142 once the name is written back. Read as cut at its cap, it was flagged where it was written,
    and its second principle was cut away when the cache entry was read (repair runs again)."""
    from localdigest.review.checks import repair

    paper = ("DreamLLM: Synergistic Multimodal Comprehension and Creation\n"
             "This paper presents DreamLLM, a learning framework that first achieves versatile Multimodal Large "
             "Language Models. DreamLLM operates on two fundamental principles.")
    second = ("梦LLM遵循两个基本原则：第一，在原始多模态空间中直接采样生成语言和图像，避免外部特征提取器 CLIP 带来的信息丢失；"
              "第二，生成原始的交错文档，同时建模文本和图像内容以及无结构的布局，从而有效地学习所有条件、边缘和联合多模态分布")
    second += "，在多模态理解和文本到图像生成任务上得到验证。"
    shape = PROSE["main_work"]
    assert len(second) == shape.sentence_chars - 2  # one short of where the grammar would have ended it
    written = review(main_work="本文提出学习框架 DreamLLM，统一多模态理解与生成。" + second)
    repaired = repair(written, paper)
    assert "DreamLLM遵循" in repaired.main_work and "第二" in repaired.main_work
    assert len(repaired.main_work.split("。")[1]) + 1 > shape.sentence_chars  # longer than any answer's
    assert not cut_off(repaired.main_work, shape)
    assert not [p for p in problems(repaired, default_examples(), paper) if "cut off" in p.text]
    assert repair(repaired, paper) == repaired
    # A sentence the grammar did stop at its cap is still read as cut, with or without its last character.
    for length in (shape.sentence_chars - 1, shape.sentence_chars):
        assert cut_off("本文" + "它" * (length - 3) + "。", shape)
    # And cut at its last clause before a repair lengthens it: OpenBA's "380B参数" is "380B tokens".
    openba = "OpenBA: An Open-sourced 15B Bilingual Asymmetric seq2seq Model\nOpenBA is trained on only 380B tokens."
    long = "OpenBA 仅使用 380B参数就在多个基准上超过了更大的模型，" + "并且在中文和英文任务上都表现出色，" * 8
    stopped = long[:shape.sentence_chars - 2] + "。"  # what the grammar forces at the cap
    highlights = repair(review(highlights=stopped), openba).highlights
    assert highlights == "OpenBA 仅使用 380B tokens就在多个基准上超过了更大的模型，" + "并且在中文和英文任务上都表现出色，" * 5 \
        + "并且在中文和英文任务上都表现出色。"


def test_repair_leaves_its_own_work_as_it_is_on_real_answers():
    """A cache hit is repaired again (entries written before a repair get it), so a repaired review
    must come back unchanged, or the cached digest is not the one first shown (DreamLLM above).
    The 26 reviews Qwen2.5-Coder 1.5B wrote for the bench papers (stop 45, seed 42), as stored, and
    DreamLLM's from stop 46's tried prompt as the model wrote it ("梦LLM遵循…"), which a second
    repair cut at a clause before checks.at_cap."""
    from localdigest.review.checks import repair
    from localdigest.review.pipeline import paper_text

    papers, stored = real_reviews()
    assert len(stored) == 27
    for entry in stored:
        text = paper_text(papers[entry["title"]])
        once = repair(Review.from_dict(entry["review"]), text)
        assert repair(once, text) == once, entry["title"]


@pytest.mark.parametrize("title, name", [
    ("Boolformer: Symbolic Regression of Logic Functions with Transformers", "Boolformer"),
    ("BTLM-3B-8K: 7B Parameter Performance in a 3B Parameter Model", "BTLM-3B-8K"),
    ("Baichuan 2: Open Large-scale Language Models", "Baichuan 2"),
    ("LLM-Grounder: Open-Vocabulary 3D Visual Grounding with Large Language Model as an Agent", "LLM-Grounder"),
    ("Multimodal Foundation Models: From Specialists to General-Purpose Assistants", None),  # a phrase
    ("The Languini Kitchen: Enabling Language Modelling Research at Different Scales of Compute", None),
    ("Language Modeling Is Compression", None),
    ("Position: Open Models Need Open Data", None),  # the abstract says "this position paper"
])
def test_a_title_names_its_method_only_when_the_prefix_looks_like_a_name(title, name):
    from localdigest.review.checks import paper_name

    abstract = f"We present {title.partition(':')[0]}, and in this position paper we argue for it."
    assert paper_name(title, abstract.replace("Position", "position")) == name


def test_the_papers_name_becomes_the_first_keyword_when_the_model_left_it_out():
    from localdigest.review.checks import repair
    from localdigest.review.schema import Keyword

    paper = "Boolformer: Symbolic Regression of Logic Functions with Transformers\nWe introduce Boolformer."
    terms = [("Transformer", "Transformer"), ("Symbolic Regression", "符号回归"), ("Logic Functions", "逻辑函数"),
             ("End-to-End", "端到端"), ("Binary Classification", "二分类")]
    as_written = review(keywords=[{"en": en, "zh": zh} for en, zh in terms])
    repaired = repair(as_written, paper).keywords
    assert repaired == (Keyword("Boolformer", "Boolformer"), *as_written.keywords[:4])
    assert not [p for p in problems(repair(as_written, paper), [], paper) if "keyword" in p.text]
    # Already there (in any keyword, either language, or as the name's main part): unchanged.
    for en, zh in [("Boolformer model", "Boolformer 模型"), ("Logic", "Boolformer"), ("Boolform", "布尔")]:
        named = review(keywords=[{"en": en, "zh": zh}, *({"en": e, "zh": z} for e, z in terms[1:])])
        assert repair(named, paper).keywords == named.keywords, en
    slim = "SlimPajama-DC: Understanding Data Combinations for LLM Training\nSlimPajama-DC studies data combinations."
    named = review(keywords=[{"en": "SlimPajama", "zh": "SlimPajama"}, *({"en": e, "zh": z} for e, z in terms[1:])])
    assert repair(named, slim).keywords == named.keywords
    grounder = "LLM-Grounder: Open-Vocabulary 3D Visual Grounding\nWe propose LLM-Grounder."
    short = review(keywords=[{"en": "LLM", "zh": "大型语言模型"}, *({"en": e, "zh": z} for e, z in terms[1:])])
    assert repair(short, grounder).keywords[0] == Keyword("LLM-Grounder", "LLM-Grounder")  # "LLM" is not the name
    # The name spelled otherwise (as Qwen 1.5B wrote LongLoRA's and DreamLLM's): the paper's spelling, in both.
    for title, en, zh in [("LongLoRA: Efficient Fine-tuning of Long-Context LLMs", "Long LoRA", "LongLoRA"),
                          ("DreamLLM: Synergistic Multimodal Comprehension and Creation", "DreamLLM", "梦LLM")]:
        name = title.partition(":")[0]
        written = review(keywords=[*({"en": e, "zh": z} for e, z in terms[1:3]), {"en": en, "zh": zh},
                                   *({"en": e, "zh": z} for e, z in terms[3:])])
        fixed = repair(written, f"{title}\nWe present {name}.").keywords
        assert fixed[2] == Keyword(name, name) and fixed[:2] + fixed[3:] == written.keywords[:2] + written.keywords[3:]


def test_numbers_are_written_back_in_keywords_too():
    from localdigest.review.checks import repair

    paper = "BTLM-3B-8K: 7B Parameter Performance in a 3B Parameter Model\nTrained on 627B tokens."
    as_written = review(keywords=[{"en": "BTLM-3B-8K", "zh": "BTLM-3B-8K"}, {"en": "7B Parameter Model", "zh": "7 亿参数模型"},
                                  *({"en": f"Term {i}", "zh": f"术语{i}"} for i in range(3))])
    assert repair(as_written, paper).keywords[1].zh == "7B参数模型"
    # Baichuan 2's abstract says "7 billion and 13 billion parameters"; the model wrote 7 亿 and 13 亿.
    baichuan = "Baichuan 2: Open Large-scale Language Models\nModels containing 7 billion and 13 billion parameters."
    as_written = review(keywords=[{"en": "Baichuan 2", "zh": "Baichuan 2"}, {"en": "7B and 13B", "zh": "7 亿和 13 亿参数"},
                                  *({"en": f"Term {i}", "zh": f"术语{i}"} for i in range(3))])
    assert repair(as_written, baichuan).keywords[1].zh == "7B和 13B参数"


def test_tokens_the_review_calls_parameters_are_tokens_again():
    from localdigest.review.checks import repair

    # OpenBA's abstract: a 15B model, "with only 380B tokens"; Qwen 1.5B wrote "仅使用 380B参数".
    openba = ("OpenBA: An Open-sourced 15B Bilingual Asymmetric seq2seq Model\nOpenBA, a 15B bilingual model, "
              "achieves competitive performance with only 380B tokens, better than GLM-130B.")
    written = review(main_work="本文介绍 15B参数的 OpenBA 模型。它仅使用 380B参数也能优于 GLM-130B，并用 380B 个参数训练。")
    assert repair(written, openba).main_work == \
        "本文介绍 15B参数的 OpenBA 模型。它仅使用 380B tokens也能优于 GLM-130B，并用 380B tokens训练。"
    keyword = review(keywords=[{"en": "OpenBA", "zh": "OpenBA"}, {"en": "380B Tokens", "zh": "380B 参数"},
                               *({"en": f"Term {i}", "zh": f"术语{i}"} for i in range(3))])
    assert repair(keyword, openba).keywords[1].zh == "380B tokens"
    # A number the paper also gives without "tokens" (a model's size, say) is left as written.
    both = openba + " A 380B model would cost more."
    assert repair(written, both).main_work == written.main_work


def test_a_papers_name_half_translated_in_the_prose_is_written_as_the_paper_writes_it():
    from localdigest.review.checks import repair

    dream = "DreamLLM: Synergistic Multimodal Comprehension and Creation\nThis paper presents DreamLLM, a learning framework."
    # As Qwen 1.5B wrote it at both bench seeds of stop 35.
    written = review(main_work="本文提出了一种名为 DreamLLM 的学习框架。梦LLM 操作了两个基本原则，梦想LLM遵循它们。",
                     highlights="该LLM 能生成交错内容，优于多模态LLM 和大LLM，以及 小LLM。")
    fixed = repair(written, dream)
    assert fixed.main_work == "本文提出了一种名为 DreamLLM 的学习框架。DreamLLM 操作了两个基本原则，DreamLLM遵循它们。"
    assert fixed.highlights == written.highlights  # determiners, and words that may end a longer one, stay
    # A name without a head (BTLM-3B-8K, Boolformer) or no name in the title: nothing changes.
    for paper in ("BTLM-3B-8K: 7B Parameter Performance\nBTLM-3B-8K is a model.", "Language Modeling Is Compression\nWe."):
        assert repair(written, paper).main_work == written.main_work


def test_a_claim_to_be_the_first_stays_only_where_the_paper_makes_it():
    from localdigest.review.checks import repair

    # As Qwen 1.5B wrote it for Q-Transformer, whose abstract never says "first".
    claimed = review(highlights="Q-Transformer 是第一个利用 Transformer 做离线强化学习的方法，首次在真实机器人上验证。",
                     scores={**valid_dict()["scores"],
                             "innovation": {"score": 5, "reason": "与已有工作相比，它是首个可扩展的离线方法，不分第一阶段。"}})
    fixed = repair(claimed, PAPER)
    assert fixed.highlights == "Q-Transformer 是一个利用 Transformer 做离线强化学习的方法，在真实机器人上验证。"
    assert fixed.innovation.reason == "与已有工作相比，它是一个可扩展的离线方法，不分第一阶段。"
    assert fixed.main_work == claimed.main_work and fixed.innovation.score == 5
    says_so = PAPER + " LongLoRA is the first method to extend LLaMA2 70B to 32k."
    assert repair(claimed, says_so).highlights == claimed.highlights
    # "first" as an adverb (RMT's abstract) is not a claim to be first
    assert repair(claimed, PAPER + " Transformer first appears in NLP.").highlights == fixed.highlights


def test_a_sentence_that_only_calls_a_thing_by_its_own_name_goes():
    from localdigest.review.checks import repair

    # As Qwen 1.5B ended Q-Transformer's 主要工作 (stop 41's bench, seed 42).
    said = "本文提出 Q-Transformer，用 Transformer 表示 Q 函数，通过离线时间差备份训练。"
    fixed = repair(review(main_work=said + "因此，Q-Transformer 可以被称为 Q-Transformer。" + MORE,
                          highlights="模型就是模型。" + GOOD), PAPER)
    assert fixed.main_work == said + MORE and fixed.highlights == GOOD
    # A sentence that says what the thing is stays, and so does a field that would be left with too little.
    kept = "OpenBA 是一个 15B 参数的双语模型。OpenBA 是 OpenBA 项目发布的双语模型。"
    assert repair(review(main_work=kept + MORE), PAPER).main_work == kept + MORE
    assert repair(review(highlights="它就是它。"), PAPER).highlights == "它就是它。"


def test_code_the_abstract_does_not_announce_is_flagged_not_asked_again():
    # As Qwen 1.5B wrote it for RMT, whose abstract ends "Our work is still in progress."
    rmt = ("RMT: Retentive Networks Meet Vision Transformers\nRMT reaches 84.1% Top1-acc on ImageNet-1k "
           "with 4.5G FLOPs. Our work is still in progress.")
    scores = {**valid_dict()["scores"], "practicality": {"score": 4, "reason": "能拿来用的是 RMT 模型及其推理代码，可直接用于视觉任务。"}}
    found = [p for p in problems(review(scores=scores, highlights="RMT 在 ImageNet-1k 上以 4.5G FLOPs 达到 84.1%。"),
                                 default_examples(), rmt) if p.text.startswith("says code")]
    assert [(p.text, p.field, p.ask_again) for p in found] == [
        ("says code is available, which the abstract does not ('能拿来用的是 RMT 模型及其推理代码')",
         "scores.practicality", False)]
    # With 代码 banned, the 1.5B model wrote "the implementation" instead (Stabilizing RLHF, seed 42)
    implementation = {**scores, "practicality": {"score": 4, "reason": "能拿来用的是优势模型和选择性重演的实现，以及实验结果。"}}
    plain = "RMT 在 ImageNet-1k 上以 4.5G FLOPs 达到 84.1%。"
    assert [p.text for p in problems(review(scores=implementation, highlights=plain), default_examples(), rmt)
            if p.text.startswith("says code")] == [
        "says code is available, which the abstract does not ('能拿来用的是优势模型和选择性重演的实现')"]
    # With links no longer counting as code, LLM-Grounder's review (seed 7) offered its open-source implementation
    open_source = {**scores, "practicality": {"score": 4, "reason": "能拿来用的是 RMT 的开源实现，可以在 ImageNet 上复现。"}}
    assert [p.text for p in problems(review(scores=open_source, highlights=plain), default_examples(), rmt)
            if p.text.startswith("says code")] == [
        "says code is available, which the abstract does not ('能拿来用的是 RMT 的开源实现')"]
    verbs = {**scores, "practicality": {"score": 4, "reason": "能拿来用的是 RMT 的结构，难以实现的全局建模由它实现了。"}}
    assert not [p for p in problems(review(scores=verbs, highlights=plain), default_examples(), rmt)
                if p.text.startswith("says code")]
    for announced in (" Code is available at https://github.com/x/rmt.", " See github.com/x/rmt.",
                      " The codebase is released.", " RMT writes code from sketches."):
        assert not [p for p in problems(review(scores=scores), default_examples(), rmt + announced)
                    if p.text.startswith("says code")]
    # "Two lines of code" says how small a change is: the review may say so, but not offer the code.
    longlora = PAPER  # its only code: "implemented with only two lines of code in training"
    offered = {**scores, "practicality": {"score": 4, "reason": "能拿来用的是 LongLoRA 的代码和预训练模型，可以用于长上下文任务。"}}
    lines = review(scores=offered, highlights="移位短注意力只需两行代码即可在训练中实现，推理时可选。")
    assert [(p.text, p.field) for p in problems(lines, default_examples(), longlora) if p.text.startswith("says code")] == [
        ("says code is available, which the abstract does not ('能拿来用的是 LongLoRA 的代码和预训练模型')",
         "scores.practicality")]
    assert not [p for p in problems(review(), default_examples(), longlora) if p.text.startswith("says code")]
    assert not [p for p in problems(lines, default_examples(), longlora + " Code is at github.com/x/LongLoRA.")
                if p.text.startswith("says code")]
    # A project page, a dataset, weights or other people's open-source models are not code (as
    # Q-Transformer, LMSYS-Chat-1M, Baichuan 2 and BTLM-3B-8K say it).
    for unannounced in (" The project's website and videos can be found at https://qtransformer.github.io",
                        " The dataset is publicly available at https://huggingface.co/datasets/lmsys/lmsys-chat-1m.",
                        " We will release all pre-training model checkpoints.", " It beats other open-source models."):
        assert [p.field for p in problems(review(scores=scores, highlights=plain), default_examples(), rmt + unannounced)
                if p.text.startswith("says code")] == ["scores.practicality"]


def test_an_open_source_claim_the_abstract_does_not_make_is_flagged_and_kept_from_a_local_model():
    from localdigest.llm.base import AnswerFormat
    from localdigest.review.pipeline import for_papers
    from localdigest.sources.papers import Paper

    # As Qwen 1.5B read FoleyGen's "open-domain" (stop 43's bench, seed 42).
    foleygen = ("FoleyGen: Visually-Guided Audio Generation\nWe introduce FoleyGen, an open-domain V2A generation "
                "system built on a language modeling paradigm. FoleyGen leverages an off-the-shelf neural audio codec.")
    scores = {**valid_dict()["scores"], "practicality": {"score": 3, "reason": "能拿来用的是 FoleyGen 的开源系统，可以作为 V2A 生成的参考。"}}
    plain = "FoleyGen 在 VGGSound 上的客观指标和人工评测都优于以往系统。"
    found = [(p.text, p.field, p.ask_again) for p in problems(review(scores=scores, highlights=plain),
                                                              default_examples(), foleygen) if p.text.startswith("says")]
    assert found == [("says it is open source, which the abstract does not ('能拿来用的是 FoleyGen 的开源系统')",
                      "scores.practicality", False)]
    # A clause offering code is the code check's alone; a paper that speaks of a release, of open
    # source (its own or other people's) or of code lets the words through.
    code = {**scores, "practicality": {"score": 3, "reason": "能拿来用的是 FoleyGen 的开源实现。"}}
    assert [p.text for p in problems(review(scores=code, highlights=plain), default_examples(), foleygen)
            if p.text.startswith("says")] == ["says code is available, which the abstract does not ('能拿来用的是 FoleyGen 的开源实现')"]
    for announced in (" We release the model weights.", " It beats other open-source systems.",
                      " The samples are publicly available.", " Code is at github.com/x/foleygen."):
        assert not [p for p in problems(review(scores=scores, highlights=plain), default_examples(), foleygen + announced)
                    if p.text.startswith("says it is open source")]
    title, abstract = foleygen.split("\n")
    paper = Paper(arxiv_id="2309.10537", title=title, abstract=abstract)
    format_ = AnswerFormat("root ::= \"x\"")
    assert {"开源", "开放源"} <= set(for_papers(format_, [paper]).avoid)
    released = Paper(arxiv_id="2309.10305", title="Baichuan 2", abstract="We release all pre-training model checkpoints.")
    assert "开源" not in for_papers(format_, [released]).avoid and "代码" in for_papers(format_, [released]).avoid


def test_a_release_is_what_the_paper_announces():
    """Which papers get the prompt's openings (能拿来用的是: what a reader can use) and which its
    openings_without_release (可借鉴的是: what can be learned), and 开源 banned."""
    from localdigest.review.checks import announces_release

    assert announces_release("Baichuan 2\nWe release all pre-training model checkpoints.")
    assert announces_release("X\nThe dataset is publicly available.") and announces_release("X\ncode: https://github.com/a/b")
    assert not announces_release("FoleyGen\nWe introduce FoleyGen, an open-domain V2A generation system.")
    # "Two lines of code" says how small a change is (LongLoRA, FreeU): nothing is out
    assert "two lines of code" in PAPER and not announces_release(PAPER)
    assert announces_release(PAPER + " Our code is at github.com/x/longlora.")


def test_a_problems_kind_leaves_out_its_particulars():
    from localdigest.review.checks import Problem

    assert [Problem(text, "").kind for text in (
        "main_work is too short (73 characters)", "copies the worked example ('推荐给在小样本文本分类')",
        "not written in Chinese: main_work, highlights", "writes 2.6 trillion as 2.6 万亿 (2.6 trillion is 2.6 万亿)",
        "the innovation reason repeats 主要工作/亮点")] == [
        "main_work is too short", "copies the worked example", "not written in Chinese", "misreads a number",
        "the innovation reason repeats 主要工作/亮点"]


def test_a_local_model_is_kept_from_claiming_code_only_where_no_paper_in_its_batch_announces_any():
    from localdigest.llm.base import AnswerFormat
    from localdigest.review.pipeline import for_papers
    from localdigest.sources.papers import Paper

    rmt = Paper(arxiv_id="2309.11523", title="RMT: Retentive Networks Meet Vision Transformers",
                abstract="RMT reaches 84.1% Top1-acc on ImageNet-1k. Our work is still in progress.")
    longlora = Paper(arxiv_id="2309.12307", title="LongLoRA",
                     abstract="LongLoRA extends context. Code and models are available at https://github.com/x/LongLoRA.")
    plain = AnswerFormat("root ::= \"x\"")
    assert {"代码", "源码", "的实现", "开源实现", "我"} <= set(for_papers(plain, [rmt]).avoid)
    assert "代码" not in for_papers(plain, [longlora]).avoid and "我" in for_papers(plain, [longlora]).avoid
    assert "代码" not in for_papers(plain, [rmt, longlora]).avoid  # decoded together, they share one format
    # A feed that names the code repository announces code the abstract may not mention.
    assert "代码" not in for_papers(plain, [replace(rmt, code_url="https://github.com/x/RMT")]).avoid
    assert "代码" not in for_papers(plain, [replace(rmt, code_url="https://codeberg.org/x/RMT")]).avoid


def test_a_chinese_keyword_left_half_in_english_is_shown_in_english():
    from localdigest.review.checks import repair

    # As Qwen 1.5B wrote them (Chain-of-Verification, 360° Reconstruction, RMT, …)
    written = [("Chain-of-Verification", "链-of-_verification"), ("Space Carved Outpainting", "空间 carving 演变"),
               ("Global Modeling", "全局 modeling"), ("Bilingual Seq2seq Model", "双语 seq2seq 模型"),
               ("gzip Compression", "gzip 压缩")]
    paper = "Chain-of-Verification Reduces Hallucination in Large Language Models\nWe develop the method."
    fixed = repair(review(keywords=[{"en": e, "zh": z} for e, z in written]), paper).keywords
    assert [k.zh for k in fixed] == ["Chain-of-Verification", "Space Carved Outpainting", "Global Modeling",
                                     "双语 seq2seq 模型", "gzip 压缩"]  # a name, and a word the English has as written
    assert [k.en for k in fixed] == [e for e, _z in written]
    # Hyphened to a Chinese word, a short or Capitalised English word is half a translation too (stop 38,
    # seed 7); a letter or a unit hyphened to Chinese is not ("Q-值", GPT-4's; "3D-重建").
    joined = [("Chain-of-Verification", "链-of-Verification"), ("Q-value", "Q-值"), ("3D Reconstruction", "3D-重建"),
              *written[3:]]
    fixed = repair(review(keywords=[{"en": e, "zh": z} for e, z in joined]), paper).keywords
    assert [k.zh for k in fixed][:3] == ["Chain-of-Verification", "Q-值", "3D-重建"]


def test_keywords_get_the_fields_standard_chinese_term():
    from localdigest.review.checks import repair

    # As Qwen 1.5B wrote them on the bench papers: a wrong term, an uneven one inside a longer term,
    # a half-English one (shown in English first, then given its term).
    written = [("Large Language Models", "预训练语言模型"), ("Hallucinations", "假象"),
               ("Multimodal Large Language Models", "多模态大语言模型"), ("State-of-the-Art LLMs", "最新状态机 LLM"),
               ("Language Modelling", "语言 modelling")]
    paper = "Chain-of-Verification Reduces Hallucination in Large Language Models\nWe develop the method."
    fixed = repair(review(keywords=[{"en": e, "zh": z} for e, z in written]), paper).keywords
    assert [k.zh for k in fixed] == ["大型语言模型", "幻觉", "多模态大型语言模型", "最先进的 LLM", "语言建模"]
    assert [k.en for k in fixed] == [e for e, _z in written]
    # Not made where it would give two keywords one Chinese term (the duplicate check would flag it).
    both = [("Large Language Models", "大型语言模型"), ("LLM", "LLM"), *written[1:4]]
    assert [k.zh for k in repair(review(keywords=[{"en": e, "zh": z} for e, z in both]), paper).keywords][:2] \
        == ["大型语言模型", "LLM"]
    # "Large" lost in the Chinese of a longer term (ALMA's keywords)
    generative = review(keywords=[{"en": "Generative Large Language Models", "zh": "生成语言模型"},
                                  *({"en": e, "zh": z} for e, z in written[1:])])
    assert repair(generative, paper).keywords[0].zh == "生成大型语言模型"
    # "various multimodal" (DreamLLM's, every bench run), and the abbreviation
    dream = review(keywords=[{"en": "Multimodal Large Language Models", "zh": "多种多模态大型语言模型"},
                             {"en": "MLLMs", "zh": "MLLMs"}, *({"en": e, "zh": z} for e, z in written[:3])])
    assert [k.zh for k in repair(dream, paper).keywords][:2] == ["多模态大型语言模型", "MLLMs"]  # not twice the same
    dream = review(keywords=[{"en": "MLLMs", "zh": "MLLMs"}, *({"en": e, "zh": z} for e, z in written[:4])])
    assert repair(dream, paper).keywords[0].zh == "多模态大型语言模型"
    # A term the glossary does not know is left as written.
    other = review(keywords=[{"en": "Retentive Networks", "zh": "RetNet"}, *({"en": e, "zh": z} for e, z in written[1:])])
    assert repair(other, paper).keywords[0].zh == "RetNet"


def test_a_plain_mistranslation_is_put_right_in_the_prose_where_the_paper_uses_the_term():
    from localdigest.review.checks import repair

    # LMSYS-Chat-1M's "25 state-of-the-art LLMs", as Qwen 1.5B wrote it in 主要工作 and 亮点 every run
    lmsys = "LMSYS-Chat-1M: A Large-Scale Real-World LLM Conversation Dataset\nIt holds conversations with 25 state-of-the-art LLMs."
    written = review(main_work="本文介绍 LMSYS-Chat-1M，一个包含 100 万真实对话和 25 个最新状态机 LLM 的大规模数据集。" + MORE,
                     highlights="数据来自 25 个最新状态机 LLM 的真实对话。")
    fixed = repair(written, lmsys)
    assert "25 个最先进的 LLM" in fixed.main_work and fixed.highlights == "数据来自 25 个最先进的 LLM 的真实对话。"
    # Only where the paper says it: elsewhere the words are left as the model wrote them.
    assert repair(written, PAPER).highlights == written.highlights
    # "A new state of the art", as LMDX's 亮点 said it at both bench seeds.
    lmdx = "LMDX: Language Model-based Document Information Extraction\nLMDX sets a new state-of-the-art on VRDU."
    new_sota = review(highlights="在 VRDU 基准上达到了新的状态机。")
    assert repair(new_sota, lmdx).highlights == "在 VRDU 基准上达到了新的最先进水平。"
    # Hallucination called 假话 ("lies"), as CoVe's reviews said it at both stop-38 bench seeds; the
    # fairer 虚假信息 is left in a sentence, and made the term only in a keyword.
    cove = "Chain-of-Verification Reduces Hallucination in Large Language Models\nLLMs generate plausible yet incorrect information."
    lies = review(highlights="实验表明 CoVe 减少了假话和虚假信息。",
                  keywords=[{"en": "Hallucination Reduction", "zh": "假话减少"}, *valid_dict()["keywords"][1:]])
    fixed = repair(lies, cove)
    assert fixed.highlights == "实验表明 CoVe 减少了幻觉和虚假信息。" and fixed.keywords[0].zh == "幻觉减少"
    assert repair(lies, lmdx).highlights == lies.highlights  # a paper that does not say hallucination


def test_audio_is_not_speech_where_the_paper_has_no_speech():
    from localdigest.review.checks import repair

    # FoleyGen's visual-to-audio generation, as Qwen 1.5B wrote it in every bench run (语音 is speech)
    foley = ("FoleyGen: Visually-Guided Audio Generation\n"
             "We introduce FoleyGen, an open-domain video-to-audio (V2A) generation system built on a language "
             "modeling paradigm. An off-the-shelf neural audio codec converts waveforms to discrete tokens.")
    keywords = [{"en": "FoleyGen", "zh": "FoleyGen"}, {"en": "Visual-to-audio (V2A) Generation", "zh": "视觉到语音 (V2A) 生成"},
                {"en": "Neural Audio Codec", "zh": "神经音频编码器"}, {"en": "Generative Modeling", "zh": "生成模型"},
                {"en": "Speech and Audio", "zh": "语音和音频"}]
    written = review(highlights="FoleyGen 在视频到语音 (V2A) 生成任务中表现优异。", keywords=keywords,
                     scores={**valid_dict()["scores"], "recommendation": {"reason": "推荐给需要进行视频到语音生成的工程师。", "score": 4}})
    fixed = repair(written, foley)
    assert fixed.highlights == "FoleyGen 在视频到音频 (V2A) 生成任务中表现优异。"
    assert fixed.recommendation.reason == "推荐给需要进行视频到音频生成的工程师。"
    # the keywords: audio, and the field's terms for codec (编码器 is encoder) and generative modeling
    # (生成模型 is generative model); a keyword that says speech keeps 语音
    assert [k.zh for k in fixed.keywords][1:] == ["视觉到音频 (V2A) 生成", "神经音频编解码器", "生成建模", "语音和音频"]
    # A paper about speech keeps 语音 in its prose, and a paper that does not say audio is not touched.
    speech = "End-to-End Speech Recognition Contextualization\nWe feed audio features to an LLM for speech recognition."
    assert repair(written, speech).highlights == written.highlights
    assert repair(written, PAPER).recommendation.reason == written.recommendation.reason


def test_an_english_keyword_cut_mid_word_at_its_cap_ends_at_its_last_whole_word():
    from localdigest.review.checks import repair
    from localdigest.review.schema import MAX_CHARS

    lmdx = ("LMDX: Language Model-based Document Information Extraction and Localization\n"
            "We introduce LMDX, a methodology to adapt arbitrary LLMs for document information extraction.")
    cut = "Language Model-based Document Information Extraction and Loc"  # as Qwen 1.5B wrote it at stop 30
    assert len(cut) == MAX_CHARS["keyword"]
    keywords = [{"en": "LMDX", "zh": "LMDX"}, {"en": cut, "zh": "语言模型驱动的文档信息提取和定位"},
                {"en": "Large Language Models", "zh": "大型语言模型"}, {"en": "Document Understanding", "zh": "文档理解"},
                {"en": "Semi-structured Documents", "zh": "半结构化文档"}]
    fixed = repair(review(keywords=keywords), lmdx).keywords
    assert fixed[1].en == "Language Model-based Document Information Extraction"
    assert fixed[1].zh == keywords[1]["zh"] and [k.en for k in fixed[2:]] == [k["en"] for k in keywords[2:]]
    # A keyword that ends at the cap on a word the paper has is whole, and one under the cap is never touched.
    exact = "Document Information Extraction with Arbitrary LLMs via LMDX"
    assert len(exact) == MAX_CHARS["keyword"]
    kept = repair(review(keywords=[keywords[0], {"en": exact, "zh": "文档信息提取"}, *keywords[2:]]), lmdx).keywords
    assert kept[1].en == exact
    short = repair(review(keywords=[keywords[0], {"en": "Extraction and Loc", "zh": "提取"}, *keywords[2:]]), lmdx)
    assert short.keywords[1].en == "Extraction and Loc"
    # Nor where the shorter term is already a keyword.
    twice = [*keywords[:3], {"en": "Language Model-based Document Information Extraction", "zh": "文档信息提取"}, keywords[4]]
    assert repair(review(keywords=twice), lmdx).keywords[1].en == cut


def test_english_words_are_the_papers_lower_case_names():
    text = ("OpenBA: a seq2seq model\nWe train wav2vec on arXiv data (e.g. with llama.cpp and mT5, i.e. "
            "off-the-shelf tools) and reduce hallucination.")
    words = english_words(text)
    assert set(words) == {"token", "tokens", "seq2seq", "wav2vec", "arXiv", "llama.cpp", "mT5", "OpenBA", *KEPT_CAPITALISED}


def test_english_words_are_the_papers_names_in_capitals_not_its_title_case_or_first_words():
    text = ("Controllable Dynamic Appearance for Neural 3D Portraits: CoDyNeRF\nRecent advances in Neural "
            "Radiance Fields (NeRFs) render portraits. We present CoDyNeRF. Trained on smartphone videos, it "
            "beats Stable Diffusion and the Languini Kitchen: Stable at once. (Portraits aside.)")
    words = set(english_words(text)) - {"token", "tokens", *KEPT_CAPITALISED}
    # Capitalised where no sentence starts, or a capital inside (title or abstract): names.
    assert words == {"CoDyNeRF", "NeRFs", "Neural", "Radiance", "Fields", "Stable", "Diffusion", "Languini", "Kitchen"}
    # Title case, a sentence's first word, and after a colon or an opening bracket are no names.
    assert not words & {"Controllable", "Portraits", "Recent", "We", "Trained", "Portraits"}
    # 今日速览 names the papers by their titles: every Capitalised word of a list of titles counts.
    titles = "Baichuan 2: Open Large-scale Language Models\nThe Languini Kitchen: Enabling Research"
    assert {"Baichuan", "Open", "Large-scale", "The", "Languini", "Kitchen"} <= set(english_words(titles, titles=True))
    assert "Baichuan" not in english_words(titles)


def test_an_examples_chinese_keyword_is_avoided_where_the_paper_has_no_english_for_it():
    from localdigest.review.checks import example_terms
    from localdigest.review.pipeline import worked_examples

    examples = worked_examples(load_prompt("default"))
    alma = "A Paradigm Shift in Machine Translation\nfine-tuning LLMs on monolingual data, then a small set of parallel data"
    assert {"文本分类", "语音识别", "学习率调度"} <= set(example_terms(examples, alma))
    speech = "Contextualising end-to-end speech recognition with LLMs\nWe study Speech Recognition with text classification"
    assert not {"文本分类", "语音识别"} & set(example_terms(examples, speech))
    # Every word of the English, apart too: Baichuan 2's abstract says "multilingual" and "training".
    baichuan = "Baichuan 2\nmultilingual language models ... trained from scratch, on 2.6 trillion tokens. Training dynamics"
    assert "多语言训练" not in example_terms(examples, baichuan) and "文本分类" in example_terms(examples, baichuan)
    # Through the format a local model decodes with: the terms are banned words, the paper's text is
    # what a copy of an example may still quote.
    from localdigest.llm.base import AnswerFormat
    from localdigest.review.pipeline import for_papers, paper_text
    from localdigest.sources.papers import Paper

    paper = Paper(arxiv_id="2309.11674", title="A Paradigm Shift in Machine Translation", abstract=alma.split("\n")[1])
    answer_format = for_papers(AnswerFormat("root ::= \"x\""), [paper], examples)
    assert {"文本分类", "我"} <= set(answer_format.avoid) and answer_format.copy_allowed == paper_text(paper)


def test_every_problem_a_reader_sees_is_told_in_chinese():
    """The digest is Chinese; its ⚠️ line was the log's English ("highlights repeat 主要工作",
    "main_work is in the first person") until stop 47. Each problem that can be shown (not severe)
    carries a Chinese note, naming the field as the digest does (主要工作, 创新性的理由)."""
    paper = ("LongLoRA: Efficient Fine-tuning\nWe extend LLaMA2 7B to 100k context with 3 billion tokens. "
             "We compare schedules on small datasets. It beats 13B models by 5.5%.")
    example = example_of(Review.from_dict({**valid_dict(), "scores": {
        "practicality": {"score": 3, "reason": "能拿来用的是调参建议。"},
        "innovation": {"score": 2, "reason": "与已有工作相比，常数、余弦、one-cycle 等五种调度都是常见做法，本文只在六个小数据集上比较了它们。"},
        "recommendation": {"score": 3, "reason": "推荐给工程师。"}}}), ("能拿来用的是", "与已有工作相比，", "推荐给"))
    main_work = "本文提出 LongLoRA，把 LLaMA2 7B 的上下文扩展到 100k，并在多个长文本任务上验证了它的效果和效率。"
    flawed = [
        {"main_work": "我们提出 LongLoRA。"},  # first person, too short
        {"highlights": "它把上下文扩展到了很长。它把上下文扩展到了很长。"},  # one sentence twice
        {"highlights": "它用 30 亿 tokens 训练，在 7.5 亿参数下扩展上下文。"},  # misread scale, unknown number
        {"highlights": "It extends the context of LLaMA2 to 100k tokens."},  # not Chinese
        {"highlights": "它" * 139 + "。"},  # a sentence at its cap: cut off
        {"keywords": [{"en": "Same", "zh": "相同"}] * 4 + [{"en": "Other", "zh": "其他"}]},  # duplicates
        {"highlights": main_work},  # repeats 主要工作
        {"highlights": "作者公开了全部代码，并且开源了模型。"},  # code and open source the abstract does not announce
        {"highlights": "它比 7B 模型高出 5.5%。"},  # the paper's 5.5% is over 13B models
        {"scores": {"practicality": {"score": 4, "reason": main_work}, "innovation": {"score": 4, "reason": "新。"},
                    "recommendation": {"score": 4, "reason": "新。"}}},  # restates 主要工作, identical reasons
        {"scores": {"practicality": {"score": 3, "reason": "可借鉴的是它的做法。"},
                    "innovation": {"score": 2, "reason": "与已有工作相比，稀疏注意力和 LoRA 都是常用方法，本文只在长文本上比较了它们。"},
                    "recommendation": {"score": 3, "reason": "推荐给做长文本的研究者。"}}},  # the example's frame and scores
    ]
    kinds = set()
    log_words = {"main_work", "highlights", "reason", "practicality", "innovation", "recommendation", "writes"}
    for change in flawed:
        review = Review.from_dict({**valid_dict(), "main_work": main_work, "highlights": "只需两行代码即可实现。",
                                   "keywords": [{"en": f"Term {i}", "zh": f"术语{i}"} for i in range(5)], **change})
        for problem in problems(review, [example], paper):
            assert problem.severe or problem.note, problem.text
            if problem.severe:
                continue
            kinds.add(problem.kind)
            assert not log_words & set(problem.note.split()), problem.note
            assert any("\u4e00" <= c <= "\u9fff" for c in problem.note.split("（")[0]), problem.note
    assert len(kinds) == 15, sorted(kinds)  # each kind a reader can be shown


def test_a_highlights_that_repeats_main_work_is_left_out_of_the_digest_on_real_answers():
    """Qwen2.5-Coder 1.5B's 亮点 repeated its 主要工作 in 30 of stop 45's 104 bench reviews, every
    sentence of it; the digest shows a line saying so instead of the same text twice, and the JSON
    keeps what the model wrote. Read on the 26 real seed-42 reviews: Baichuan 2's 亮点 is its
    主要工作 word for word."""
    import json

    from localdigest.output.render import HIGHLIGHTS_OMITTED, DigestInfo, render_json, render_markdown
    from localdigest.review.checks import HIGHLIGHTS_LEFT_OUT, highlights_repeat
    from localdigest.review.pipeline import PaperResult, flagged, paper_text

    papers, stored = real_reviews()
    stored = stored[:26]
    results = []
    for entry in stored:
        paper, review = papers[entry["title"]], Review.from_dict(entry["review"])
        results.append(PaperResult(paper, review, **flagged(problems(review, [], paper_text(paper)))))
    repeating = [result for result in results if highlights_repeat(result.review)]
    assert 5 <= len(repeating) <= 15 and any(r.paper.title.startswith("Baichuan 2") for r in repeating)
    info = DigestInfo("2023-09-22", "qwen2.5-coder-1.5b", "default")
    markdown, saved = render_markdown(info, results), json.loads(render_json(info, results))
    assert markdown.count(HIGHLIGHTS_OMITTED) == len(repeating)
    for result, entry in zip(results, saved["papers"]):
        section = markdown.split(f"## {result.paper.title}")[1].split("\n## ")[0]
        shown = not highlights_repeat(result.review)
        assert (result.review.highlights.split("。")[0] in section.replace("\\", "")) == shown, result.paper.title
        assert (HIGHLIGHTS_LEFT_OUT in result.notes) == (not shown) and HIGHLIGHTS_LEFT_OUT not in section  # said once
        assert entry["review"]["highlights"] == result.review.highlights  # the JSON keeps the model's words
        assert entry["notes"] == list(result.notes) and entry["flags"] == list(result.flags)


def test_a_highlights_is_closed_where_it_has_repeated_main_work_on_real_answers():
    """said_already closes a 亮点 at the first sentence end where highlights_repeat would already
    flag it (the rest is never shown). Read at every sentence end of the 26 real seed-42 reviews'
    亮点: it closes only 亮点 that are left out in the end, Baichuan 2's (its 主要工作 word for word)
    after its first sentence, and none the digest shows."""
    from localdigest.review.checks import highlights_repeat, said_already

    _papers, stored = real_reviews()
    closed = []
    for entry in stored[:26]:
        review = Review.from_dict(entry["review"])
        ends = [i + 1 for i, char in enumerate(review.highlights) if char in "。！？"]
        at = [end for end in ends if said_already("highlights", review.highlights[:end], {"main_work": review.main_work})]
        if at:
            assert highlights_repeat(review), entry["title"]
            closed.append((entry["title"], at[0] < ends[-1]))
        assert not said_already("main_work", review.main_work, {"main_work": review.main_work})  # 亮点 only
    assert ("Baichuan 2: Open Large-scale Language Models", True) in closed, closed


@pytest.mark.parametrize("highlights, moved", [
    # BTLM-3B-8K's 亮点 at seed 1 (stops 48, 49): the abstract's 2-5.5% is over 3B models
    ("BTLM-3B-8K 是一个 3B参数的模型，比 7B参数的模型性能高出 2 到 5.5%，甚至在某些 7B参数模型中也能取得竞争力。",
     "比 7B参数的模型性能高出 2 到 5.5%"),
    # seed 2's: the figure with the model's own name, whose size is the paper's
    ("与现有的 3B参数模型相比，BTLM-3B-8K 在下游任务上性能提高了 2 到 5.5%，并且与一些 7B参数模型相当。", None),
    ("BTLM-3B-8K 比 3B 模型高出 5.5%，推理计算比 7B 模型少 2.5 倍。", None),  # no percentage with 7B
    ("它在下游任务上高出 2 到 5.5%，与一些 7B 模型相当。", None),  # the percentage's clause names no size
])
def test_a_figure_given_to_another_model_size_is_flagged(highlights, moved):
    """A percentage in a clause naming a model size the abstract gives that percentage with none of
    (checks._figure_moved): over ~1,100 bench reviews of stops 41-49, only BTLM-3B-8K's at seed 1."""
    papers, _stored = real_reviews()
    from localdigest.review.pipeline import paper_text

    btlm = paper_text(papers["BTLM-3B-8K: 7B Parameter Performance in a 3B Parameter Model"])
    found = [p for p in problems(review(highlights=highlights), [], btlm) if p.kind == "misattributes a figure"]
    assert [p.note for p in found] == ([f"亮点把摘要里与 3B 有关的 5.5% 写到了 7B 上（“{moved}”）"] if moved else [])
    assert all(not p.ask_again and not p.severe and p.field == "highlights" for p in found)


def test_what_else_a_left_out_highlights_has_is_not_told_to_the_reader():
    """BTLM-3B-8K's 亮点 at seed 1 both repeats 主要工作 (left out) and gives the 3B models' 5.5% to
    7B ones: the reader, not shown that 亮点, is not told of its figure; the JSON keeps both flags."""
    from localdigest.output.render import reader_notes
    from localdigest.review.checks import HIGHLIGHTS_LEFT_OUT, PROSE_FIELDS
    from localdigest.review.pipeline import flagged, paper_text

    papers, _stored = real_reviews()
    paper = papers["BTLM-3B-8K: 7B Parameter Performance in a 3B Parameter Model"]
    main_work = ("本文介绍了一个名为 BTLM-3B-8K 的新的 3B参数开源语言模型，该模型在 SlimPajama 数据集中训练了 627B个令牌，"
                 "并使用了 2,048 和 8,192 的上下文长度。它在长上下文任务上超过了 MPT-7B-8K 和 XGen-7B-8K。")
    moved_clause = "比 7B参数的模型性能高出 2 到 5.5%。"
    for highlights, left_out in ((main_work.split("。")[0] + "，" + moved_clause, True),
                                 ("它只需 3GB 内存，" + moved_clause, False)):
        found = problems(review(main_work=main_work, highlights=highlights), [], paper_text(paper))
        result = flagged(found)
        moved = [note for note in result["notes"] if "5.5%" in note and note.startswith(PROSE_FIELDS["highlights"])]
        assert len(moved) == 1 and (HIGHLIGHTS_LEFT_OUT in result["notes"]) == left_out, result
        assert (moved[0] in reader_notes(result["notes"], result["flags"])) == (not left_out)
        assert any("misattributes a figure" in flag for flag in result["flags"])  # the JSON's flags keep it
