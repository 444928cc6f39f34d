"""The text a JSON schema forces next: what fast-forwarding appends without sampling.

Between the values a model writes, a schema with a fixed property order leaves it no choice: after
主要工作's closing quote comes `, "highlights": "`, after the last keyword `}], "scores":
{"practicality": {"reason": "`. Sampled one token per decoding step, that is ~60 of a review's
~380 steps. Appended as one span, it costs one step (llama.cpp evaluates a span at prompt speed).

The schema is read as a skeleton: literal text with the free values (strings, enum values) between.
Matching the answer so far against it says whether the answer is inside a free value (nothing is
forced) or in a literal (the rest of that literal is forced). The grammar stays the judge: every
forced token is checked against it before it is appended (localdigest.llm.batch).
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

STRING, NUMBER = "string", "number"  # the kinds of free value
# review.schema's sentence marks, spelled once more for this layer, which does not import the review
# stage (llm.sampling reads them from here)
SENTENCE_END = "。！？"
OPTIONAL_SPACE = "\0"  # in a literal: a space the grammar allows but does not require
SCORE = re.compile(r"-?\d+(\.\d+)?")


@dataclass(frozen=True)
class Skeleton:
    parts: tuple[str, ...]  # literal, free kind, literal, free kind, …, literal
    paths: tuple[str, ...] = ()  # where each free value sits: "main_work", "keywords.0.en", "scores.innovation.score"
    # (key, characters, sentences): a string value under that key that has ended that many sentences
    # with at least so many characters is closed there (AnswerFormat.sentence_caps and floors).
    closes: tuple[tuple[str, int, int], ...] = ()
    # known(path, the values closed before it, by path): a string value the answer's format already
    # knows (AnswerFormat.known_values), forced like the literal text around it; None: the model's.
    known: Callable[[str, dict[str, str]], str | None] | None = field(default=None, compare=False)
    # close_when(path, the value so far, the values closed before it, by path): whether a string
    # value that has just ended a sentence is closed there (AnswerFormat.close_when).
    close_when: Callable[[str, str, dict[str, str]], bool] | None = field(default=None, compare=False)

    @classmethod
    def from_schema(cls, schema: dict, closes: tuple[tuple[str, int, int], ...] = (),
                    known: Callable[[str, dict[str, str]], str | None] | None = None,
                    close_when: Callable[[str, str, dict[str, str]], bool] | None = None) -> "Skeleton":
        parts: list[str] = [""]
        paths: list[str] = []
        _walk(schema, parts, paths, "")
        return cls(tuple(parts), tuple(paths), tuple(closes), known, close_when)

    def position(self, field: str) -> int:
        """The index of `field`'s first free value ("scores" -> the practicality reason's); 0, the
        answer's start, for "" or a field the schema does not have."""
        return next((i for i, path in enumerate(self.paths) if field and (path == field or path.startswith(field + "."))), 0)

    def start_of(self, text: str, field: str) -> str | None:
        """`text` (a whole answer) up to where `field`'s first free value begins, with the literal
        before it ('{"main_work": "…", "highlights": "'): an answer to go on from with that field
        written anew. None when the text does not follow the skeleton or the field is its first value."""
        first = self.position(field)
        if not first:
            return None
        pos = 0
        for index, part in enumerate(self.parts[:2 * first + 1]):
            if index % 2 == 0:
                matched, pos = _match_literal(part, text, pos)
                if matched != len(part):
                    return None
            else:
                pos = _string_end(text, pos) if part == STRING else _number_end(text, pos)
                if pos is None:
                    return None
        return text[:pos]

    def values(self, text: str) -> dict[str, str]:
        """The string values `text` (an answer so far) has closed, by path, as JSON reads them (with
        the opening words a pattern forces, "推荐给…"); those before the point where the text ends or
        departs from the skeleton."""
        pos, found = 0, {}
        for index, part in enumerate(self.parts):
            if index % 2 == 0:
                matched, pos = _match_literal(part, text, pos)
                if matched is None or matched < len(part):
                    return found
                continue
            begin = pos
            pos = _string_end(text, pos) if part == STRING else _number_end(text, pos)
            if pos is None or pos == len(text):  # not closed yet
                return found
            if part == STRING:
                value = self._read(index, text[begin:pos])
                if value is None:  # not JSON's text: nothing from here on is read
                    return found
                found[self.paths[index // 2]] = value
        return found

    def forced(self, text: str) -> str:
        """What must follow `text` (an answer so far) before the model has a choice again; "" when it
        has one now, or when `text` does not follow the skeleton (then nothing is assumed). A value
        `known` gives is forced with the literals around it, so one span can run over several."""
        pos, closed, values = 0, False, {}
        out = None  # once `text` is used up: what is forced from there
        for index, part in enumerate(self.parts):
            known = self._known(index, values) if index % 2 else None
            if known:  # read as a value by what follows (the answer's own, if it leaves it, replaces it below)
                values[self.paths[index // 2]] = known[0]
            literal = part if index % 2 == 0 else known and known[1]
            if literal is not None:
                if out is not None or closed:  # the value before can only close: all of it, from its closing quote
                    out, closed = (out or "") + literal.replace(OPTIONAL_SPACE, " "), False
                    continue
                matched, at = _match_literal(literal, text, pos)
                if matched is not None:
                    pos = at
                    if pos == len(text):
                        out = literal[matched:].replace(OPTIONAL_SPACE, " ")
                    continue
                if not known:
                    return ""
                # a known value the answer did not take (the grammar refused a token of it): the model's
            if out is not None:  # the model's value comes next
                return out
            end = _string_end(text, pos) if part == STRING else _number_end(text, pos)
            if end is None and part == STRING and self._closed(index, text[pos:], values):
                closed = True
                continue
            if end is None or end == len(text):  # a number at the end: "4" may still become "4.5"
                return ""
            if part == STRING and (self.known is not None or self.close_when is not None):
                values[self.paths[index // 2]] = self._read(index, text[pos:end])
            pos = end
        return out or ""

    def _known(self, index: int, values: dict[str, str]) -> tuple[str, str] | None:
        """The free value at parts[index] and its JSON text (no quotes), if `known` gives it."""
        if self.known is None or self.parts[index] != STRING:
            return None
        value = self.known(self.paths[index // 2], values)
        return None if not value else (value, json.dumps(value, ensure_ascii=False)[1:-1])

    def _read(self, index: int, written: str) -> str | None:
        """A closed string value as JSON reads it, with the opening words its pattern forces."""
        try:
            return self.parts[index - 1].rsplit('"', 1)[1] + json.loads(f'"{written}"')
        except ValueError:
            return None

    def _closed(self, index: int, written: str, values: dict[str, str]) -> bool:
        """Whether the string value at parts[index], `written` so far (JSON text), can only close now:
        it has just ended a sentence after which `closes` lets its key have no more, or after which
        `close_when` closes it (given the values closed before it)."""
        if not written or written[-1] not in SENTENCE_END:
            return False
        key = self.paths[index // 2].rsplit(".", 1)[-1]
        # counted as llm.sampling.JsonCursor counts for the floor: the opening words in, escapes out
        chars = len(self.parts[index - 1].rsplit('"', 1)[1]) + len(re.sub(r"\\.", "", written))
        sentences = sum(written.count(mark) for mark in SENTENCE_END)
        if any(key == name and chars >= least_chars and sentences >= most for name, least_chars, most in self.closes):
            return True
        if self.close_when is None or (value := self._read(index, written)) is None:
            return False
        return self.close_when(self.paths[index // 2], value, values)


def _walk(schema: dict, parts: list[str], paths: list[str], path: str) -> None:
    def literal(text: str) -> None:
        parts[-1] += text

    def inside(key) -> str:
        return f"{path}.{key}" if path else str(key)

    if "enum" in schema:
        values = schema["enum"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ValueError("only numeric enums have a skeleton")
        parts.extend([NUMBER, ""])
        paths.append(path)
    elif schema.get("type") == "string":
        literal('"' + literal_prefix(schema.get("pattern", "")))
        parts.extend([STRING, '"'])
        paths.append(path)
    elif schema.get("type") == "object":
        literal("{")
        for i, (key, sub) in enumerate(schema["properties"].items()):
            literal(("," + OPTIONAL_SPACE if i else "") + json.dumps(key) + ":" + OPTIONAL_SPACE)
            _walk(sub, parts, paths, inside(key))
        literal("}")
    elif schema.get("type") == "array":
        literal("[")
        for i in range(schema["minItems"]):
            if i:
                literal("," + OPTIONAL_SPACE)
            _walk(schema["items"], parts, paths, inside(i))
        literal("]")
    else:
        raise ValueError(f"no skeleton for {schema}")


REGEX_SPECIAL = set("\\[](){}.*+?|^$")
QUANTIFIER = set("*+?{")


def literal_prefix(pattern: str) -> str:
    """The text every match of an anchored regex `pattern` starts with ("^推荐给[^。]{0,9}。" ->
    "推荐给"): plain characters and escaped punctuation up to the first class, group or operator;
    a character a quantifier makes optional is not part of it. An alternation may not share it: none."""
    if not pattern.startswith("^") or "|" in pattern:
        return ""
    prefix, i = [], 1
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern) and not pattern[i + 1].isalnum():
            prefix.append(pattern[i + 1])
            i += 2
        elif char not in REGEX_SPECIAL:
            prefix.append(char)
            i += 1
        else:
            if char in QUANTIFIER and prefix:
                prefix.pop()
            break
    return "".join(prefix)


def _match_literal(literal: str, text: str, pos: int) -> tuple[int | None, int]:
    """(characters of `literal` matched, new position in text); None when the text departs from it."""
    i = 0
    while i < len(literal) and pos < len(text):
        if literal[i] == OPTIONAL_SPACE:
            if text[pos] == " ":
                pos += 1
            i += 1
        elif literal[i] == text[pos]:
            i, pos = i + 1, pos + 1
        else:
            return None, pos
    return i, pos


def _number_end(text: str, pos: int) -> int | None:
    number = SCORE.match(text, pos)
    return number.end() if number else None


def _string_end(text: str, pos: int) -> int | None:
    """Where the JSON string that starts at `pos` (after its opening quote) ends: its closing quote."""
    while pos < len(text):
        if text[pos] == "\\":
            pos += 2
        elif text[pos] == '"':
            return pos
        else:
            pos += 1
    return None
