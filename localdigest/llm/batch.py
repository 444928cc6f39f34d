"""Several papers decoded together: one llama.cpp context, one sequence per paper.

On a CPU each decoding step reads all the weights once, however many sequences it
advances, so four sequences per step cost far less than four steps. The shared prompt
prefix (system prompt and examples) is evaluated once into sequence 0, kept between
batches, and copied to the other sequences (a copy in llama.cpp's unified KV cache only
tags the cells, it moves no data).
"""

import os
import re
import time
from collections.abc import Callable

import numpy as np

from localdigest.llm.base import Completion
from localdigest.errors import ModelError, option
from localdigest.llm.forced import Skeleton
from localdigest.llm.sampling import GrammarFirstSampler

PENALTY_WINDOW = 64  # the sampler's repeat-penalty window: only this much history is passed
STRUCTURAL = re.compile(rb'["{}\[\],:0-9]')  # a token that can end a value or a literal


class _Sequence:
    def __init__(self, index: int, tokens: list[int], stops: tuple[str, ...], sampler: GrammarFirstSampler,
                 max_tokens: int):
        self.index = index  # also the llama.cpp sequence id
        self.tokens = tokens
        self.stops = [stop.encode("utf-8") for stop in stops]
        self.sampler = sampler
        self.max_tokens = max_tokens
        self.generated: list[int] = []
        self.forced = 0  # of generated, appended without sampling
        self.text = bytearray()
        self.logits: np.ndarray | None = None
        self.done = False


