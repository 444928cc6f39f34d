"""Grammar-constrained sampling that checks the grammar on one token, not the whole vocabulary.

llama-cpp-python runs the grammar over every vocabulary entry before each sampled token;
on Gemma's 262k-entry vocabulary that dominates the run. Like llama.cpp's own samplers,
this one samples from the model first and asks the grammar only whether that token is
allowed; only when it is not does it mask the whole vocabulary and sample again. Every
accepted token passed the grammar, so the output stays 100% schema-valid.

It runs as a llama-cpp-python logits processor: it makes the choice itself and leaves
only the chosen token with a finite logit, so the stock sampler chain after it can only
pick that token.
"""

import ctypes
import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from localdigest.llm.forced import SENTENCE_END
from localdigest.text import compact, copied_run

VALUE_END = re.compile(rb'["{}\[\],:0-9]')  # bytes that can end a JSON string or number, or start the next
MASK_SLICE = 8192  # vocabulary entries per grammar pass when the sampled token was rejected
TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)


@dataclass(frozen=True)
class Bans:
    """Tokens never sampled: `always`, and, while the answer ends with the beginning of a banned
    word, the tokens that would finish it (`partial`).

    The second kind bans a word the tokenizer spells in pieces: Qwen has no " 我" token and writes
    " \\xe6\\x88" + "\\x91", so "\\x91" is banned after an answer ending in "\\xe6\\x88"; it writes
    源码 as 源 + 码, so 码 is banned after 源."""

    always: np.ndarray
    partial: tuple[tuple[bytes, np.ndarray], ...] = ()  # (a word's beginning, tokens that finish it)
    pieces: tuple[bytes, ...] = ()  # every token's bytes, to read the end of the answer
    no_repeat: int = 0  # a run of this many of the answer's own tokens is not sampled again (0: off)
    # Inside the string values of these JSON keys, no Latin word in lower case or Capitalised is begun (LatinWords).
    chinese_keys: frozenset[bytes] = frozenset()
    latin: "LatinWords | None" = None
    restating: "Restating | None" = None  # inside its keys' values, copying the answer is penalised
    openings: "Openings | None" = None  # inside its keys' values, no sentence begins with its words
    floors: tuple["Floor", ...] = ()  # values not closed short of so many characters
    copies: "Copies | None" = None  # inside its keys' values, no run of its sources is copied

    @cached_property
    def _window(self) -> int:
        """How many of the answer's last tokens can hold a banned word's beginning: a token is at
        least one byte, so the longest beginning's length in bytes (read once, not every step)."""
        return max((len(head) for head, _ in self.partial), default=0)

    def finishing(self, input_ids) -> list[np.ndarray]:
        if not self.partial or not len(input_ids):
            return []
        end = b"".join(self.pieces[int(t)] for t in input_ids[-self._window:] if 0 <= int(t) < len(self.pieces))
        return [tails for head, tails in self.partial if end.endswith(head)]


# A lower-case letter goes on a Latin word after a letter or digit, or after a joiner that follows
# one ("Q-functions", "2.8x", "llama.cpp"); anywhere else it begins a word (after 零 in "零-shot" too).
ALNUM = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
JOINERS = frozenset(b"-_./'")
# A word in lower case, or Capitalised: a capital and a lower-case letter ("Backbone"). Turned away from
# "backbone", Qwen2.5-Coder 1.5B wrote "主要 Backbone"; acronyms and names in capitals (RMT, LLaMA's
# "aMA" goes on a word) never match.
LATIN_WORD = re.compile(rb"(?:[a-z]|[A-Z][a-z])[A-Za-z0-9\-_./']*")


def _goes_on(before: bytes) -> bool:
    """Whether a lower-case letter written after `before` (the bytes before it, the last two are
    enough) goes on a Latin word rather than beginning one."""
    return bool(before) and (before[-1] in ALNUM or (before[-1] in JOINERS and len(before) > 1 and before[-2] in ALNUM))


