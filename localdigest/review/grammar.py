"""GBNF grammar for the review schema, written for llama.cpp's grammar sampler.

llama-cpp-python's generic JSON-schema converter lets raw control characters into
strings and ignores numeric bounds; this one covers just the schema shapes Review
uses, fixes the property order, forbids control characters and escapes other than
quote, backslash and slash, and allows only the listed score values.
"""

import json

from localdigest.review.schema import LATER_SENTENCE_START, SENTENCE_END, prose_shape

# Never in a string: control characters (C0, DEL, C1), the Unicode line separators, which would
# become Markdown structure, and surrogates (invalid UTF-8 that decoding drops); never first:
# anything Python's str.strip() removes (validation would find an empty field).
CONTROL = r"\x00-\x1F\x7F-\x9F\u2028\u2029\uD800-\uDFFF"
SPACE = r"\x20\xA0\u1680\u2000-\u200A\u202F\u205F\u3000\uFEFF"
CHAR_RULE = f'char ::= [^"\\\\{CONTROL}] | "\\\\" ["\\\\/]'
# A string starts with a visible character, so a "blank" answer cannot be generated at all.
FIRST_CHAR_RULE = f'first-char ::= [^"\\\\{CONTROL}{SPACE}] | "\\\\" ["\\\\/]'
SPACE_RULE = 'sp ::= " "?'
CJK_RULE = r"cjk ::= [\u4e00-\u9fff]"
END_RULE = f"sentence-end ::= [{SENTENCE_END}]"
# Inside a sentence: any string character but a sentence mark.
SENTENCE_CHAR_RULE = f'sentence-char ::= [^"\\\\{CONTROL}{SENTENCE_END}] | "\\\\" ["\\\\/]'
PROSE_FIRST_RULE = f'prose-first ::= [^"\\\\{CONTROL}{SPACE}{SENTENCE_END}]'
LATER_FIRST_RULE = f"later-first ::= [{LATER_SENTENCE_START}]"


def schema_to_gbnf(schema: dict) -> str:
    rules: dict[str, str] = {}
    rules["root"] = _visit(schema, "root", rules)
    lines = [f"{name} ::= {body}" for name, body in rules.items()]
    return "\n".join(lines + [FIRST_CHAR_RULE, CHAR_RULE, SPACE_RULE, CJK_RULE, END_RULE, SENTENCE_CHAR_RULE,
                               PROSE_FIRST_RULE, LATER_FIRST_RULE]) + "\n"


def _visit(schema: dict, name: str, rules: dict[str, str]) -> str:
    if "enum" in schema:
        return " | ".join(_literal(json.dumps(_compact_number(v), ensure_ascii=False)) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        if schema.get("minLength", 0) != 1:
            raise ValueError("strings need minLength 1")
        if "pattern" in schema:
            shape = prose_shape(schema["pattern"])
            if shape is None:
                raise ValueError(f"unsupported string pattern: {schema['pattern']}")
            return _prose(shape)
        high = schema.get("maxLength")
        repeat = f"{{0,{high - 1}}}" if high is not None else "*"
        return f'"\\"" first-char char{repeat} "\\""'
    if kind == "object":
        properties = schema["properties"]
        missing = set(properties) - set(schema.get("required", []))
        if missing:
            raise ValueError(f"optional properties are not supported: {sorted(missing)}")
        parts = []
        for i, (key, sub) in enumerate(properties.items()):
            rule = f"{name}-{key}".replace("_", "-")
            rules[rule] = _visit(sub, rule, rules)
            prefix = "" if i == 0 else '"," sp '
            parts.append(f"{prefix}{_literal(json.dumps(key))} \":\" sp {rule}")
        return '"{" ' + " ".join(parts) + ' "}"'
    if kind == "array":
        count = schema.get("minItems")
        if count is None or count != schema.get("maxItems"):
            raise ValueError("arrays need minItems == maxItems")
        item = f"{name}-item"
        rules[item] = _visit(schema["items"], item, rules)
        rest = f' ("," sp {item}){{{count - 1}}}' if count > 1 else ""
        return f'"[" {item}{rest} "]"'
    raise ValueError(f"unsupported schema: {schema}")


def _prose(shape) -> str:
    """`least` to `sentences` sentences of up to `sentence_chars` characters, each closed by a sentence mark."""
    # the words it must start with, else a first character of the right kind; then the rest of that sentence
    start = _literal(shape.opening) if shape.opening else "cjk" if shape.chinese_start else "prose-first"
    opening = f"{start} sentence-char{{0,{shape.first_rest}}} sentence-end"
    more = f" (later-first sentence-char{{0,{shape.sentence_chars - 2}}} sentence-end){{{shape.least - 1},{shape.sentences - 1}}}" \
        if shape.sentences > 1 else ""
    return f'"\\"" {opening}{more} "\\""'


def _compact_number(value):
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
