"""Turning chat messages into the exact prompt text a model was trained on.

Formatting here rather than in llama-cpp-python's chat handlers keeps the prompt
under our control: its Gemma handler silently drops the system message, and a GGUF
without a template silently falls back to llama-2.
"""

import re
import secrets
from dataclasses import dataclass

FROM_GGUF = "gguf"
# What chat templates and servers read as turn markers: ChatML/Qwen <|...|>, Gemma's turns,
# Llama 2's [INST]/<<SYS>> and the usual BOS/EOS spellings.
SPECIAL_LOOKING = re.compile(r"<\|[^<>|\s]{1,40}\|>|</?(?:start_of_turn|end_of_turn|s|bos|eos|pad)>|\[/?INST\]|<</?SYS>>")


@dataclass(frozen=True)
class FormattedPrompt:
    text: str
    stop: tuple[str, ...]
    has_bos: bool  # the text already starts with the BOS token, so the tokenizer must not add another
    # The text cut into (piece, is_message_content): content is data and is tokenized without
    # special tokens, so an abstract that spells "<|im_end|>" cannot close its turn.
    pieces: tuple[tuple[str, bool], ...] = ()


def _chatml(messages: list[dict]) -> FormattedPrompt:
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return FormattedPrompt(turns + "<|im_start|>assistant\n", ("<|im_end|>",), has_bos=False)


def _gemma(messages: list[dict]) -> FormattedPrompt:
    # Gemma has no system role: like Google's own template, put the system text at the top of the first user turn.
    system = "".join(m["content"] + "\n\n" for m in messages if m["role"] == "system")
    parts = []
    for m in (m for m in messages if m["role"] != "system"):
        role = "model" if m["role"] == "assistant" else "user"
        content = system + m["content"] if role == "user" and system else m["content"]
        if role == "user":
            system = ""
        parts.append(f"<start_of_turn>{role}\n{content}<end_of_turn>\n")
    return FormattedPrompt("".join(parts) + "<start_of_turn>model\n", ("<end_of_turn>",), has_bos=False)


def _llama3(messages: list[dict]) -> FormattedPrompt:
    turns = "".join(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content']}<|eot_id|>" for m in messages)
    return FormattedPrompt(turns + "<|start_header_id|>assistant<|end_header_id|>\n\n", ("<|eot_id|>",), has_bos=False)


BUILTIN = {"chatml": _chatml, "gemma": _gemma, "llama-3": _llama3}
NAMES = (FROM_GGUF, *BUILTIN)


def format_messages(messages: list[dict], chat_format: str, template: str | None = None,
                    bos_token: str = "", eos_token: str = "") -> FormattedPrompt:
    """The prompt text, with `pieces` telling the template's own text from the messages' content.

    The template is rendered once with a unique marker in place of each message's content, so
    whatever the template adds around the content (and only that) is read as markup.
    """
    marker = f"\ue000{secrets.token_hex(6)}:"  # a private-use char + random tag: no paper contains it
    marked = [{**m, "content": f"{marker}{i}\ue001"} for i, m in enumerate(messages)]
    skeleton = _render(marked, chat_format, template, bos_token, eos_token)
    pieces: list[tuple[str, bool]] = []
    rest = skeleton.text
    for i, message in enumerate(messages):
        before, found, rest = rest.partition(f"{marker}{i}\ue001")
        if not found:  # a template that rewrites content: fall back to defusing turn markers in it
            return _render([{**m, "content": defuse(m["content"])} for m in messages],
                           chat_format, template, bos_token, eos_token)
        pieces += [(before, False), (message["content"], True)]
    pieces.append((rest, False))
    return FormattedPrompt("".join(p for p, _ in pieces), skeleton.stop, skeleton.has_bos,
                           tuple(p for p in pieces if p[0]))


def defuse(text: str) -> str:
    """Text that reads the same but cannot be parsed as a turn marker: for prompts that go to a
    server (which tokenizes its rendered template with special tokens on), and templates that
    rewrite content. A zero-width space after the first character breaks the marker."""
    return SPECIAL_LOOKING.sub(lambda m: m.group(0)[0] + "\u200b" + m.group(0)[1:], text)


def _render(messages: list[dict], chat_format: str, template: str | None,
            bos_token: str, eos_token: str) -> FormattedPrompt:
    if chat_format != FROM_GGUF:
        return BUILTIN[chat_format](messages)
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    rendered = Jinja2ChatFormatter(template=template, eos_token=eos_token, bos_token=bos_token)(messages=messages)
    return FormattedPrompt(rendered.prompt, (eos_token,), has_bos=bool(bos_token) and rendered.prompt.startswith(bos_token))