def word_starts(data: bytes) -> list[re.Match]:
    """The Latin words in lower case or Capitalised that `data` begins (LATIN_WORD matches that do not go on a word of its own);
    one at its start, or after a lone joiner there, begins a word or not by what came before `data`."""
    return [m for m in LATIN_WORD.finditer(data) if not _goes_on(data[max(0, m.start() - 2):m.start()])]


@dataclass(frozen=True)
class LatinWords:
    """The tokens that begin a Latin word in lower case or Capitalised (LATIN_WORD): `inside` begin
    one after a space or mark of their own (" hall", " Back", "(e"), `leading` begin with the letter,
    or a joiner and the letter ("hall", "-shot"), which go on a word or begin one depending on what
    the answer ends with (_goes_on).

    Why: Qwen2.5-Coder 1.5B leaves common English words untranslated in Chinese prose (34 of 52
    bench reviews: "hallucination", "backbone", "portraits", "vice versa"); with the word's first
    token banned there, it writes the Chinese word instead. With only lower case banned it wrote
    the word Capitalised ("主要 Backbone", "Canonical 空间", "在 Recent几年中": 22 of stop 35's 104
    bench reviews), so those are banned too, and so is a lone capital's lower-case continuation
    (`after_capital`: "（H" + "allucination"). The words and names the paper spells (seq2seq, arXiv,
    DreamLLM, Languini, Transformer) are exempted per answer format; acronyms never match."""

    inside: np.ndarray
    leading: np.ndarray
    by_word: dict  # the word begun -> the tokens that begin only that word (for `allowing`)
    continuing: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))  # "allucination"
    words: tuple[str, ...] = ()  # exempted (`allowing`)
    _after: dict = field(default_factory=dict, compare=False, repr=False)  # capital -> after_capital's tokens

    @classmethod
    def from_vocabulary(cls, vocabulary: tuple[bytes, ...]) -> "LatinWords":
        inside, leading, by_word, continuing = [], [], {}, []
        for token, raw in enumerate(vocabulary):
            # Where a word may begin: not after a letter or digit of the token's own; at the token's
            # start (or after its leading joiner) it depends on the answer before it.
            starts = word_starts(raw)
            if not starts:
                continue
            start = starts[0].start()
            context = len(starts) == 1 and (start == 0 or (start == 1 and raw[0] in JOINERS))
            (leading if context else inside).append(token)
            if context and start == 0 and raw[:1].islower():
                continuing.append(token)
            if len(starts) == 1:
                by_word.setdefault(starts[0].group(), []).append(token)
        return cls(np.array(inside, dtype=np.int64), np.array(leading, dtype=np.int64), by_word,
                   np.array(continuing, dtype=np.int64))

    def allowing(self, words: tuple[str, ...]) -> "LatinWords":
        """These bans less the tokens that begin the beginning of one of `words` ("tok" for "tokens")."""
        if not words:
            return self
        pieces = {word[:end].encode("ascii") for word in words if word.isascii() for end in range(1, len(word) + 1)}
        exempt = np.array([token for piece in pieces for token in self.by_word.get(piece, ())], dtype=np.int64)
        return LatinWords(np.setdiff1d(self.inside, exempt), np.setdiff1d(self.leading, exempt), self.by_word,
                          self.continuing, words)

    def after_capital(self, capital: bytes) -> np.ndarray:
        """The tokens that would make a capital that begins a word a Capitalised word ("H" +
        "allucination"), less those that go on towards one of `words` ("F" + "ree" for FreeU)."""
        found = self._after.get(capital)
        if found is None:
            rests = [word.encode("ascii")[1:] for word in self.words if word.isascii() and word.encode()[:1] == capital]
            exempt = [token for piece, tokens in self.by_word.items() if piece[:1].islower()
                      and any(rest.startswith(piece) or piece.startswith(rest) for rest in rests) for token in tokens]
            found = self._after[capital] = np.setdiff1d(self.continuing, np.array(exempt, dtype=np.int64))
        return found


