"""The Paper record every feed is normalised into."""

from dataclasses import dataclass


HF = "hf"  # a Hugging Face daily-papers item: it has a page on huggingface.co/papers
ARXIV = "arxiv"  # anything else with an arXiv id (arXiv RSS/Atom, a plain list of papers)


@dataclass(frozen=True)
class Paper:
    arxiv_id: str
    title: str
    abstract: str
    authors: tuple[str, ...] = ()
    published: str | None = None
    upvotes: int | None = None
    url: str | None = None
    source: str = ARXIV
    comments: int | None = None  # Hugging Face discussion comments
    code_url: str | None = None  # the code repository the feed names (HF: githubRepo)
    stars: int | None = None  # its stars, when the feed says (HF: githubStars)
    ai_keywords: tuple[str, ...] = ()  # Hugging Face's own keywords for the paper

    @property
    def page_url(self) -> str:
        """Where the digest sends a reader: the Hugging Face page of an HF paper, else arXiv's."""
        return self.hf_url if self.source == HF else self.abs_url

    @property
    def hf_url(self) -> str:
        return f"https://huggingface.co/papers/{self.arxiv_id}"

    @property
    def abs_url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv_id}"

    @property
    def pdf_url(self) -> str:
        return f"https://arxiv.org/pdf/{self.arxiv_id}"

    def content_key(self) -> dict:
        """What identifies this paper's text for caching: a changed abstract (or author list, which
        the prompt shows) is a new review."""
        return {"id": self.arxiv_id, "title": self.title, "abstract": self.abstract, "authors": list(self.authors)}
