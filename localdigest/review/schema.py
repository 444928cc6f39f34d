"""The structured review of one paper, its JSON schema, and validation of model output into it."""

import json
from dataclasses import asdict, dataclass

from localdigest.errors import ReviewInvalid

# Bump when the shape of Review changes, so cached reviews of the old shape are never served.
REVIEW_SCHEMA_VERSION = 1

KEYWORD_COUNT = 5
SCORE_VALUES = tuple(i / 2 for i in range(11))  # 0, 0.5, ..., 5
SCORE_DIMENSIONS = {"practicality": "实用性", "innovation": "创新性", "recommendation": "推荐度"}

# Upper bounds keep a looping small model from writing forever; they sit well above
# what the reference digests use (主要工作 is ~150 characters there).
MAX_CHARS = {"main_work": 400, "highlights": 400, "keyword": 60, "reason": 200}


@dataclass(frozen=True)
class Keyword:
    en: str
    zh: str


@dataclass(frozen=True)
class Score:
    score: float
    reason: str


@dataclass(frozen=True)
class Review:
    main_work: str
    highlights: str
    keywords: tuple[Keyword, ...]
    practicality: Score
    innovation: Score
    recommendation: Score

    def scores(self) -> dict[str, Score]:
        return {name: getattr(self, name) for name in SCORE_DIMENSIONS}

    def to_dict(self) -> dict:
        data = asdict(self)
        data["keywords"] = [asdict(k) for k in self.keywords]
        return {
            "main_work": data["main_work"],
            "highlights": data["highlights"],
            "keywords": data["keywords"],
            "scores": {name: data[name] for name in SCORE_DIMENSIONS},
        }

    @classmethod
    def from_dict(cls, data: object) -> "Review":
        if not isinstance(data, dict):
            raise ReviewInvalid("answer is not a JSON object")
        main_work = _text(data, "main_work")
        highlights = _text(data, "highlights")
        keywords = _field(data, "keywords", list)
        if len(keywords) != KEYWORD_COUNT:
            raise ReviewInvalid(f"keywords: expected {KEYWORD_COUNT} pairs, got {len(keywords)}")
        pairs = tuple(
            Keyword(en=_text(k, "en", f"keywords[{i}]"), zh=_text(k, "zh", f"keywords[{i}]"))
            for i, k in enumerate(keywords)
        )
        scores = _field(data, "scores", dict)
        return cls(
            main_work=main_work,
            highlights=highlights,
            keywords=pairs,
            **{name: _score(scores, name) for name in SCORE_DIMENSIONS},
        )

    @classmethod
    def from_json(cls, text: str) -> "Review":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReviewInvalid(f"answer is not valid JSON ({exc.msg} at character {exc.pos})") from None
        return cls.from_dict(data)


def _field(data: object, name: str, kind: type, where: str = ""):
    label = f"{where}.{name}" if where else name
    if not isinstance(data, dict) or name not in data:
        raise ReviewInvalid(f"{label}: missing")
    value = data[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = "number" if kind == (int, float) else kind.__name__
        raise ReviewInvalid(f"{label}: expected {expected}, got {type(value).__name__}")
    return value


def _text(data: object, name: str, where: str = "") -> str:
    value = _field(data, name, str, where).strip()
    if not value:
        raise ReviewInvalid(f"{where + '.' if where else ''}{name}: empty")
    return value


def _score(scores: dict, name: str) -> Score:
    entry = _field(scores, name, dict, "scores")
    value = _field(entry, "score", (int, float), f"scores.{name}")
    if float(value) not in SCORE_VALUES:
        raise ReviewInvalid(f"scores.{name}.score: {value} is not one of 0, 0.5, ..., 5")
    return Score(score=float(value), reason=_text(entry, "reason", f"scores.{name}"))


def _string_schema(max_chars: int) -> dict:
    return {"type": "string", "minLength": 1, "maxLength": max_chars}


def _score_schema() -> dict:
    return {
        "type": "object",
        "properties": {"score": {"enum": list(SCORE_VALUES)}, "reason": _string_schema(MAX_CHARS["reason"])},
        "required": ["score", "reason"],
    }


REVIEW_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "main_work": _string_schema(MAX_CHARS["main_work"]),
        "highlights": _string_schema(MAX_CHARS["highlights"]),
        "keywords": {
            "type": "array",
            "minItems": KEYWORD_COUNT,
            "maxItems": KEYWORD_COUNT,
            "items": {
                "type": "object",
                "properties": {"en": _string_schema(MAX_CHARS["keyword"]), "zh": _string_schema(MAX_CHARS["keyword"])},
                "required": ["en", "zh"],
            },
        },
        "scores": {
            "type": "object",
            "properties": {name: _score_schema() for name in SCORE_DIMENSIONS},
            "required": list(SCORE_DIMENSIONS),
        },
    },
    "required": ["main_work", "highlights", "keywords", "scores"],
}
