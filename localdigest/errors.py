"""Errors a user can act on. The CLI turns each into one line: what went wrong, then the fix.

Messages name the settings a user can change as ⟨name⟩ (see `option`), never as a command-line
flag: only the CLI knows that `ctx` is spelled `--ctx`, and a library caller sees plain names.
"""

import re

_OPTION = re.compile(r"⟨([a-z_]+)⟩")


def option(name: str) -> str:
    """A setting's name in a message, spelled by whoever shows it (the CLI: --name)."""
    return f"⟨{name}⟩"


def spell_options(text: str, spell=None) -> str:
    """Replace ⟨name⟩ markers: with spell(name), or by default the plain setting name."""
    return _OPTION.sub(lambda match: (spell or _plain)(match.group(1)), text)


def _plain(name: str) -> str:
    return f"the {name} setting"


class LocaldigestError(Exception):
    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def one_line(self, spell=None) -> str:
        text = f"{self.message} ({self.fix})" if self.fix else self.message
        return spell_options(text, spell)

    def __str__(self) -> str:
        return self.one_line()


class FeedError(LocaldigestError):
    pass


class ModelError(LocaldigestError):
    pass


class PromptError(LocaldigestError):
    pass


class ReviewInvalid(LocaldigestError):
    """The model's answer did not validate into a Review."""


class PromptRejected(ModelError):
    """The backend refused this one prompt (too long for its context, say): that paper fails, the run goes on."""
