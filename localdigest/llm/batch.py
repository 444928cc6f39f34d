"""Several papers decoded together: one llama.cpp context, one sequence per paper.

On a CPU each decoding step reads all the weights once, however many sequences it
advances, so four sequences per step cost far less than four steps. Answers come and go
one by one (continuous batching): a finished answer's sequence takes the next job in the
same step. The shared prompt prefix (system prompt and examples) is evaluated once into a
sequence of its own, kept between runs, and copied to each answer's sequence (a copy in
llama.cpp's unified KV cache only tags the cells, it moves no data).
"""

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from localdigest.llm.base import Completion
from localdigest.errors import ModelError, option
from localdigest.llm.forced import Skeleton
from localdigest.llm.prefix_states import PrefixStates
from localdigest.llm.sampling import SENTENCE_ENDS, VALUE_END, GrammarFirstSampler

JOIN_ROOM = 512  # KV cells per place beyond what the first answers need (BatchDecoder._prepare)
PENALTY_WINDOW = 64  # the sampler's repeat-penalty window: only this much history is passed


@dataclass
class Job:
    """One answer for the decoder to write: its prompt's tokens, stop strings, token limit, a maker
    of its (grammar) sampler, the schema skeleton to fast-forward by, and the beginning it goes on
    from. `tag` comes back with its completion."""

    tokens: list[int]
    stops: tuple[str, ...]
    max_tokens: int
    new_sampler: Callable[[], GrammarFirstSampler]
    skeleton: Skeleton | None = None
    start: str = ""
    tag: object = None
    stop_early: Callable[[str], bool] | None = None  # Request.stop_early (asked when the fixed text follows)
    shared: int = 0  # of its tokens, those every prompt of its shape has (all but the paper): kept between runs


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
        self.tag: object = None
        self.skeleton: Skeleton | None = None
        self.stop_early: Callable[[str], bool] | None = None
        self.stopped = False  # by stop_early
        self.copied = 0  # of tokens, the ones shared with the prefix sequence (not evaluated again)
        self.shared = 0  # Job.shared
        self.evaluated = 0  # prompt tokens llama.cpp evaluated for this answer
        # Decoding steps' and prompt evaluation's shares of the wall time; Completion.seconds is both, as
        # on every other path (the bench's generation rate subtracts the prompt's part from it).
        self.seconds = self.prompt_seconds = 0.0

    def completion(self) -> Completion:
        return Completion(text=_cut_at_stop(bytes(self.text), self.stops).decode("utf-8", errors="replace"),
                          prompt_tokens=len(self.tokens) - self.given, completion_tokens=len(self.generated),
                          seconds=self.prompt_seconds + self.seconds, evaluated_prompt_tokens=self.evaluated,
                          prompt_seconds=self.prompt_seconds, forced_tokens=self.forced,
                          drafted_tokens=self.drafted, accepted_tokens=self.accepted, given_tokens=self.given,
                          stopped_early=self.stopped)


def _finished(s: _Sequence) -> bool:
    """The answer reached its token limit, wrote a stop string or was stopped early."""
    return s.stopped or len(s.generated) >= s.max_tokens or any(stop in s.text for stop in s.stops)


