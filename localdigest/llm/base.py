"""What every model backend shares: generation settings, the answer format, a completion,
and the small protocol the review stage talks to (local llama.cpp or an inference server)."""

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Protocol, runtime_checkable

from localdigest.errors import ModelError


@dataclass(frozen=True)
class GenerationSettings:
    """Sampling settings. Checked when made, so a typo in models.toml fails before a model loads."""

    temperature: float = 0.3
    top_p: float = 0.9
    max_tokens: int = 1024
    repeat_penalty: float = 1.1

    def __post_init__(self):
        limits = {"temperature": (0.0, 5.0), "top_p": (0.0, 1.0), "max_tokens": (1, 1 << 20),
                  "repeat_penalty": (0.5, 5.0)}
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not low <= value <= high or (name == "max_tokens" and not isinstance(value, int)):
                raise ModelError(f"generation setting {name} = {value!r} is out of range",
                                 f"use a {'whole ' if name == 'max_tokens' else ''}number from {low:g} to {high:g}")

    @classmethod
    def with_overrides(cls, overrides: dict) -> "GenerationSettings":
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in overrides.items() if key in known})

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AnswerFormat:
    """The shape an answer must take: a GBNF grammar for llama.cpp, and the same as JSON schema for
    servers that only take OpenAI's response_format."""

    gbnf: str
    json_schema: dict | None = None
    # Words the answer never uses: tokens whose text starts with one are never sampled (local models;
    # a server cannot be told by text, so there the review stage's checks catch them).
    avoid: tuple[str, ...] = ()
    # A run of this many tokens is never written twice in one answer (local models; 0: no limit).
    # Off for reviews: measured, it garbled names rather than stop restating (review.checks.NO_REPEAT).
    no_repeat: int = 0
    # Keys whose string values are Chinese prose: no lower-case English word is begun there (local
    # models; sampling.LatinWords), except `english_words`, lower-case names a paper spells (seq2seq).
    chinese_keys: tuple[str, ...] = ()
    english_words: tuple[str, ...] = ()
    # Keys whose string values are not to restate the answer's earlier text: a run of non-Latin
    # tokens copied from it is penalised the more the longer it grows (local models; sampling.Restating).
    fresh_keys: tuple[str, ...] = ()
    # Keys whose string values have no sentence that begins with one of `avoid_openings` (local
    # models; sampling.Openings): 主要工作 opening a sentence with the abstract's background (然而, 近年来).
    opening_keys: tuple[str, ...] = ()
    avoid_openings: tuple[str, ...] = ()
    # (key, characters, sentences): that key's string value is not closed short of so many characters,
    # and is closed at the end of that many sentences once it has them (local models; sampling.Floor).
    floors: tuple[tuple[str, int, int], ...] = ()
    # (key, sentences): that key's string value is whole sentences, at most so many: the grammar
    # closes it after the last, so a local model fast-forwarding appends the closing quote unsampled
    # (as at the end of a floor's last sentence).
    sentence_caps: tuple[tuple[str, int], ...] = ()
    # Keys whose string values share no run of `copy_run` weight (localdigest.text.copied_run) with
    # `copy_sources` that `copy_allowed` has not (local models; sampling.Copies): a review copying a
    # worked example's sentence into another paper's review.
    copy_keys: tuple[str, ...] = ()
    copy_sources: tuple[str, ...] = ()
    copy_allowed: str = ""
    copy_run: float = 0.0
    # known(path, the string values closed before it, by path): a value the caller knows before the
    # model writes it ("keywords.0.zh" of "Large Language Models": the review stage would put its
    # standard term there anyway), or None. A local model fast-forwarding appends it unsampled with
    # the schema's fixed text around it (llm.forced.Skeleton.known); a server samples it.
    known_values: Callable[[str, dict[str, str]], str | None] | None = field(default=None, compare=False)
    # close_when(path, the value so far, the string values closed before it): whether a string value
    # that has just ended a sentence is closed there (local models fast-forwarding append its closing
    # quote, as after a sentence cap's last sentence; a server's model goes on as it likes).
    close_when: Callable[[str, str, dict[str, str]], bool] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float  # the answer's time, its prompt's evaluation included
    evaluated_prompt_tokens: int = 0  # after prefix reuse: what llama.cpp really had to evaluate
    prompt_seconds: float = 0.0  # of seconds, evaluating the prompt
    forced_tokens: int = 0  # of completion_tokens, appended without sampling (llm.forced)
    given_tokens: int = 0  # the answer's beginning, taken from an earlier answer (complete_many's starts): not counted above
    drafted_tokens: int = 0  # prompt-lookup guesses decoded to be checked (llm.batch)
    accepted_tokens: int = 0  # of them, the ones sampling then picked: tokens that cost no step of their own
    stopped_early: bool = False  # the request's stop_early ended it after a value: the text is an answer's beginning


@dataclass(frozen=True)
class Request:
    """One answer asked of a model that takes a stream of them (LocalModel.complete_stream): the
    chat, its format, the seed, the beginning of an earlier answer to go on from ("": none), a tag
    that comes back with the completion, and `stop_early`: called with the answer so far each time
    its JSON schema's fixed text follows (at the start, and after each value it closes; a local
    model fast-forwarding); True ends the answer there (Completion.stopped_early), so a caller who
    would ask again for what it has read so far does not wait for the rest."""

    messages: list[dict]
    answer_format: AnswerFormat
    seed: int
    start: str = ""
    tag: object = None
    stop_early: Callable[[str], bool] | None = None


OnToken = Callable[[], None] | None


@runtime_checkable
class ReviewModel(Protocol):
    """A model the review stage can use. LocalModel and ServerModel are the two implementations."""

    spec: object  # the registry entry (llm.registry.ModelSpec)
    generation: GenerationSettings
    n_ctx: int | None  # None: a server holds the context and rejects what does not fit
    batch_size: int  # prompts complete_many decodes together (1 for servers)
    url: str | None  # the server's URL, None in-process

    def identity(self) -> str:
        """What the cache keys on: the model's content, not its name or place."""

    def describe(self) -> str:
        """A short name for the digest's header."""

    def complete(self, messages: list[dict], answer_format: AnswerFormat | None, seed: int,
                 on_token: OnToken = None) -> Completion:
        """One answer to a chat, constrained to answer_format when given."""

    def complete_many(self, conversations: list[list[dict]], answer_format: AnswerFormat, seed: int,
                      on_token: OnToken = None, starts: list[str] | None = None) -> list[Completion]:
        """Answers to several chats (decoded together where the backend can). `starts`: per chat, the
        beginning of an earlier answer to go on from (a review asked again keeps its good fields), or
        "". A backend that cannot go on from one answers from the beginning; either way each
        completion's text is a whole answer."""


def as_format(answer_format: "AnswerFormat | str | None") -> AnswerFormat | None:
    """A bare GBNF string is an AnswerFormat without a JSON schema (tests and benchmarks pass one)."""
    return AnswerFormat(answer_format) if isinstance(answer_format, str) else answer_format