@dataclass(frozen=True)
class Restating:
    """Inside the string values of `keys`, a token that would go on copying a run of the answer's
    own earlier tokens is penalised, the more the longer the run: `multiplier * base ** (length -
    allowed)` off its logit once the run already has `allowed` tokens. This is llama.cpp's DRY
    ("don't repeat yourself") penalty, kept to some keys and to the answer's text; a token with no
    byte outside ASCII (a Latin name, a number, a space, a mark) breaks a run, so names and figures
    are never penalised, only prose.

    Why: Qwen2.5-Coder 1.5B fills a score's reason with a sentence of its 主要工作 or 亮点 word for
    word (stop 31's bench: 9 of 52 reviews asked again for it, 52 of the 348 steps a paper took).
    A hard ban (AnswerFormat.no_repeat) garbled names; a penalty that grows lets a short phrase
    through ("大型语言模型") and turns a long copy aside."""

    keys: frozenset[bytes]
    breaks: np.ndarray  # per token: True when it has no byte outside ASCII
    allowed: int = 2
    base: float = 1.75
    multiplier: float = 0.8

    @classmethod
    def from_vocabulary(cls, keys: frozenset[bytes], vocabulary: tuple[bytes, ...]) -> "Restating":
        return cls(keys, np.array([raw.isascii() for raw in vocabulary], dtype=bool))

    def penalties(self, written: list[int]) -> dict[int, float]:
        """Token -> what to take off its logit, after the answer so far, `written`."""
        if not written or self._breaks(written[-1]):
            return {}
        answer = np.asarray(written, dtype=np.int64)
        end = len(answer) - 1
        found: dict[int, float] = {}
        for at in np.nonzero(answer[:-1] == answer[-1])[0]:
            follower = int(answer[at + 1])
            if self._breaks(follower):
                continue
            length = 1  # of the run ending at `at` that the answer's end repeats
            while length <= at and answer[at - length] == answer[end - length] and not self._breaks(answer[at - length]):
                length += 1
            if length >= self.allowed:
                penalty = self.multiplier * self.base ** min(length - self.allowed, 40)
                found[follower] = max(found.get(follower, 0.0), penalty)
        return found

    def _breaks(self, token) -> bool:
        return not 0 <= token < len(self.breaks) or bool(self.breaks[token])


@dataclass(frozen=True)
class Openings:
    """Inside the string values of `keys`, no sentence begins with one of some words: `after` maps
    what a sentence has so far (b"" at its start, else a word's first bytes) to the tokens that would
    finish such a word from there, so a word the tokenizer spells in pieces (近 + 年) is caught too.

    Why: Qwen2.5-Coder 1.5B opens sentences of 主要工作 with the abstract's background ("近年来，机器
    学习社区…", "然而，训练此类模型假设…", "由于 LLM 没有…") and leaves the results out; GPT-4 opens
    one of its 283 主要工作 sentences (85 reference reviews) that way. Asking for "no background" in
    the instructions did not help (README, Benchmarks); turned away from the word at the sentence's
    start, the model writes what the paper did instead."""

    keys: frozenset[bytes]
    after: dict  # bytes of the sentence so far -> np.ndarray of tokens

    @classmethod
    def from_vocabulary(cls, keys: frozenset[bytes], words: tuple[str, ...],
                        vocabulary: tuple[bytes, ...]) -> "Openings":
        finishing: dict[bytes, set[bytes]] = {}  # the sentence so far -> what would finish a word from there
        for word in words:
            spelled = word.encode("utf-8")
            for cut in range(len(spelled)):
                finishing.setdefault(spelled[:cut], set()).add(spelled[cut:])
        wanted = {head: tuple(rests) for head, rests in finishing.items()}  # startswith takes a tuple
        every = tuple({rest for rests in wanted.values() for rest in rests})
        after: dict[bytes, list[int]] = {}
        # One pass over the vocabulary (one C-level startswith per token), then only the few
        # thousand tokens that begin some rest are sorted out by head.
        for token, raw in enumerate(vocabulary):
            bare = raw.lstrip(b" ")  # at the sentence's start a token may bring its own space (" 然而")
            if not (raw.startswith(every) or bare.startswith(every)):
                continue
            for head, rests in wanted.items():
                if (bare if head == b"" else raw).startswith(rests):
                    after.setdefault(head, []).append(token)
        # A head no token finishes from is left out: the sampler then has nothing to look up there.
        return cls(keys, {head: np.array(tokens, dtype=np.int64) for head, tokens in after.items()})


