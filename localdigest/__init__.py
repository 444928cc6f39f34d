"""localdigest: an offline-first daily paper digest written by a local LLM."""

__version__ = "0.1.0"
