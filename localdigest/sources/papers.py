"""The Paper record every feed is normalised into."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Paper:
    arxiv_id: str
    title: str
    abstract: str
    authors: tuple[str, ...] = ()
    published: str | None = None
    upvotes: int | None = None
    url: str | None = None

    @property
    def page_url(self) -> str:
        return f"https://huggingface.co/papers/{self.arxiv_id}"

    def content_key(self) -> dict:
        """What identifies this paper's text for caching: a changed abstract (or author list, which
        the prompt shows) is a new review."""
        return {"id": self.arxiv_id, "title": self.title, "abstract": self.abstract, "authors": list(self.authors)}
