import pytest

from localdigest.review.checks import is_loop, problems
from localdigest.review.schema import Review
from test_reviews import valid_dict


def review(**changes) -> Review:
    data = valid_dict()
    data.update(changes)
    return Review.from_dict(data)


def test_a_reasonable_review_has_no_problems():
    assert problems(review(main_work="本文提出了 LongLoRA，一种在有限计算成本下扩展大模型上下文长度的高效微调方法，并收集了 LongQA 数据集。"),
                    set()) == []


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"main_work": "EXAMPLE"}, "main_work copies the prompt's worked example"),
        ({"highlights": "演化和学习的" * 12}, "highlights repeats itself"),
        ({"keywords": [{"en": "LLM", "zh": "大模型"}] * 5}, "all five keywords are the same"),
        ({"scores": {k: {"score": 0, "reason": "无。"} for k in ("practicality", "innovation", "recommendation")}},
         "every score is 0"),
    ],
)
def test_empty_answers_are_named(changes, expected):
    assert expected in problems(review(**changes), {"EXAMPLE"})


def test_loop_detection_leaves_ordinary_text_alone():
    assert is_loop("the same words " * 10)
    assert not is_loop("We present LongLoRA, an efficient fine-tuning approach that extends the context sizes.")
    assert not is_loop("短文本短文本")  # too short to judge