@dataclass(frozen=True)
class Floor:
    """The string value of a key in `keys` is not closed before it has `chars` characters; once it
    has them, it is closed at the end of its `sentences`-th sentence or the first after. `closing`
    are the tokens that begin with the closing quote. The grammar allows one sentence more than
    `sentences`, so a short answer can go on; where it allows no more, the ban gives way
    (GrammarFirstSampler).

    Why: Qwen2.5-Coder 1.5B closed 14 of stop 36's 52 bench 主要工作 after three short sentences
    (108-149 characters, where GPT-4's median is 188 and the issue asks ~150-250), leaving out what
    the paper found; those had the lowest chrF against GPT-4 (13-19, mean 29). An answer with 150
    characters still has three sentences at most: a fourth on every answer would cost ~40 steps
    and run past 1.2x GPT-4's length."""

    keys: frozenset[bytes]
    chars: int
    sentences: int
    closing: np.ndarray

    @classmethod
    def from_vocabulary(cls, vocabulary: tuple[bytes, ...]) -> "Floor":
        """A floor with its closing tokens found (one pass over the vocabulary) and no keys: those and
        the bounds are swapped in per answer format."""
        return cls(frozenset(), 0, 0, np.array([token for token, raw in enumerate(vocabulary) if raw.startswith(b'"')],
                                               dtype=np.int64))


@dataclass(frozen=True)
class Copies:
    """Inside the string values of `keys`, no token is sampled that would make the value share a run
    of `run` weight with `pool` (compacted texts, one per line) that `allowed` has not: the review
    check's reading of a copied worked example (localdigest.text.copied_run), applied while the
    answer is written. A token the rule turns away is drawn again without it (GrammarFirstSampler);
    any other token is the one the model drew, so an answer without such a run is unchanged.

    Why: Qwen2.5-Coder 1.5B wrote the second worked example's "在小样本文本分类上微调" into ALMA's
    recommendation reason in two answers running (stop 37's bench, seed 42), and the checks then
    asked for a whole third answer: 13 of that seed's 322 decoding steps a paper."""

    keys: frozenset[bytes]
    pool: str
    allowed: str
    run: float

    def copied(self, value: str, past: int) -> str | None:
        """The copied run in the string value `value` (compacted) that ends after its first `past`
        characters: runs that ended before were read when they did."""
        return copied_run(value, self.pool, self.allowed, self.run, past)


SENTENCE_ENDS = tuple(mark.encode("utf-8") for mark in SENTENCE_END)  # as bytes, for the answer's bytes
ESCAPED = {ord('"'): b'"', ord("\\"): b"\\", ord("/"): b"/", ord("n"): b"\n", ord("t"): b"\t", ord("r"): b"\r"}
OPENING_BYTES = 24  # of a sentence's beginning kept by JsonCursor: more than the longest word in Openings


