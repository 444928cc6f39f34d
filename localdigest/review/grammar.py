"""GBNF grammar for the review schema, written for llama.cpp's grammar sampler.

llama-cpp-python's generic JSON-schema converter lets raw control characters into
strings and ignores numeric bounds; this one covers just the schema shapes Review
uses, fixes the property order, forbids control characters and escapes other than
quote, backslash and slash, and allows only the listed score values.
"""

import json

CHAR_RULE = r'char ::= [^"\\\x00-\x1F\x7F] | "\\" ["\\/]'
# A string starts with a visible character, so a "blank" answer cannot be generated at all.
FIRST_CHAR_RULE = r'first-char ::= [^"\\\x00-\x20\x7F] | "\\" ["\\/]'
SPACE_RULE = 'sp ::= " "?'


def schema_to_gbnf(schema: dict) -> str:
    rules: dict[str, str] = {}
    rules["root"] = _visit(schema, "root", rules)
    lines = [f"{name} ::= {body}" for name, body in rules.items()]
    return "\n".join(lines + [FIRST_CHAR_RULE, CHAR_RULE, SPACE_RULE]) + "\n"


def _visit(schema: dict, name: str, rules: dict[str, str]) -> str:
    if "enum" in schema:
        return " | ".join(_literal(json.dumps(_compact_number(v), ensure_ascii=False)) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        if schema.get("minLength", 0) != 1:
            raise ValueError("strings need minLength 1")
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


def _compact_number(value):
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