class BatchDecoder:
    def __init__(self, llama, size: int, threads: int):
        import llama_cpp

        self._llama_cpp = llama_cpp
        self._llama = llama
        self.size = size
        self.threads = threads
        self.n_batch = 512
        self._ctx = None
        self._n_ctx = 0
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, size)
        self._vocab = llama._model.vocab
        self._n_vocab = llama.n_vocab()
        self._prefix: list[int] = []  # what sequence 0 holds from the last batch

    def _context_for(self, cells: int) -> None:
        """A context with room for `cells` KV cells. Sized to the batch rather than n_ctx x size,
        because llama.cpp clears (so touches) the whole KV buffer: 16k cells cost Gemma 160 MB."""
        if cells <= self._n_ctx:
            return
        self._free_context()
        params = self._llama_cpp.llama_context_default_params()
        params.n_ctx = -(-cells // 1024) * 1024
        params.n_batch = params.n_ubatch = self.n_batch
        params.n_seq_max = self.size
        params.n_threads = params.n_threads_batch = self.threads
        params.kv_unified = True  # sequences share the prefix cells
        self._ctx = self._llama_cpp.llama_init_from_model(self._llama._model.model, params)
        if not self._ctx:
            raise ModelError(f"llama.cpp could not create a {params.n_ctx}-token context for {self.size} papers "
                             "at once", f"lower {option('batch_size')} (not enough memory)")
        self._n_ctx = params.n_ctx
        self._memory = self._llama_cpp.llama_get_memory(self._ctx)
        self._prefix = []

    def _free_context(self) -> None:
        if self._ctx:
            self._llama_cpp.llama_free(self._ctx)
            self._ctx, self._n_ctx = None, 0

    def close(self) -> None:
        self._free_context()
        if self._batch is not None:
            self._llama_cpp.llama_batch_free(self._batch)
            self._batch = None

    def complete(self, prompts: list[tuple[list[int], tuple[str, ...], int]], grammar: str, seed: int,
                 settings, on_token: Callable[[], None] | None = None, banned=None,
                 skeleton: Skeleton | None = None) -> list[Completion]:
        """One completion per (prompt tokens, stop strings, answer token limit), decoded together.
        With the answer's skeleton, what it forces is appended in the same step (llm.forced)."""
        if not 0 < len(prompts) <= self.size:
            raise ValueError(f"between 1 and {self.size} prompts at once")
        started = time.perf_counter()
        sequences = [_Sequence(i, tokens, stops, GrammarFirstSampler.for_settings(self._llama, grammar, seed, settings, banned),
                               max_tokens)
                     for i, (tokens, stops, max_tokens) in enumerate(prompts)]
        shared = _shared_prefix(sequences)
        self._context_for(shared + sum(len(s.tokens) - shared + s.max_tokens for s in sequences))
        try:
            evaluated = self._evaluate_prompts(sequences, shared)
            prompt_seconds = time.perf_counter() - started
            self._generate(sequences, on_token, skeleton)
        finally:
            for sequence in sequences:
                sequence.sampler.close()
            self._forget_answers(len(sequences))
        # Each paper gets an equal share of the batch's time, so summed seconds are wall time.
        share = (time.perf_counter() - started) / len(sequences)
        return [Completion(text=_cut_at_stop(bytes(s.text), s.stops).decode("utf-8", errors="replace"),
                           prompt_tokens=len(s.tokens), completion_tokens=len(s.generated), seconds=share,
                           evaluated_prompt_tokens=evaluated[s.index], prompt_seconds=prompt_seconds / len(sequences),
                           forced_tokens=s.forced)
                for s in sequences]

    def _evaluate_prompts(self, sequences: list[_Sequence], shared: int) -> list[int]:
        """The shared prefix once into sequence 0 (reusing what it already holds), then each paper's rest."""
        kept = len(os.path.commonprefix([self._prefix, sequences[0].tokens[:shared]]))
        self._llama_cpp.llama_memory_seq_rm(self._memory, 0, kept, -1)
        prefix = sequences[0].tokens[:shared]
        self._decode([(prefix[pos], pos, 0, False) for pos in range(kept, shared)], sequences)
        self._prefix = prefix
        for sequence in sequences[1:]:
            self._llama_cpp.llama_memory_seq_cp(self._memory, 0, sequence.index, 0, shared)
        rest = [(s.tokens[pos], pos, s.index, pos == len(s.tokens) - 1)
                for s in sequences for pos in range(shared, len(s.tokens))]
        self._decode(rest, sequences)
        evaluated = [len(s.tokens) - shared for s in sequences]
        evaluated[0] += shared - kept
        return evaluated

    def _generate(self, sequences: list[_Sequence], on_token, skeleton: Skeleton | None) -> None:
        is_eog = self._llama_cpp.llama_vocab_is_eog
        while True:
            step = []
            for s in sequences:
                if s.done:
                    continue
                history = np.asarray((s.tokens + s.generated)[-PENALTY_WINDOW:], dtype=np.intc)
                token = s.sampler.choose(history, s.logits)
                if on_token:
                    on_token()
                if is_eog(self._vocab, token):
                    s.done = True
                    continue
                start = len(s.tokens) + len(s.generated)
                piece = self._llama.detokenize([token])
                s.generated.append(token)
                s.text += piece
                forced = self._fast_forward(s, piece, skeleton, on_token) if skeleton else []
                new = [token, *forced]
                if len(s.generated) >= s.max_tokens or any(stop in s.text for stop in s.stops):
                    s.done = True
                    continue
                # One decode for the sampled token and the forced span: logits only after the last.
                step += [(t, start + k, s.index, k == len(new) - 1) for k, t in enumerate(new)]
            if not step:
                return
            self._decode(step, sequences)

    def _fast_forward(self, s: _Sequence, piece: bytes, skeleton: Skeleton, on_token) -> list[int]:
        """The tokens of what the schema forces after the sampled token's `piece` (already in s.text),
        each accepted by the grammar and appended to s (none past one it refuses: tokenized on its own,
        a span can split differently from what the grammar expects)."""
        if not STRUCTURAL.search(piece):  # inside a string value: nothing can be forced yet
            return []
        forced = skeleton.forced(bytes(s.text).decode("utf-8", errors="ignore"))
        if not forced:
            return []
        room = s.max_tokens - len(s.generated)
        taken = []
        for candidate in self._llama.tokenize(forced.encode("utf-8"), add_bos=False, special=False)[:room]:
            if not s.sampler.force(candidate):
                break
            taken.append(candidate)
            s.generated.append(candidate)
            s.text += self._llama.detokenize([candidate])
            if on_token:
                on_token()
        s.forced += len(taken)
        return taken

    def _decode(self, items: list[tuple[int, int, int, bool]], sequences: list[_Sequence]) -> None:
        """Evaluate (token, position, sequence, wants logits) items; keeps the logits each sequence asked for."""
        llama_cpp, batch = self._llama_cpp, self._batch
        for start in range(0, len(items), self.n_batch):
            chunk = items[start:start + self.n_batch]
            batch.n_tokens = len(chunk)
            for i, (token, pos, seq, logits) in enumerate(chunk):
                batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, pos, 1, logits
                batch.seq_id[i][0] = seq
            status = llama_cpp.llama_decode(self._ctx, batch)
            if status != 0:
                raise ModelError(f"llama.cpp could not decode a batch of {len(sequences)} papers (status {status})",
                                 f"lower {option('batch_size')} or raise {option('ctx')}")
            for i, (_token, _pos, seq, logits) in enumerate(chunk):
                if logits:
                    pointer = llama_cpp.llama_get_logits_ith(self._ctx, i)
                    # A copy: the next decode overwrites llama.cpp's logits buffer.
                    sequences[seq].logits = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,)).copy()

    def _forget_answers(self, count: int) -> None:
        """Drop everything but sequence 0's shared prefix, ready for the next batch."""
        self._llama_cpp.llama_memory_seq_rm(self._memory, 0, len(self._prefix), -1)
        for seq in range(1, count):
            self._llama_cpp.llama_memory_seq_rm(self._memory, seq, -1, -1)


def _shared_prefix(sequences: list[_Sequence]) -> int:
    shared = len(os.path.commonprefix([s.tokens for s in sequences]))
    return min(shared, min(len(s.tokens) for s in sequences) - 1)  # every paper needs its own last token


def _cut_at_stop(text: bytes, stops: list[bytes]) -> bytes:
    cuts = [text.find(stop) for stop in stops if stop in text]
    return text[: min(cuts)] if cuts else text