class JsonCursor:
    """Where an answer being written stands in its JSON: fed each token's bytes, it knows whether the
    answer is inside a string value and under which key, and its last two bytes."""

    def __init__(self):
        self.in_string = self.escaped = self.is_value = self.after_colon = False
        self.key = b""
        self._string = bytearray()
        self.tail = b'"'  # the last three bytes written
        self._sentence = bytearray()  # the beginning of the value's current sentence (OPENING_BYTES at most)
        self._value_tail = b""  # the value's last three bytes, where a sentence's end mark shows
        self.value_chars = 0  # characters of the string value so far
        self.value_sentences = 0  # sentences of it ended so far
        self.value = bytearray()  # the string value so far, JSON escapes undone

    def feed(self, data: bytes) -> None:
        for byte in data:
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                    if self.is_value:  # the character it stands for ("\\n" a line break; \u escapes are not read)
                        self.value += ESCAPED.get(byte, b"")
                elif byte == 0x5C:  # backslash
                    self.escaped = True
                elif byte == 0x22:  # the closing quote
                    self.in_string = False
                    if not self.is_value:
                        self.key = bytes(self._string)
                elif not self.is_value and len(self._string) < 64:
                    self._string.append(byte)
                elif self.is_value:
                    self.value.append(byte)
                    self.value_chars += byte & 0xC0 != 0x80  # a UTF-8 character's first byte
                    self._value_tail = (self._value_tail + bytes((byte,)))[-3:]
                    if self._value_tail in SENTENCE_ENDS:
                        self._sentence.clear()
                        self.value_sentences += 1
                    elif len(self._sentence) < OPENING_BYTES:
                        self._sentence.append(byte)
            elif byte == 0x22:
                self.in_string, self.is_value = True, self.after_colon
                self._string.clear()
                self._sentence.clear()
                self._value_tail = b""
                self.value.clear()
                self.value_chars = self.value_sentences = 0
                self.after_colon = False
            elif byte == 0x3A:  # ":"
                self.after_colon = True
            elif byte in b",{[":
                self.after_colon = False
        self.tail = (self.tail + data)[-3:]

    def at_sentence_end(self) -> bool:
        """Whether the string value so far ends with a sentence's end mark."""
        return self._value_tail in SENTENCE_ENDS

    def value_with(self, data: bytes) -> bytes:
        """The string value as it would be with `data` written: up to its closing quote, if `data`
        has one (a token may close the value and begin the next: '。",')."""
        if not self.in_string or not self.is_value:
            return b""
        end = data.find(b'"')
        while end >= 0 and (data[end - 1] == 0x5C if end else self.escaped):  # an escaped quote goes on the value
            end = data.find(b'"', end + 1)
        return bytes(self.value) + (data if end < 0 else data[:end])

    def in_word(self) -> bool:
        """Whether a lower-case letter written now would go on a Latin word (_goes_on)."""
        return _goes_on(self.tail)

    def lone_capital(self) -> bytes | None:
        """The capital letter the answer ends with when it begins a word (" H", "（H"), else None."""
        last = self.tail[-1:]
        return last if last.isupper() and not _goes_on(self.tail[:-1]) else None  # one byte: upper is a letter

    def sentence(self) -> bytes:
        """What the current sentence of the string value has so far, leading spaces aside (its
        first OPENING_BYTES bytes)."""
        return bytes(self._sentence).lstrip(b" ")

    def inside(self, keys: frozenset[bytes]) -> bool:
        """Whether the answer is now inside the string value of one of `keys`."""
        return self.in_string and self.is_value and self.key in keys

    def at_number(self) -> bool:
        """Whether the answer is after a key's colon and outside any string: writing a value that is
        not text (a review's score)."""
        return self.after_colon and not self.in_string


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """The tokens of the k largest finite scores (all of them when fewer are finite), in no order.
    Among the finite ones, not the whole vocabulary: with the bans ~85k of Qwen's 152k logits are
    -inf, and numpy's argpartition over that many equal values took 26-31 ms a step on an EPYC (1.8
    ms on random logits), a third of the step; over the finite ones, 0.7 ms
    (benchmarks/sampling_step.py)."""
    finite = np.flatnonzero(scores > -np.inf)
    k = min(k, finite.size)
    return finite[np.argpartition(scores[finite], -k)[-k:]] if k else finite


def vocabulary_pieces(llama) -> tuple[bytes, ...]:
    """Every token's bytes, in token order: one pass over llama.cpp's vocabulary (LocalModel keeps it
    per model and hands it to each sampler and to the batch decoder)."""
    return tuple(llama.detokenize([token]) for token in range(llama.n_vocab()))


