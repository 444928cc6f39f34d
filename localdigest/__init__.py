"""localdigest: an offline-first daily paper digest written by a local LLM.

The library in one call (what `localdigest run`, `localdigest bench` and the tests use)::

    from localdigest import load_feeds, load_prompt, load_registry, open_model, make_digest, ReviewCache

    papers = load_feeds(["digest.json"]).papers
    model = open_model(load_registry().get("qwen2.5-coder-1.5b"))
    digest = make_digest(papers, model=model, prompt=load_prompt("default"), cache=ReviewCache(path))

Names are imported on first use, so `import localdigest` stays cheap.
"""

__version__ = "0.2.0"

_EXPORTS = {
    "make_digest": "localdigest.review.pipeline",
    "Digest": "localdigest.review.pipeline",
    "PaperResult": "localdigest.review.pipeline",
    "ReviewCache": "localdigest.review.cache",
    "load_prompt": "localdigest.review.prompts",
    "Review": "localdigest.review.schema",
    "load_feeds": "localdigest.sources.feeds",
    "FeedOptions": "localdigest.sources.feeds",
    "Paper": "localdigest.sources.papers",
    "load_registry": "localdigest.llm.registry",
    "open_model": "localdigest.llm.choose",
    "render_markdown": "localdigest.output.render",
    "render_json": "localdigest.output.render",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'localdigest' has no attribute {name!r}")
