"""Errors a user can act on. The CLI turns each into one line: what went wrong, then the fix."""


class LocaldigestError(Exception):
    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def one_line(self) -> str:
        return f"{self.message} ({self.fix})" if self.fix else self.message


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
