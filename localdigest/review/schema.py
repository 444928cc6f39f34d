"""The structured review of one paper, its JSON schema, and validation of model output into it."""

import json
import re
from dataclasses import asdict, dataclass, replace

from localdigest.errors import ReviewInvalid
from localdigest.llm.forced import literal_prefix

# Bump when the shape of Review changes, so cached reviews of the old shape are never served.
# 2: each score's reason comes before its number; prose fields end a sentence.
# 4: longer sentence caps (the grammar cut 35% of Qwen 1.5B's reviews at the old ones).
# 5: 主要工作 has two sentences at least.
REVIEW_SCHEMA_VERSION = 5

KEYWORD_COUNT = 5
SCORE_VALUES = tuple(i / 2 for i in range(11))  # 0, 0.5, ..., 5
SCORE_DIMENSIONS = {"practicality": "实用性", "innovation": "创新性", "recommendation": "推荐度"}

# Upper bounds keep a looping small model from writing forever; they sit well above
# what the reference digests use (主要工作: median 188 characters, at most 335; 亮点: 142, at most 247).
# An answer that reaches one was cut, and the checks send it back.
MAX_CHARS = {"main_work": 420, "highlights": 420, "keyword": 60, "reason": 200}
# Prose (主要工作, 亮点, reasons) is a few whole sentences, each ending with a sentence mark:
# a small model that starts translating the abstract is stopped at a sentence end, never mid-word,
# and 主要工作 opens in Chinese (本文…), which keeps it from answering in English. Our grammar and
# servers' JSON-schema converters both enforce these patterns.
SENTENCE_END = "。！？"
# How a second or third sentence of 主要工作/亮点 may open: Chinese, a full-width bracket or quote,
# a digit. Measured on Qwen2.5-Coder 1.5B: after 。 it went on translating in English ("compared
# to LLaMA-70B on …") or with "(i) We first …"; a sentence that must open in Chinese cannot.
LATER_SENTENCE_START = "\u4e00-\u9fff（“《0-9"


@dataclass(frozen=True)
class ProseShape:
    sentences: int  # at most
    sentence_chars: int  # at most, the closing mark included
    chinese_start: bool = False
    opening: str = ""  # the words the first sentence starts with (a prompt's reason opening, below)
    least: int = 1  # sentences at least

    @property
    def first_rest(self) -> int:
        """At most how many characters follow the first sentence's fixed start (its opening, else its
        first character) before its closing mark: the pattern and the grammar (review.grammar) agree."""
        return self.sentence_chars - 1 - (len(self.opening) or 1)

    @property
    def pattern(self) -> str:
        body = f"[^{SENTENCE_END}\\n]"
        # An opening is a literal prefix: servers' JSON-schema converters force it, llm.forced appends it unsampled.
        start = re.escape(self.opening) if self.opening else \
            "[\\u4e00-\\u9fff]" if self.chinese_start else f"[^{SENTENCE_END}\\s]"
        more = f"([{LATER_SENTENCE_START}]{body}{{0,{self.sentence_chars - 2}}}[{SENTENCE_END}])" \
            f"{{{self.least - 1},{self.sentences - 1}}}"
        return f"^{start}{body}{{0,{self.first_rest}}}[{SENTENCE_END}]{more if self.sentences > 1 else ''}$"


# GPT-4's 主要工作 is 76-335 characters (median 188), 亮点 66-247 (median 142), a reason ~40-60.
# The caps per sentence sit above what a complete sentence of Qwen2.5-Coder 1.5B takes: at 130/110/90
# the grammar had to end a sentence mid-clause in 35% of its reviews (亮点 16, reasons 11, 主要工作 7
# of 49), which reads worse than a long sentence; the prompt asks for sentences of at most 80.
# 主要工作 has two sentences at least, as all 85 of GPT-4's do (2-6): in one sentence Qwen says what
# the paper is about and stops before its method and results ("main_work is too short", 2 of the 52
# bench answers at stop 32, each asked again at the cost of a whole answer); the grammar cannot
# close the field after the first sentence, so it goes on instead.
# 主要工作 may have a fourth sentence, only to reach FLOORS' 150 characters (llm.sampling.Floor): the
# issue asks ~150-250 and GPT-4's median is 188, but Qwen closed 14 of stop 36's 52 bench answers
# short of 150 (108-149 characters) after three short sentences, the results left out.
PROSE = {"main_work": ProseShape(4, 140, chinese_start=True, least=2), "highlights": ProseShape(3, 140),
         "reason": ProseShape(1, 130),
         "overview": ProseShape(4, 150, chinese_start=True)}  # 今日速览 (review.overview)