class BatchDecoder:
    def __init__(self, llama, size: int, threads: int, pieces: tuple[bytes, ...],
                 states: PrefixStates | None = None):
        """`pieces`: every token's bytes (sampling.vocabulary_pieces); `states`: where the shared
        prefix's cells are kept between runs (llm.prefix_states), None for nowhere."""
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
        self._prefix: list[int] = []  # what the prefix sequence (id `size`) holds
        # Prompt-lookup drafts of up to this many tokens per step (0: off; LocalModel sets it per call), see _draft.
        self.lookahead = 0
        self._pieces = pieces
        self.states = states

    def _context_for(self, cells: int) -> bool:
        """A context with room for `cells` KV cells (True when it is a new one, holding nothing). Sized
        to the answers rather than n_ctx x size, because llama.cpp clears (so touches) the whole KV
        buffer: 16k cells cost Gemma 160 MB."""
        if cells <= self._n_ctx:
            return False
        self._free_context()
        params = self._llama_cpp.llama_context_default_params()
        params.n_ctx = -(-cells // 1024) * 1024
        params.n_batch = params.n_ubatch = self.n_batch
        params.n_seq_max = self.size + 1  # and the prefix sequence
        params.n_threads = params.n_threads_batch = self.threads
        params.kv_unified = True  # sequences share the prefix cells
        self._ctx = self._llama_cpp.llama_init_from_model(self._llama._model.model, params)
        if not self._ctx:
            raise ModelError(f"llama.cpp could not create a {params.n_ctx}-token context for {self.size} papers "
                             "at once", f"lower {option('batch_size')} (not enough memory)")
        self._n_ctx = params.n_ctx
        self._memory = self._llama_cpp.llama_get_memory(self._ctx)
        self._prefix = []
        return True

    def _free_context(self) -> None:
        if self._ctx:
            self._llama_cpp.llama_free(self._ctx)
            self._ctx, self._n_ctx = None, 0

    def close(self) -> None:
        self._free_context()
        if self._batch is not None:
            self._llama_cpp.llama_batch_free(self._batch)
            self._batch = None

    def stream(self, take: Callable[[], "Job | None"], slots: int | None = None,
               on_token: Callable[[], None] | None = None) -> Iterator[tuple[object, Completion]]:
        """(job.tag, its Completion) for every job take() hands out, each as it finishes.

        Up to `slots` answers (at most size) are decoded together, and a sequence that finishes
        hands its slot to the next job at once (continuous batching): no answer waits for the
        longest of a batch, which is what made fixed batches of 4 lose to one at a time on
        Qwen2.5-Coder 1.5B (314 vs 295 s for 8 papers). take() is called whenever a slot is free,
        so the caller may hand out jobs made from earlier answers (a review asked again); None
        means no job for now. The shared prompt prefix lives in a sequence of its own (id `size`),
        kept between streams; each answer's sequence copies what it shares of it."""
        slots = min(slots or self.size, self.size)
        free = list(range(slots))
        active: list[_Sequence] = []
        waiting: _Sequence | None = None  # taken, but no room in the KV cache until others finish
        starting: list[_Sequence] = []
        try:
            while True:
                starting = []
                while len(starting) < len(free):
                    taking = time.perf_counter()
                    new = waiting or self._sequence(take())
                    waiting = None
                    if new is None:
                        break
                    # Tokenizing its prompt and setting up its grammar are the answer's cost too: left
                    # out, answers' seconds came to 0.967 of a stream's wall time (tiny model, CI).
                    new.prompt_seconds += time.perf_counter() - taking
                    new.index = free[len(starting)]
                    if active and not self._room_for(new, active + starting):
                        waiting = new
                        break
                    starting.append(new)
                if not active:  # an empty cache: the first answers decide the prefix and the context's size
                    if not starting:
                        return
                    self._prepare(starting, slots)
                    for i, new in enumerate(starting):
                        self._room_for(new, starting[:i])  # _prepare made the room
                for new in starting:
                    free.remove(new.index)
                active += starting
                if starting:
                    self._evaluate_prompts(starting)
                for done in self._step(active, on_token):
                    active.remove(done)
                    self._forget(done)
                    free.append(done.index)
                    free.sort()
                    yield done.tag, done.completion()
        finally:
            for left in active + [s for s in starting if s not in active]:
                left.sampler.close()
                self._forget(left)
            if waiting:  # it holds no cells
                waiting.sampler.close()

    def _sequence(self, job: "Job | None") -> "_Sequence | None":
        """A job's sequence; its id is given when it starts (a free one)."""
        if job is None:
            return None
        s = _Sequence(-1, job.tokens, job.stops, job.new_sampler(), job.max_tokens)
        s.tag, s.skeleton, s.stop_early, s.shared = job.tag, job.skeleton, job.stop_early, job.shared
        if job.start:
            self._begin_with(s, job.start, job.new_sampler)
        return s

    def _prepare(self, first: list[_Sequence], slots: int) -> None:
        """With no answer in the cache: the prefix sequence holding what the `first` answers' prompts
        share (one answer: its prompt but the last token), kept from the stream before as far as it
        matches (the answers after trim it to what they share, _room_for), in a context with room
        for them and for `slots` answers in all."""
        shared = len(os.path.commonprefix([s.tokens for s in first]))
        target = first[0].tokens[:min(shared, min(len(s.tokens) for s in first) - 1)]  # each needs its last token
        kept = len(os.path.commonprefix([self._prefix, target]))
        needs = [len(s.tokens) - len(target) + s.max_tokens + self.lookahead for s in first]
        # Each place with room for a prompt JOIN_ROOM tokens longer than the first ones' longest:
        # sized to them alone, another abstract or an answer asked again (its problems stated, its
        # first fields kept) had to wait for the others to finish, and 4 places lost to 1 (586 vs
        # 432 s, the 8 papers of 2023-09-22, Qwen 1.5B).
        per_place = max(needs) + (JOIN_ROOM if slots > 1 else 0)
        started = time.perf_counter()  # a new context is the first answers' cost too
        if self._context_for(len(target) + slots * per_place):
            kept = 0  # a new context holds nothing
        self._llama_cpp.llama_memory_seq_rm(self._memory, self.size, kept, -1)
        if not kept and self.states:  # what an earlier run evaluated of it
            kept = self.states.load(self._llama_cpp, self._ctx, self.size, target)
        evaluated = len(target) - kept
        common = min([len(target)] + [s.shared for s in first])  # every prompt's part: the instructions, examples
        if kept < common and self.states:  # evaluated to there, kept for the next run, then the rest
            self._decode([(target[pos], pos, self.size, False) for pos in range(kept, common)], {})
            self.states.save(self._llama_cpp, self._ctx, self.size, target[:common])
            kept = common
        self._decode([(target[pos], pos, self.size, False) for pos in range(kept, len(target))], {})
        self._prefix = target
        first[0].evaluated += evaluated
        share = (time.perf_counter() - started) / len(first)
        for s in first:
            s.prompt_seconds += share

    def _room_for(self, s: _Sequence, others: list[_Sequence]) -> bool:
        """Whether s fits beside `others` in the KV cache; if so, s gets what it shares of the prefix
        sequence (in the unified KV cache a copy only tags the cells), which is then trimmed to that
        (cells another answer still holds stay counted)."""
        shared = min(len(os.path.commonprefix([self._prefix, s.tokens])), len(s.tokens) - 1)
        held = max([len(self._prefix)] + [o.copied for o in others])
        reserved = sum(len(o.tokens) - o.copied + o.max_tokens + self.lookahead for o in others)
        if held + reserved + len(s.tokens) - shared + s.max_tokens + self.lookahead > self._n_ctx:
            if others:
                return False
            raise ModelError(f"llama.cpp's context of {self._n_ctx} tokens has no room for a prompt of "
                             f"{len(s.tokens)} tokens and its answer", f"raise {option('ctx')}")
        self._llama_cpp.llama_memory_seq_cp(self._memory, self.size, s.index, 0, shared)
        s.copied = shared
        if shared < len(self._prefix):
            self._llama_cpp.llama_memory_seq_rm(self._memory, self.size, shared, -1)
            self._prefix = self._prefix[:shared]
        return True

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
            # The start is the answer's own beginning, so it counts against the answer's limit. Why:
            # counted twice (in the prompt and in max_tokens), RMT's answer asked again from its
            # reasons (stop 38's bench, seed 42) needed more cells than the context had, and the new
            # context evaluated all 2195 prompt tokens again: 24 s where ~8 s do.
            s.max_tokens = max(1, s.max_tokens - len(tokens))
        else:
            s.sampler.close()
            s.sampler = new_sampler()

    def _evaluate_prompts(self, sequences: list[_Sequence]) -> None:
        """The new answers' prompts past what they copied from the prefix sequence, in one go."""
        started = time.perf_counter()
        rest = [(s.tokens[pos], pos, s.index, pos == len(s.tokens) - 1)
                for s in sequences for pos in range(s.copied, len(s.tokens))]
        self._decode(rest, {s.index: s for s in sequences})
        share = (time.perf_counter() - started) / len(sequences)
        for s in sequences:
            s.evaluated += len(s.tokens) - s.copied
            s.prompt_seconds += share

    def _step(self, active: list[_Sequence], on_token) -> list[_Sequence]:
        """One decoding step for every active answer: each samples its next token and appends what
        the schema forces after it, all in one decode. Returns the answers that ended; each answer
        is charged an equal share of the step's time, so summed seconds are wall time."""
        started = time.perf_counter()
        step, ended = [], []
        for s in active:
            token = self._next_token(s, on_token)
            if token is None:
                ended.append(s)
                continue
            start = len(s.tokens) + len(s.generated) - 1
            piece = self._pieces[token]
            forced = self._fast_forward(s, piece, s.skeleton, on_token) if s.skeleton else []
            if forced and s.stop_early:  # the schema's fixed text follows: the start, or a value closed
                s.stopped = s.stop_early(bytes(s.text).decode("utf-8", errors="ignore"))
            new = [token, *forced]
            if _finished(s):
                ended.append(s)
                continue
            # One decode for the sampled token, the forced span and the drafts: logits after the
            # last of the first two and after each draft (to check it).
            s.drafts = self._draft(s) if self.lookahead else []
            s.drafts_at = start + len(new)
            s.drafted += len(s.drafts)
            step += [(t, start + k, s.index, k == len(new) - 1) for k, t in enumerate(new)]
            step += [(t, s.drafts_at + k, s.index, True) for k, t in enumerate(s.drafts)]
        if step:
            self._decode(step, {s.index: s for s in active})
        share = (time.perf_counter() - started) / len(active)
        for s in active:
            s.seconds += share
        return ended

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
                s.text += self._pieces[token]
                if _finished(s):
                    return None
                continue
            if i < len(s.drafts):
                self._llama_cpp.llama_memory_seq_rm(self._memory, s.index, s.drafts_at + i, -1)
            s.text += self._pieces[token]
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
                if VALUE_END.search(self._pieces[token]) or self._llama_cpp.llama_vocab_is_eog(self._vocab, token):
                    break
                drafts.append(token)
            return drafts
        return []

    def _fast_forward(self, s: _Sequence, piece: bytes, skeleton: Skeleton, on_token) -> list[int]:
        """The tokens of what the schema forces after the sampled token's `piece` (already in s.text),
        each accepted by the grammar and appended to s (none past one it refuses: tokenized on its own,
        a span can split differently from what the grammar expects)."""
        # Inside a string value nothing is forced, but after a sentence mark that ends the value
        # (Skeleton.closes) its closing quote is (the mark's last byte may be a token of its own).
        if not VALUE_END.search(piece) and not s.text.endswith(SENTENCE_ENDS):
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
            s.text += self._pieces[candidate]
            if on_token:
                on_token()
        s.forced += len(taken)
        return taken

    def _decode(self, items: list[tuple[int, int, int, bool]], sequences: dict[int, _Sequence]) -> None:
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

    def _forget(self, s: _Sequence) -> None:
        """Drop an answer's cells (those it shares with the prefix sequence stay with it)."""
        self._llama_cpp.llama_memory_seq_rm(self._memory, s.index, -1, -1)


def _cut_at_stop(text: bytes, stops: list[bytes]) -> bytes:
    cuts = [text.find(stop) for stop in stops if stop in text]
    return text[: min(cuts)] if cuts else text
