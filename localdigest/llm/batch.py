"""Several papers decoded together: one llama.cpp context, one sequence per paper.

On a CPU each decoding step reads all the weights once, however many sequences it
advances, so four sequences per step cost far less than four steps. The shared prompt
prefix (system prompt and examples) is evaluated once into sequence 0, kept between
batches, and copied to the other sequences (a copy in llama.cpp's unified KV cache only
tags the cells, it moves no data).
"""

import os
import time
from collections.abc import Callable

import numpy as np

from localdigest.llm.base import Completion
from localdigest.errors import ModelError, option
from localdigest.llm.forced import Skeleton
from localdigest.llm.sampling import VALUE_END, GrammarFirstSampler

PENALTY_WINDOW = 64  # the sampler's repeat-penalty window: only this much history is passed


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
        self.rows: list[np.ndarray] = []  # logits after the last decode: the new tokens', then each draft's
        self.drafts: list[int] = []  # guessed continuation, decoded with the last step, not yet accepted
        self.drafts_at = 0  # position of drafts[0]
        self.drafted = self.accepted = 0  # draft tokens decoded / accepted (prompt lookup)
        self.given = 0  # of tokens, the answer's given beginning (BatchDecoder._begin_with)
        self.done = False


def _finished(s: _Sequence) -> bool:
    """The answer reached its token limit or wrote a stop string."""
    return len(s.generated) >= s.max_tokens or any(stop in s.text for stop in s.stops)


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
        # Prompt-lookup drafts of up to this many tokens per step (0: off; LocalModel sets it per call), see _draft.
        self.lookahead = 0
        self._pieces: dict[int, bytes] = {}

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
                 skeleton: Skeleton | None = None, starts: list[str] | None = None) -> list[Completion]:
        """One completion per (prompt tokens, stop strings, answer token limit), decoded together.
        With the answer's skeleton, what it forces is appended in the same step (llm.forced). A
        prompt's `starts` entry, when given, is the beginning of its answer, taken as written (see
        _begin_with): the completion's text includes it, its token counts do not."""
        if not 0 < len(prompts) <= self.size:
            raise ValueError(f"between 1 and {self.size} prompts at once")
        started = time.perf_counter()

        def new_sampler() -> GrammarFirstSampler:
            return GrammarFirstSampler.for_settings(self._llama, grammar, seed, settings, banned)

        sequences = [_Sequence(i, tokens, stops, new_sampler(), max_tokens)
                     for i, (tokens, stops, max_tokens) in enumerate(prompts)]
        for sequence, start in zip(sequences, starts or ()):
            if start:
                self._begin_with(sequence, start, new_sampler)
        shared = _shared_prefix(sequences)
        self._context_for(shared + sum(len(s.tokens) - shared + s.max_tokens + self.lookahead for s in sequences))
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
                           prompt_tokens=len(s.tokens) - s.given, completion_tokens=len(s.generated), seconds=share,
                           evaluated_prompt_tokens=evaluated[s.index], prompt_seconds=prompt_seconds / len(sequences),
                           forced_tokens=s.forced, drafted_tokens=s.drafted, accepted_tokens=s.accepted,
                           given_tokens=s.given)
                for s in sequences]

    def _begin_with(self, s: _Sequence, start: str, new_sampler: Callable[[], GrammarFirstSampler]) -> None:
        """Make `start` the beginning of s's answer: its tokens join the prompt (evaluated with it, at
        prompt speed) and pass through the grammar first, so sampling goes on from there. A start the
        grammar refuses (tokenized on its own, text can split where the grammar does not expect) is
        dropped whole: the answer is then written from its beginning."""
        tokens = self._llama.tokenize(start.encode("utf-8"), add_bos=False, special=False)
        if all(s.sampler.force(token) for token in tokens):
            s.tokens = s.tokens + tokens
            s.text += start.encode("utf-8")
            s.given = len(tokens)
        else:
            s.sampler.close()
            s.sampler = new_sampler()

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
        while True:
            step = []
            for s in sequences:
                if s.done:
                    continue
                token = self._next_token(s, on_token)
                if token is None:
                    s.done = True
                    continue
                start = len(s.tokens) + len(s.generated) - 1
                piece = self._piece(token)
                forced = self._fast_forward(s, piece, skeleton, on_token) if skeleton else []
                new = [token, *forced]
                if _finished(s):
                    s.done = True
                    continue
                # One decode for the sampled token, the forced span and the drafts: logits after the
                # last of the first two and after each draft (to check it).
                s.drafts = self._draft(s) if self.lookahead else []
                s.drafts_at = start + len(new)
                s.drafted += len(s.drafts)
                step += [(t, start + k, s.index, k == len(new) - 1) for k, t in enumerate(new)]
                step += [(t, s.drafts_at + k, s.index, True) for k, t in enumerate(s.drafts)]
            if not step:
                return
            self._decode(step, sequences)

    def _next_token(self, s: _Sequence, on_token) -> int | None:
        """Sample from the logits of the last decode, accepting drafts while the sampler picks exactly
        them: each pick is the one plain decoding would make (same history, grammar, random draws),
        so the answer is the same with or without drafts, as far as llama.cpp gives the same logits
        for a token decoded alone or among others (exactly on the tiny model's float weights; Q4_K's
        batched kernels round differently, up to 0.36 in a logit on Qwen 1.5B). Returns the first sampled token not yet
        decoded (None when the answer ends); the drafts after it leave the KV cache."""
        is_eog = self._llama_cpp.llama_vocab_is_eog
        for i, row in enumerate(s.rows):
            history = np.asarray((s.tokens + s.generated)[-PENALTY_WINDOW:], dtype=np.intc)
            token = s.sampler.choose(history, row)
            if on_token:
                on_token()
            if is_eog(self._vocab, token):
                return None
            s.generated.append(token)
            if i < len(s.drafts) and token == s.drafts[i]:
                s.accepted += 1
                s.text += self._piece(token)
                if _finished(s):
                    return None
                continue
            if i < len(s.drafts):
                self._llama_cpp.llama_memory_seq_rm(self._memory, s.index, s.drafts_at + i, -1)
            s.text += self._piece(token)
            return token
        raise AssertionError("a sequence with no logits to sample from")

    def _draft(self, s: _Sequence) -> list[int]:
        """Prompt lookup: the tokens that followed the last place the answer's final four or three
        tokens occur (in the paper's abstract or the answer so far), cut before a token that could
        end a value (a forced span or a new key would follow, which the drafts must not cross).
        Off by default: on 2 CPU cores a decode of 4 tokens costs 2.2x one of 1 token, and a third of
        the drafts are kept, so it loses (0.84x; README, Performance)."""
        history = np.asarray(s.tokens + s.generated, dtype=np.int64)
        room = min(self.lookahead, s.max_tokens - len(s.generated) - 1)
        if room <= 0:
            return []
        for n in (4, 3):
            if len(history) <= n:
                continue
            tail = history[-n:]
            windows = np.lib.stride_tricks.sliding_window_view(history[:-1], n)
            hits = np.flatnonzero((windows == tail).all(axis=1))
            if not hits.size:
                continue
            begin = int(hits[-1]) + n
            drafts = []
            for token in history[begin:begin + room].tolist():
                if VALUE_END.search(self._piece(token)) or self._llama_cpp.llama_vocab_is_eog(self._vocab, token):
                    break
                drafts.append(token)
            return drafts
        return []

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self._llama.detokenize([token])
        return piece

    def _fast_forward(self, s: _Sequence, piece: bytes, skeleton: Skeleton, on_token) -> list[int]:
        """The tokens of what the schema forces after the sampled token's `piece` (already in s.text),
        each accepted by the grammar and appended to s (none past one it refuses: tokenized on its own,
        a span can split differently from what the grammar expects)."""
        if not VALUE_END.search(piece):  # inside a string value: nothing can be forced yet
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
            s.text += self._piece(candidate)
            if on_token:
                on_token()
        s.forced += len(taken)
        return taken

    def _decode(self, items: list[tuple[int, int, int, bool]], sequences: list[_Sequence]) -> None:
        """Evaluate (token, position, sequence, wants logits) items; keeps the logits each sequence asked for."""
        llama_cpp, batch = self._llama_cpp, self._batch
        for seq in {seq for _token, _pos, seq, logits in items if logits}:
            sequences[seq].rows = []
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
                    sequences[seq].rows.append(np.ctypeslib.as_array(pointer, shape=(self._n_vocab,)).copy())

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