class GrammarFirstSampler:
    def __init__(self, llama, grammar: str, seed: int, temperature: float, top_p: float,
                 top_k: int = 40, min_p: float = 0.05, repeat_penalty: float = 1.0, penalty_last_n: int = 64,
                 banned: Bans | None = None, pieces: tuple[bytes, ...] | None = None):
        """`pieces`: every token's bytes (vocabulary_pieces); read from `llama` when not given."""
        import llama_cpp

        self._llama_cpp = llama_cpp
        self._grammar = llama_cpp.llama_sampler_init_grammar(llama._model.vocab, grammar.encode("utf-8"), b"root")
        if not self._grammar:
            raise ValueError("llama.cpp could not parse the grammar")
        # A draw is a hash of the seed and the answer's text so far, not the next number of one
        # stream: text that comes without a step (the schema's fixed text) takes no draw from what
        # follows, and the same text goes on with the same random numbers however it was tokenized.
        # The same answer needs the same logits too, and llama.cpp's differ by up to 0.4 between a
        # token decoded alone and in a batch (Qwen 1.5B, stop 41), so answers stay word for word
        # only up to where two versions first decode differently: a bench of a change is paired
        # up to there (stop 41: 20 of 52 reviews the same, the others the same up to the keywords).
        self._text = hashlib.blake2b(str(seed).encode("ascii"), digest_size=8)  # seed + the answer so far
        self._draws = 0  # draws taken at this point of the answer (a pick the grammar turned away)
        self.temperature, self.top_p, self.top_k, self.min_p = temperature, top_p, top_k, min_p
        self.repeat_penalty, self.penalty_last_n = repeat_penalty, penalty_last_n
        self.banned = banned if banned is not None and (banned.always.size or banned.partial or banned.latin
                                                        or banned.restating or banned.openings
                                                        or banned.floors or banned.copies) else None
        self._cursor = JsonCursor() if repeat_penalty != 1.0 or self.banned is not None and (
            self.banned.latin or self.banned.restating or self.banned.openings or self.banned.floors
            or self.banned.copies) else None
        self._restating = self.banned.restating if self.banned is not None else None
        self._copies = self.banned.copies if self.banned is not None else None
        self.no_repeat = banned.no_repeat if banned is not None else 0
        self._pieces = pieces if pieces is not None else vocabulary_pieces(llama)
        self._written: list[int] = []  # the answer so far (sampled and forced)
        self._followers: dict[tuple[int, ...], set[int]] = {}  # run of no_repeat - 1 tokens -> what came next
        self._one = (llama_cpp.llama_token_data * 1)()
        self._one_array = llama_cpp.llama_token_data_array(data=self._one, size=1, selected=-1, sorted=False)
        self._full = None
        self.fast_picks = 0  # the model's own choice was allowed
        self.full_masks = 0  # the grammar had to be run over the whole vocabulary

    @classmethod
    def for_settings(cls, llama, grammar: str, seed: int, settings, banned=None,
                     pieces: tuple[bytes, ...] | None = None) -> "GrammarFirstSampler":
        """A sampler with a model's GenerationSettings (temperature, top_p, repeat_penalty)."""
        return cls(llama, grammar, seed=seed, temperature=settings.temperature, top_p=settings.top_p,
                   repeat_penalty=settings.repeat_penalty, banned=banned, pieces=pieces)

    def __call__(self, input_ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
        token = self.choose(input_ids, logits)
        forced = np.full_like(logits, -np.inf)
        forced[token] = 0.0
        return forced

    def choose(self, input_ids: np.ndarray, logits: np.ndarray) -> int:
        """The next token after input_ids (prompt and answer so far), accepted into the grammar."""
        scores = self._penalised(input_ids, logits)
        repeats = self._repeats()
        if repeats:
            scores = scores.copy() if scores is logits else scores
            scores[repeats] = -np.inf
        token = self._pick(scores)
        if self._allowed(token):
            self.fast_picks += 1
        else:
            self.full_masks += 1
            scores = self._masked(scores)
            if (self.banned is not None or repeats) and not np.isfinite(scores).any():
                # The bans left the grammar no way on (it allows only the banned word here): the ban
                # gives way, and the review stage's checks read the answer as always.
                scores = self._masked(self._penalised(input_ids, logits, bans=False))
            token = self._pick(scores)
        # Rules read on the drawn token's text (Copies) turn it away after the draw, not before:
        # reading every candidate would cost a pass over the vocabulary, and a token they let
        # through is the one the model drew, with the same random numbers.
        while self._turned_away(token):  # `scores` is a copy here: Copies come with bans, which copy the logits
            scores[token] = -np.inf
            if not np.isfinite(scores).any():
                break  # nothing else is left: the rule gives way, and the checks read the answer
            drawn = self._pick(scores)
            if not self._allowed(drawn):
                scores = self._masked(scores)
                if not np.isfinite(scores).any():
                    break
                drawn = self._pick(scores)
            token = drawn
        self._accept(token)
        return token

    def _turned_away(self, token: int) -> bool:
        """Whether `token` would copy a run of the worked examples into the value (Copies)."""
        copies = self._copies
        if copies is None or not self._cursor.inside(copies.keys):
            return False
        before = compact(bytes(self._cursor.value).decode("utf-8", errors="ignore"))
        after = compact(self._cursor.value_with(self._pieces[token]).decode("utf-8", errors="ignore"))
        return copies.copied(after, len(before)) is not None

    def force(self, token: int) -> bool:
        """Take `token` without sampling it (a span the schema forces), if the grammar allows it here."""
        if not self._allowed(token):
            return False
        self._accept(token)
        return True

    def _accept(self, token: int) -> None:
        self._llama_cpp.llama_sampler_accept(self._grammar, token)
        self._text.update(self._pieces[token])
        self._draws = 0
        if self._cursor is not None:
            self._cursor.feed(self._pieces[token])
        if self.no_repeat or self._restating is not None:
            self._written.append(token)
            if self.no_repeat and len(self._written) >= self.no_repeat:
                run = tuple(self._written[-self.no_repeat:-1])
                self._followers.setdefault(run, set()).add(token)

    def _uniform(self) -> float:
        """A number in [0, 1) fixed by the seed, the answer so far and the draws already taken there."""
        key = self._text.copy()
        key.update(self._draws.to_bytes(4, "little"))
        self._draws += 1
        return (int.from_bytes(key.digest(), "little") >> 11) / float(1 << 53)

    def _repeats(self) -> list[int]:
        """Tokens that would complete a run of no_repeat tokens the answer already has; never one
        that can close a value (a quote, a digit: two reasons may end alike and then both need
        their score and the next key)."""
        if not self.no_repeat or len(self._written) < self.no_repeat - 1:
            return []
        found = self._followers.get(tuple(self._written[-(self.no_repeat - 1):]), ())
        return [token for token in found if not VALUE_END.search(self._pieces[token])]

    def close(self) -> None:
        if self._grammar:
            self._llama_cpp.llama_sampler_free(self._grammar)
            self._grammar = None

    def _penalised(self, input_ids: np.ndarray, logits: np.ndarray, bans: bool = True) -> np.ndarray:
        if self.banned is not None and bans:
            logits = logits.copy()
            logits[self.banned.always] = -np.inf
            for tails in self.banned.finishing(input_ids):
                logits[tails] = -np.inf
            if self.banned.latin is not None and self._cursor.inside(self.banned.chinese_keys):
                logits[self.banned.latin.inside] = -np.inf
                if not self._cursor.in_word():
                    logits[self.banned.latin.leading] = -np.inf
                elif (capital := self._cursor.lone_capital()) is not None:
                    logits[self.banned.latin.after_capital(capital)] = -np.inf
            if self._restating is not None and self._cursor.inside(self._restating.keys):
                for token, penalty in self._restating.penalties(self._written).items():
                    logits[token] -= penalty
            openings = self.banned.openings
            if openings is not None and self._cursor.inside(openings.keys):
                tails = openings.after.get(self._cursor.sentence())
                if tails is not None:
                    logits[tails] = -np.inf
            for floor in self.banned.floors:
                if self._cursor.inside(floor.keys) and self._cursor.at_sentence_end():
                    if self._cursor.value_chars < floor.chars:
                        logits[floor.closing] = -np.inf
                    elif self._cursor.value_sentences >= floor.sentences:  # long enough: closed here
                        closing = logits[floor.closing]
                        logits[:] = -np.inf
                        logits[floor.closing] = closing
        # The repetition penalty is for prose that loops, not for a number the schema asks for: a
        # review's scores come one after another, so each score's digits and closing "}" were just
        # written, and the penalty (on logits of ~20, so -1.8 at 1.1, then / temperature) pushed each
        # score off the one before. Measured on the 26 bench papers (stop 43): OpenBA's practicality 5
        # made its recommendation 3, which the model's own probabilities gave 0.11 (4: 0.74); 9 and 12
        # of 26 reviews (seeds 42, 7) came out 4 / 3.5 / 4, and without the penalty 4 of 26.
        if self.repeat_penalty == 1.0 or not len(input_ids) or (self._cursor is not None
                                                                 and self._cursor.at_number()):
            return logits
        scores = logits if self.banned is not None and bans else logits.copy()
        recent = np.unique(np.asarray(input_ids[-self.penalty_last_n:], dtype=np.int64))
        values = scores[recent]
        scores[recent] = np.where(values > 0, values / self.repeat_penalty, values * self.repeat_penalty)
        return scores

    def _pick(self, scores: np.ndarray) -> int:
        """top-k, top-p, min-p, then temperature, in llama-cpp-python's default chain order."""
        candidates = top_k(scores, self.top_k)
        if candidates.size == 0:
            raise RuntimeError("the grammar allows no token here")
        candidates = candidates[np.argsort(-scores[candidates], kind="stable")]
        values = scores[candidates].astype(np.float64)
        if self.temperature <= 0:
            return int(candidates[0])
        probs = np.exp(values - values[0])
        probs /= probs.sum()
        keep = max(1, int(np.searchsorted(np.cumsum(probs), self.top_p) + 1))
        keep = min(keep, int(np.count_nonzero(probs >= self.min_p * probs[0])) or 1)
        candidates, values = candidates[:keep], values[:keep]
        bounds = np.cumsum(np.exp((values - values[0]) / self.temperature))
        return int(candidates[min(int(np.searchsorted(bounds, self._uniform() * bounds[-1], side="right")),
                                  len(candidates) - 1)])

    def _allowed(self, token: int) -> bool:
        self._one[0].id, self._one[0].logit, self._one[0].p = token, 0.0, 0.0
        self._one_array.size, self._one_array.selected = 1, -1
        self._llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(self._one_array))
        return np.isfinite(self._one[0].logit)

    def _masked(self, scores: np.ndarray) -> np.ndarray:
        if self._full is None or len(self._full) != scores.size:
            self._full = (self._llama_cpp.llama_token_data * scores.size)()
            self._full_view = np.frombuffer(self._full, dtype=TOKEN_DATA)
        self._full_view["id"] = np.arange(scores.size, dtype=np.int32)
        self._full_view["logit"] = scores
        # In slices: llama.cpp's grammar keeps working memory per candidate, and one pass over all
        # 262k Gemma tokens peaked at +160 MB in some grammar states. Each token is judged on its
        # own, so the slices give the same mask.
        item = ctypes.sizeof(self._llama_cpp.llama_token_data)
        pointer_type = ctypes.POINTER(self._llama_cpp.llama_token_data)
        for start in range(0, scores.size, MASK_SLICE):
            data = ctypes.cast(ctypes.addressof(self._full) + start * item, pointer_type)
            array = self._llama_cpp.llama_token_data_array(data=data, size=min(MASK_SLICE, scores.size - start),
                                                           selected=-1, sorted=False)
            self._llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(array))
        return self._full_view["logit"].astype(np.float32)
