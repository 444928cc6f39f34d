"""Turning chat messages into the exact prompt text a model was trained on.

Formatting here rather than in llama-cpp-python's chat handlers keeps the prompt
under our control: its Gemma handler silently drops the system message, and a GGUF
without a template silently falls back to llama-2.
"""

from dataclasses import dataclass

FROM_GGUF = "gguf"


@dataclass(frozen=True)
class FormattedPrompt:
    text: str
    stop: tuple[str, ...]
    has_bos: bool  # the text already starts with the BOS token, so the tokenizer must not add another


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
    if chat_format != FROM_GGUF:
        return BUILTIN[chat_format](messages)
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    rendered = Jinja2ChatFormatter(template=template, eos_token=eos_token, bos_token=bos_token)(messages=messages)
    return FormattedPrompt(rendered.prompt, (eos_token,), has_bos=bool(bos_token) and rendered.prompt.startswith(bos_token))
