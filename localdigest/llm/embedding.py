"""A sentence-embedding model (a BERT GGUF) through llama.cpp: texts in, unit vectors out.

It ranks papers by a reader's interests (review.relevance). all-MiniLM-L6-v2 is 23M parameters: a
title and abstract opening cost ~70 ms on 2 cores, against ~45-75 s for a review, and it ranks the
labelled papers better than asking the 1.5B reviewer (README, Ranking by interests). Text is
tokenized without special tokens (llama-cpp-python's embed): a paper's "[SEP]" is only text.
"""

from pathlib import Path

from localdigest.errors import ModelError
from localdigest.llm.local import safe_buffer_types, silence_llama_logs, default_threads
from localdigest.llm.registry import ModelSpec, fingerprint

CONTEXT = 512  # BERT's position table; longer texts are cut to it (the opening says the topic)


class EmbeddingModel:
    def __init__(self, spec: ModelSpec, path: Path, threads: int | None = None):
        self.spec = spec
        self.path = path
        self.threads = threads or default_threads()
        self._llama = None

    def identity(self) -> str:
        """What the cache keys on: the file's content, not its name."""
        return f"{self.spec.name}:{fingerprint(self.path)}"

    def embed(self, text: str) -> list[float]:
        """The text's embedding, scaled to length 1 (so a dot product is the cosine)."""
        return self._load().embed(text, normalize=True, truncate=True)

    def _load(self):
        if self._llama is not None:
            return self._llama
        import llama_cpp

        silence_llama_logs(llama_cpp)
        try:
            with safe_buffer_types(llama_cpp, repack=False):
                self._llama = llama_cpp.Llama(model_path=str(self.path), embedding=True, n_ctx=CONTEXT,
                                              n_batch=CONTEXT, n_ubatch=CONTEXT, n_threads=self.threads,
                                              n_threads_batch=self.threads, verbose=False)
        except ValueError as exc:
            raise ModelError(f"embedding model '{self.spec.name}': llama.cpp could not load {self.path}: {exc}",
                             "check that the file is a complete BERT GGUF (remove it to convert it again)") from None
        if self._llama.metadata.get("general.architecture") != "bert":
            raise ModelError(f"embedding model '{self.spec.name}' ({self.path.name}) is not a sentence-embedding model",
                             'set embedding = "minilm-l6" in your models file')
        return self._llama
