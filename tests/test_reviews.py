import json
import tomllib
from pathlib import Path

import pytest

from localdigest.errors import ReviewInvalid
from localdigest.review.schema import Review


def valid_dict() -> dict:
    return {
        "main_work": "本文提出了 LongLoRA。",
        "highlights": "计算成本低。",
        "keywords": [{"en": f"Keyword {i}", "zh": f"关键词{i}"} for i in range(5)],
        "scores": {
            "practicality": {"score": 4.5, "reason": "实用。"},
            "innovation": {"score": 4, "reason": "新颖。"},
            "recommendation": {"score": 0, "reason": "一般。"},
        },
    }


def test_valid_review_round_trips():
    review = Review.from_json(json.dumps(valid_dict(), ensure_ascii=False))
    assert review.practicality.score == 4.5
    assert review.keywords[2].zh == "关键词2"
    assert Review.from_dict(review.to_dict()) == review


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["keywords"].pop(), "keywords: expected 5 pairs, got 4"),
        (lambda d: d["scores"]["innovation"].update(score=4.2), "scores.innovation.score: 4.2 is not one of"),
        (lambda d: d["scores"]["innovation"].update(score=5.5), "scores.innovation.score: 5.5"),
        (lambda d: d["scores"]["innovation"].update(score="4"), "expected number, got str"),
        (lambda d: d["scores"]["practicality"].update(score=True), "expected number, got bool"),
        (lambda d: d.update(main_work="   "), "main_work: empty"),
        (lambda d: d["keywords"][1].pop("zh"), "keywords[1].zh: missing"),
        (lambda d: d.pop("scores"), "scores: missing"),
    ],
)
def test_invalid_reviews_say_which_field(mutate, message):
    data = valid_dict()
    mutate(data)
    with pytest.raises(ReviewInvalid, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        Review.from_dict(data)


def test_non_json_answer_is_invalid():
    with pytest.raises(ReviewInvalid, match="not valid JSON"):
        Review.from_json('{"main_work": "unterminated')


def test_shipped_prompt_examples_are_valid_reviews():
    for path in (Path(__file__).parents[1] / "prompts").glob("*.toml"):
        for example in tomllib.loads(path.read_text(encoding="utf-8")).get("examples", []):
            Review.from_json(example["assistant"])