# (characters at least, sentences): a value shorter is not closed; one as long is closed at the end of
# that many sentences, the most it had before the floor (sampling.Floor, for local models; a server's
# model may write the fourth sentence whenever it likes).
FLOORS = {"main_work": (150, 3)}


def prose_shape(pattern: str) -> ProseShape | None:
    """The ProseShape whose pattern this is (with its opening, if it has one), None for another."""
    opening = literal_prefix(pattern)
    return next((shape for base in PROSE.values()
                 if (shape := replace(base, opening=opening)).pattern == pattern), None)


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


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
        main_work = _text(data, "main_work", limit=MAX_CHARS["main_work"])
        highlights = _text(data, "highlights", limit=MAX_CHARS["highlights"])
        keywords = _field(data, "keywords", list)
        if len(keywords) != KEYWORD_COUNT:
            raise ReviewInvalid(f"keywords: expected {KEYWORD_COUNT} pairs, got {len(keywords)}")
        pairs = tuple(
            Keyword(en=_text(k, "en", f"keywords[{i}]", MAX_CHARS["keyword"]),
                    zh=_text(k, "zh", f"keywords[{i}]", MAX_CHARS["keyword"]))
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


def _text(data: object, name: str, where: str = "", limit: int = 0) -> str:
    """A string field, whoever wrote it (our grammar, a server's, a cache entry): within its length,
    without control characters or line breaks (they would become Markdown structure)."""
    label = f"{where + '.' if where else ''}{name}"
    value = _field(data, name, str, where).strip()
    if not value:
        raise ReviewInvalid(f"{label}: empty")
    # Bytes a model wrote that are not UTF-8 decode as one U+FFFD each, where the grammar counted the
    # whole sequence as one character: they do not count against the limit.
    length = len(value) - value.count("\ufffd")
    if limit and length > limit:
        raise ReviewInvalid(f"{label}: {length} characters, more than {limit}")
    if CONTROL.search(value):
        raise ReviewInvalid(f"{label}: contains a control character or line break")
    return value


def _score(scores: dict, name: str) -> Score:
    entry = _field(scores, name, dict, "scores")
    value = _field(entry, "score", (int, float), f"scores.{name}")
    if float(value) not in SCORE_VALUES:
        raise ReviewInvalid(f"scores.{name}.score: {value} is not one of 0, 0.5, ..., 5")
    return Score(score=float(value), reason=_text(entry, "reason", f"scores.{name}", MAX_CHARS["reason"]))


def _string_schema(max_chars: int, pattern: str | None = None) -> dict:
    return {"type": "string", "minLength": 1, "maxLength": max_chars, **({"pattern": pattern} if pattern else {})}


def _score_schema(opening: str = "") -> dict:
    # The reason first: a model that has said why picks the number to match, instead of
    # writing a reason for a number it picked out of habit.
    return {
        "type": "object",
        "properties": {"reason": _string_schema(MAX_CHARS["reason"], replace(PROSE["reason"], opening=opening).pattern),
                       "score": {"enum": list(SCORE_VALUES)}},
        "required": ["reason", "score"],
    }


def review_schema(openings: dict[str, str] | None = None) -> dict:
    """The review's JSON schema; `openings` (main_work or a score name -> words) makes 主要工作 or each
    of those reasons start with its words (a prompt's `openings`)."""
    openings = openings or {}
    main_work = replace(PROSE["main_work"], opening=openings.get("main_work", ""))
    return {**_REVIEW_SCHEMA, "properties": {
        **_REVIEW_SCHEMA["properties"],
        "main_work": _string_schema(MAX_CHARS["main_work"], main_work.pattern),
        "scores": {
        "type": "object",
        "properties": {name: _score_schema(openings.get(name, "")) for name in SCORE_DIMENSIONS},
        "required": list(SCORE_DIMENSIONS),
    }}}


_REVIEW_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "main_work": _string_schema(MAX_CHARS["main_work"], PROSE["main_work"].pattern),
        "highlights": _string_schema(MAX_CHARS["highlights"], PROSE["highlights"].pattern),
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
REVIEW_SCHEMA = review_schema()


# 今日速览: one paragraph of whole Chinese sentences (review.overview).
OVERVIEW_SCHEMA: dict = {
    "type": "object",
    "properties": {"overview": _string_schema(PROSE["overview"].sentences * PROSE["overview"].sentence_chars,
                                              PROSE["overview"].pattern)},
    "required": ["overview"],
}
