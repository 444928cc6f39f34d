"""Prompt templates: TOML files in prompts/ rendered into chat messages for one paper."""

import hashlib
import json
import string
import tomllib
from dataclasses import dataclass
from pathlib import Path

from localdigest import paths
from localdigest.errors import PromptError
from localdigest.sources.latex import latex_to_text
from localdigest.sources.papers import Paper
from localdigest.review.schema import MAX_CHARS, SCORE_DIMENSIONS, SENTENCE_END, review_schema

PROMPTS_DIR = paths.shipped("prompts")
DEFAULT_PROMPT = "default"
VARIABLES = ("title", "authors", "abstract", "arxiv_id", "schema")
ALLOWED_KEYS = {"description", "system", "user", "examples", "openings", "openings_without_release"}
OPENED_FIELDS = ("main_work", *SCORE_DIMENSIONS)  # the fields an `openings` table may open, in answer order


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    path: Path
    system: str
    user: str
    examples: tuple[tuple[str, str], ...] = ()
    description: str = ""
    # score name -> the words its reason must start with: the grammar writes them, so the model
    # cannot leave them out and spends no decoding step on them (review_schema)
    openings: tuple[tuple[str, str], ...] = ()
    # the same, in place of those, for a paper that announces no release (no code, model, data or
    # open source): its practicality reason says what a reader can learn from it, not what to take
    openings_without_release: tuple[tuple[str, str], ...] = ()

    def schema(self, released: bool = True) -> dict:
        """The review's JSON schema as this prompt asks for it (with its reason openings) of a paper
        that announces a release (`released`) or of one that does not."""
        openings = dict(self.openings)
        if not released:
            openings.update(self.openings_without_release)
        return review_schema(openings)

    def messages(self, paper: Paper, released: bool = True) -> list[dict]:
        """Chat messages for one paper (`released`: whether it announces a release, for $schema);
        all but the last are the same for every paper."""
        values = {**_variables(paper), "schema": json.dumps(self.schema(released), ensure_ascii=False)}
        messages = [{"role": "system", "content": self._fill(self.system, values, "system")}]
        for user, assistant in self.examples:
            messages.append({"role": "user", "content": user})
            messages.append({"role": "assistant", "content": assistant})
        messages.append({"role": "user", "content": self._fill(self.user, values, "user")})
        return messages

    def fingerprint(self) -> str:
        text = json.dumps([self.system, self.user, self.examples, *([self.openings] if self.openings else []),
                           *([self.openings_without_release] if self.openings_without_release else [])],
                          ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def _fill(self, text: str, values: dict, field: str) -> str:
        try:
            return string.Template(text).substitute(values)
        except KeyError as exc:
            raise PromptError(
                f"{self.path}: field '{field}' uses unknown variable ${exc.args[0]}",
                f"use one of {', '.join('$' + v for v in VARIABLES)}, or write $$ for a literal $",
            ) from None
        except ValueError as exc:
            raise PromptError(f"{self.path}: field '{field}': {exc}", "write $$ for a literal $") from None


def shipped_prompt_names() -> list[str]:
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.toml"))


def load_prompt(name_or_path: str | None = None) -> PromptTemplate:
    """A prompt by name (a file in prompts/) or by path to a .toml file."""
    name_or_path = name_or_path or DEFAULT_PROMPT
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PROMPTS_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        available = ", ".join(shipped_prompt_names()) or "none"
        raise PromptError(f"prompt '{name_or_path}' not found at {path}", f"available prompts: {available}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PromptError(f"{path}: not valid TOML: {exc}", "fix the syntax at the position shown") from None
    unknown = set(data) - ALLOWED_KEYS
    if unknown:
        raise PromptError(f"{path}: unknown key(s) {sorted(unknown)}", f"allowed keys: {sorted(ALLOWED_KEYS)}")
    for key in ("system", "user"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise PromptError(f"{path}: '{key}' is missing or empty", f"add a non-empty '{key}' string")
    examples = []
    if not isinstance(data.get("examples", []), list):
        raise PromptError(f"{path}: 'examples' must be a list of [[examples]] tables", "write each as [[examples]]")
    for i, example in enumerate(data.get("examples", [])):
        if not isinstance(example, dict) or set(example) != {"user", "assistant"} \
                or not all(isinstance(v, str) for v in example.values()):
            raise PromptError(f"{path}: examples[{i}] must have exactly 'user' and 'assistant' strings",
                              "fix that example")
        examples.append((example["user"], example["assistant"]))
    template = PromptTemplate(
        name=path.stem,
        path=path,
        system=data["system"],
        user=data["user"],
        examples=tuple(examples),
        description=data.get("description", ""),
        openings=_openings(path, data.get("openings", {})),
        openings_without_release=_openings(path, data.get("openings_without_release", {}), "openings_without_release"),
    )
    template.messages(Paper(arxiv_id="0000.00000", title="t", abstract="a"))  # fail now, not mid-run
    return template


def _variables(paper: Paper) -> dict:
    return {
        # LaTeX as text: the model copies "$360^\circ$" back garbled, "360°" it copies right.
        "title": latex_to_text(paper.title),
        "authors": ", ".join(paper.authors) or "unknown",
        "abstract": latex_to_text(paper.abstract),
        "arxiv_id": paper.arxiv_id,
    }


def _openings(path: Path, table: object, key: str = "openings") -> tuple[tuple[str, str], ...]:
    """The prompt's `openings` table (or another by that `key`), checked: main_work or known score
    names, and words the grammar can force (no quote, backslash, control character or sentence end,
    well short of a reason's length)."""
    if not isinstance(table, dict):
        raise PromptError(f"{path}: '{key}' must be a table", f'write [{key}] with lines like recommendation = "推荐给"')
    for name, words in table.items():
        if name not in OPENED_FIELDS:
            raise PromptError(f"{path}: {key}.{name}: not main_work or a score", f"use {', '.join(OPENED_FIELDS)}")
        if not isinstance(words, str) or not words.strip() or words != words.lstrip() \
                or len(words) > MAX_CHARS["reason"] // 4 or any(c in words for c in f'"\\{SENTENCE_END}') \
                or any(not c.isprintable() for c in words):
            raise PromptError(f"{path}: {key}.{name}: {words!r} cannot open a field",
                              f"use a few words (at most {MAX_CHARS['reason'] // 4} characters) without quotes, "
                              f"backslashes, line breaks or {SENTENCE_END}")
    return tuple((name, table[name]) for name in OPENED_FIELDS if name in table)
