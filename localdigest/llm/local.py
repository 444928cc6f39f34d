"""The local model: one long-lived llama.cpp context, loaded on first use.

Keeping one Llama for the whole run lets llama.cpp reuse the evaluated prompt
prefix (system prompt and examples) from one paper to the next.
"""

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from localdigest.errors import ModelError, option
from localdigest.llm.base import AnswerFormat, Completion, GenerationSettings, Request, as_format
from localdigest.llm.chat_formats import BUILTIN, FROM_GGUF, format_messages
from localdigest.llm.prefix_states import PrefixStates, default_folder, states_key
from localdigest.llm.registry import ModelSpec, fingerprint

# Cells of the Llama object's own context when nothing decodes in it (LocalModel._load): reviews
# decode in the batch decoder's context, and the tokenizer needs none.
TOKENIZER_CTX = 512


def default_threads() -> int:
    """Physical cores this process may use: hyper-threads slow llama.cpp down rather than up."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return available
    cores = {block for block in re.findall(r"physical id\s*:\s*(\d+).*?core id\s*:\s*(\d+)", text, re.S)}
    return max(1, min(available, len(cores))) if cores else available


class LocalModel:
    url = None  # in-process: no server

    def __init__(self, spec: ModelSpec, path: Path, threads: int | None = None, n_ctx: int | None = None,
                 gpu_layers: int = 0, batch_size: int = 1):
        self.spec = spec
        self.path = path
        self.threads = threads or default_threads()
        self.n_ctx = n_ctx or spec.n_ctx
        self.gpu_layers = gpu_layers
        self.batch_size = batch_size  # answers decoded together (complete_stream, complete_many)
        # complete_many appends what the answer's JSON schema forces (keys, brackets) in one step
        # instead of sampling it token by token (llm.forced); False for comparisons.
        self.fast_forward = True
        # complete_many guesses up to this many tokens per step by prompt lookup and checks them in
        # the same decode (llm.batch); 0 turns it off.
        self.lookahead = 0
        # The shared prompt prefix's cells kept on disk for the next run (llm.prefix_states); False
        # for comparisons.
        self.prefix_states = True
        self.generation = GenerationSettings.with_overrides(spec.generation)
        self._llama = None
        self._llama_cells = 0  # of the Llama's own context (_load)
        self._batch_decoder = None
        self._template_tokens: dict = {}
        self._banned_ids: dict = {}
        self._pieces: tuple[bytes, ...] | None = None
        self._sorted_pieces: tuple[list[bytes], list[int]] | None = None  # _starting_with's index
        self._latin = None  # sampling.LatinWords, built on first use
        self._restating = None  # sampling.Restating without keys, built on first use
        self._floor = None  # sampling.Floor without keys or bounds, built on first use
        self._openings: dict = {}  # words -> sampling.Openings without keys, built on first use

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    def describe(self) -> str:
        return f"{self.spec.name} ({self.path.name})"

    def identity(self) -> str:
        """What the cache keys on: the model file's content and the chat format that frames the prompt,
        not the model's name or place."""
        return f"{fingerprint(self.path)}:{self.spec.chat_format}"

    def complete(
        self,
        messages: list[dict],
        answer_format: AnswerFormat | str | None,
        seed: int,
        on_token: Callable[[], None] | None = None,
        fast_grammar: bool = True,
    ) -> Completion:
        """Generate an answer; with a grammar, only text the grammar allows.

        fast_grammar=False uses llama-cpp-python's own grammar sampling (the benchmark baseline).
        """
        import llama_cpp
        from llama_cpp import LlamaGrammar, LogitsProcessorList, StoppingCriteriaList

        answer_format = as_format(answer_format)
        grammar = answer_format.gbnf if answer_format else None
        llama = self._load(context=True)
        prompt, tokens = self.tokenize_prompt(messages)
        self._check_fits(tokens)

        def count_token(_ids, _logits) -> bool:
            if on_token:
                on_token()
            return False

        params = self.generation
        common = dict(prompt=tokens, stop=list(prompt.stop), seed=seed, max_tokens=self._answer_limit(tokens),
                      stopping_criteria=StoppingCriteriaList([count_token]))
        llama_cpp.llama_perf_context_reset(llama.ctx)
        started = time.perf_counter()
        if grammar is None or not fast_grammar:
            result = llama.create_completion(
                **common,
                grammar=LlamaGrammar.from_string(grammar, verbose=False) if grammar else None,
                temperature=params.temperature,
                top_p=params.top_p,
                repeat_penalty=params.repeat_penalty,
            )
        else:
            from localdigest.llm.sampling import GrammarFirstSampler  # numpy: only when generating

            sampler = GrammarFirstSampler.for_settings(llama, grammar, seed, params, self._banned(answer_format),
                                                       self._vocabulary())
            try:
                # The sampler leaves one finite logit; greedy over it, with no second penalty, picks exactly that.
                result = llama.create_completion(**common, logits_processor=LogitsProcessorList([sampler]),
                                                 temperature=0.0, repeat_penalty=1.0)
            finally:
                sampler.close()
        usage = result["usage"]
        perf = llama_cpp.llama_perf_context(llama.ctx)
        return Completion(
            text=result["choices"][0]["text"],
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            seconds=time.perf_counter() - started,
            evaluated_prompt_tokens=perf.n_p_eval,
            prompt_seconds=perf.t_p_eval_ms / 1000,
        )

    def complete_many(self, conversations: list[list[dict]], answer_format: AnswerFormat | str, seed: int,
                      on_token: Callable[[], None] | None = None, starts: list[str] | None = None) -> list[Completion]:
        """Answers decoded together, batch_size at a time, all grammar-constrained; each goes on from
        its `starts` entry where one is given (ReviewModel.complete_many)."""
        answer_format = as_format(answer_format)
        todo = [Request(messages, answer_format, seed, start, tag=i)
                for i, (messages, start) in enumerate(zip(conversations, starts or [""] * len(conversations)))]
        done = dict(self.complete_stream(lambda: todo.pop(0) if todo else None, len(todo), on_token))
        return [done[i] for i in range(len(conversations))]

    def complete_stream(self, take: Callable[[], Request | None], slots: int | None = None,
                        on_token: Callable[[], None] | None = None) -> Iterator[tuple[object, Completion]]:
        """(request.tag, its completion) for every request take() hands out, as each finishes:
        batch_size (or fewer `slots`) decoded together, a finished answer's place taken by the next
        request at once (llm.batch.BatchDecoder.stream). take() is called whenever there is room, so
        the caller may hand out requests made from the answers so far; None: nothing for now."""
        llama = self._load()
        if self._batch_decoder is not None and self._batch_decoder.size != self.batch_size:
            self._batch_decoder.close()  # batch_size changed since (benchmarks compare sizes on one model)
            self._batch_decoder = None
        if self._batch_decoder is None:
            from localdigest.llm.batch import BatchDecoder

            self._batch_decoder = BatchDecoder(llama, self.batch_size, self.threads, self._vocabulary(),
                                               self._prefix_states())
        self._batch_decoder.lookahead = self.lookahead
        return self._batch_decoder.stream(lambda: self._job(take()), slots, on_token)

    def _prefix_states(self) -> PrefixStates | None:
        """Where the batch decoder keeps the shared prompt prefix's cells between runs: the data
        folder, beside the models (llm.prefix_states); None when `prefix_states` is off."""
        if not self.prefix_states:
            return None
        import llama_cpp

        return PrefixStates(default_folder(),
                            states_key(fingerprint(self.path), llama_cpp.__version__, self.gpu_layers))

    def _job(self, request: Request | None):
        """What the decoder needs for a request: the prompt's tokens, limits, sampler and skeleton."""
        if request is None:
            return None
        from localdigest.llm.batch import Job
        from localdigest.llm.sampling import GrammarFirstSampler

        prompt, tokens = self.tokenize_prompt(request.messages)
        self._check_fits(tokens)
        answer_format, banned, pieces = request.answer_format, self._banned(request.answer_format), self._vocabulary()
        return Job(tokens, prompt.stop, self._answer_limit(tokens),
                   lambda: GrammarFirstSampler.for_settings(self._llama, answer_format.gbnf, request.seed,
                                                            self.generation, banned, pieces),
                   self._skeleton(answer_format), request.start, request.tag, request.stop_early,
                   self._shared_length(request.messages, tokens))

    def _shared_length(self, messages: list[dict], tokens: list[int]) -> int:
        """How many of the prompt's `tokens` come before the last message's content: what every
        prompt with these messages before it has (the instructions and worked examples, not the
        paper). Measured against the prompt with that content left out (a few ms of tokenizing)."""
        _prompt, bare = self.tokenize_prompt([*messages[:-1], {**messages[-1], "content": ""}])
        return len(os.path.commonprefix([bare, tokens]))

    def _skeleton(self, answer_format: AnswerFormat):
        if not self.fast_forward or answer_format.json_schema is None:
            return None
        from localdigest.llm.forced import Skeleton

        try:
            return Skeleton.from_schema(answer_format.json_schema,
                                        closes=tuple((key, 0, most) for key, most in answer_format.sentence_caps)
                                        + answer_format.floors, known=answer_format.known_values,
                                        close_when=answer_format.close_when)
        except (ValueError, KeyError):  # a schema shape with free choices between values: sample it all
            return None

    def option_logprobs(self, messages: list[dict], options: tuple[str, ...]) -> dict[str, float]:
        """The log-probability of each option as the answer's first token, from one prompt evaluation
        and no sampling ("Yes" against "No": benchmarks/relevance.py's baseline, the reviewer asked whether
        a paper is on a reader's topics, as localdigest ranked before it used embeddings). Consecutive
        prompts that share a beginning (the reader's profile) evaluate it once: only the rest is decoded."""
        import numpy as np

        llama = self._load(context=True)
        _prompt, tokens = self.tokenize_prompt(messages)
        self._check_fits(tokens)
        held = list(llama.input_ids[: llama.n_tokens])
        keep = min(len(os.path.commonprefix([held, tokens])), len(tokens) - 1)  # the last token gives the logits
        llama.n_tokens = keep
        llama.eval(tokens[keep:])
        logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),)).astype(np.float64)
        top = logits.max()
        log_total = top + np.log(np.exp(logits - top).sum())
        ids = {option: llama.tokenize(option.encode("utf-8"), add_bos=False, special=False)[0] for option in options}
        return {option: float(logits[token] - log_total) for option, token in ids.items()}

    def _banned(self, answer_format: AnswerFormat):
        """The Bans that keep the words in `avoid` out of an answer: tokens whose text (spaces aside)
        starts with one (is one, for Latin words), and the pieces that would finish a word once the
        answer ends with its beginning: a one-character word's first bytes, or all but the last
        character of a longer one (see sampling.Bans);
        with the format's limit on repeated runs, and no lower-case Latin word begun in the values of
        its `chinese_keys` but its `english_words` (sampling.LatinWords); and its restating penalty,
        sentence openings, floors and copies (sampling.Restating, Openings, Floor, Copies)."""
        import dataclasses

        avoid = answer_format.avoid
        if not avoid and not answer_format.no_repeat and not answer_format.chinese_keys and not answer_format.fresh_keys \
                and not answer_format.avoid_openings and not answer_format.floors and not answer_format.copy_keys:
            return None
        if avoid not in self._banned_ids:
            import numpy as np

            from localdigest.llm.sampling import Bans

            vocabulary = self._vocabulary()
            singles = sorted({word.encode("utf-8") for word in avoid if len(word) == 1})
            # Tokens that end one byte short of a banned character (Qwen's " \xe6\x88") go too: the
            # 64 characters that share those bytes all have tokens of their own to be written with.
            # Latin words go as whole tokens only ("we" bans " we", never "weight"); others by prefix.
            latin = {word for word in avoid if word.isascii()}
            prefixes = tuple(word for word in avoid if not word.isascii())
            always = [token for token, raw in enumerate(vocabulary)
                      if (text := raw.decode("utf-8", errors="ignore").strip()) in latin
                      or (prefixes and text.startswith(prefixes))
                      or any(len(char) > 1 and raw.endswith(char[:-1]) for char in singles)]
            # A word written in pieces: 我 as " \xe6\x88" + "\x91", 源码 as 源 + 码 (Qwen has no
            # token for it), 代码 as 代 + 码 once its own token is banned.
            partial = []
            for word in prefixes:
                spelled = word.encode("utf-8")
                for cut in range(1, len(spelled)):  # the word split after its first `cut` bytes
                    partial.append((spelled[:cut], self._starting_with(spelled[cut:])))
            self._banned_ids[avoid] = Bans(np.array(always, dtype=np.int64), tuple(partial), vocabulary)
        bans = dataclasses.replace(self._banned_ids[avoid], no_repeat=answer_format.no_repeat)
        if answer_format.fresh_keys:
            from localdigest.llm.sampling import Restating

            if self._restating is None:  # one pass over the vocabulary, then the keys swapped in
                self._restating = Restating.from_vocabulary(frozenset(), self._vocabulary())
            keys = frozenset(key.encode("utf-8") for key in answer_format.fresh_keys)
            bans = dataclasses.replace(bans, restating=dataclasses.replace(self._restating, keys=keys))
        if answer_format.avoid_openings and answer_format.opening_keys:
            from localdigest.llm.sampling import Openings

            words = answer_format.avoid_openings
            if words not in self._openings:  # one pass over the vocabulary per word list, then the keys swapped in
                self._openings[words] = Openings.from_vocabulary(frozenset(), words, self._vocabulary())
            keys = frozenset(key.encode("utf-8") for key in answer_format.opening_keys)
            bans = dataclasses.replace(bans, openings=dataclasses.replace(self._openings[words], keys=keys))
        if answer_format.floors:
            from localdigest.llm.sampling import Floor

            if self._floor is None:  # one pass over the vocabulary, then each floor's key and bounds swapped in
                self._floor = Floor.from_vocabulary(self._vocabulary())
            floors = tuple(dataclasses.replace(self._floor, keys=frozenset((key.encode("utf-8"),)), chars=chars,
                                               sentences=sentences)
                           for key, chars, sentences in answer_format.floors)
            bans = dataclasses.replace(bans, floors=floors)
        if answer_format.copy_keys and answer_format.copy_sources:
            from localdigest.llm.sampling import Copies
            from localdigest.text import compact

            bans = dataclasses.replace(bans, copies=Copies(
                frozenset(key.encode("utf-8") for key in answer_format.copy_keys),
                "\n".join(map(compact, answer_format.copy_sources)), compact(answer_format.copy_allowed),
                answer_format.copy_run))
        if not answer_format.chinese_keys:
            return bans
        return dataclasses.replace(bans, chinese_keys=frozenset(key.encode("utf-8") for key in answer_format.chinese_keys),
                                   latin=self._latin_words().allowing(answer_format.english_words))

    def _vocabulary(self) -> tuple[bytes, ...]:
        """Every token's bytes, read from llama.cpp once."""
        if self._pieces is None:
            llama = self._load()
            from localdigest.llm.sampling import vocabulary_pieces

            self._pieces = vocabulary_pieces(llama)
        return self._pieces

    def _starting_with(self, prefix: bytes):
        """The tokens whose bytes start with `prefix`, in order. From the vocabulary sorted once:
        a pass over all 152k tokens for each of the ~40 beginnings of the banned words took 5.8 s
        per paper whose bans differ from the last one's (Qwen 1.5B, EPYC, stop 42)."""
        import bisect

        import numpy as np

        if self._sorted_pieces is None:
            vocabulary = self._vocabulary()
            order = sorted(range(len(vocabulary)), key=vocabulary.__getitem__)
            self._sorted_pieces = ([vocabulary[token] for token in order], order)
        pieces, order = self._sorted_pieces
        found = []
        for at in range(bisect.bisect_left(pieces, prefix), len(pieces)):
            if not pieces[at].startswith(prefix):
                break
            found.append(order[at])
        return np.array(sorted(found), dtype=np.int64)

    def _latin_words(self):
        if self._latin is None:
            from localdigest.llm.sampling import LatinWords

            self._latin = LatinWords.from_vocabulary(self._vocabulary())
        return self._latin

    def _answer_limit(self, tokens) -> int:
        """Tokens the answer may take: max_tokens, or what the context has left after the prompt (less
        a margin: llama.cpp evaluates the last sampled token too, and a full context fails that decode)."""
        return max(1, min(self.generation.max_tokens, self.n_ctx - len(tokens) - 8))

    def _check_fits(self, tokens) -> None:
        if len(tokens) + 16 > self.n_ctx:
            raise ModelError(
                f"model '{self.spec.name}': the prompt is {len(tokens)} tokens but the context is {self.n_ctx}",
                "raise n_ctx in models.toml or shorten the prompt template",
            )

    def prompt_tokens(self, messages: list[dict]) -> int:
        return len(self.tokenize_prompt(messages)[1])

    def count_tokens(self, text: str) -> int:
        return len(self._load().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def tokenize_prompt(self, messages: list[dict]):
        """(the formatted prompt, its tokens) exactly as complete() sends them."""
        llama = self._load()
        prompt = format_messages(messages, self.spec.chat_format, **self._template_tokens)
        if not prompt.pieces:  # a fallback prompt whose content is already defused
            return prompt, llama.tokenize(prompt.text.encode("utf-8"), add_bos=not prompt.has_bos, special=True)
        # Markup with special tokens on, message content (papers, examples) as plain text.
        tokens = []
        for i, (text, is_content) in enumerate(prompt.pieces):  # BOS (if the model wants one) once, first
            tokens += llama.tokenize(text.encode("utf-8"), add_bos=i == 0 and not prompt.has_bos,
                                     special=not is_content)
        return prompt, tokens

    def _load(self, context: bool = False):
        """The llama-cpp-python Llama: the weights, the tokenizer and a context of its own. Reviews
        decode in the batch decoder's context (llm.batch), so the Llama's own has TOKENIZER_CTX cells
        unless `context` (create_completion and option_logprobs decode in it): then n_ctx, the model
        loaded again if it was loaded without. Why: a 4096-cell context no review decodes in held
        102 MiB of Qwen 1.5B's KV cache, which llama.cpp clears, so touches, at creation (peak RSS of
        a 2-paper run, stop 42: model + 434 MB, against the + 400 MB the issue allows)."""
        cells = self.n_ctx if context else min(self.n_ctx, TOKENIZER_CTX)
        if self._llama is not None:
            if self._llama_cells >= cells:
                return self._llama
            self._unload()
        import llama_cpp

        silence_llama_logs(llama_cpp)
        if self.gpu_layers and not llama_cpp.llama_supports_gpu_offload():
            raise ModelError(
                f"{option('gpu_layers')} was given but this llama-cpp-python build has no GPU support",
                "reinstall it with e.g. CMAKE_ARGS='-DGGML_CUDA=on' pip install --force-reinstall --no-cache-dir "
                f"llama-cpp-python, or drop {option('gpu_layers')}",
            )
        try:
            # No repacked copy of the weights (llama.cpp's CPU "extra buffers"): it kept the mmapped
            # file resident and added ~600 MB for Qwen2.5-Coder 1.5B, for tg64 19.3 vs 18.5 tok/s and
            # pp400 45 vs 53 (llama-bench --repack 1,0, 2 threads): peak RSS over speed here.
            with safe_buffer_types(llama_cpp, repack=False):
                llama = llama_cpp.Llama(
                    model_path=str(self.path),
                    n_ctx=cells,
                    n_threads=self.threads,
                    n_threads_batch=self.threads,
                    n_gpu_layers=self.gpu_layers,
                    verbose=False,
                )
        except ValueError as exc:
            if "context" in str(exc):
                raise ModelError(
                    f"model '{self.spec.name}': llama.cpp could not create a {cells}-token context ({exc})",
                    f"not enough memory: lower {option('ctx')} (or n_ctx in models.toml)",
                ) from None
            raise ModelError(
                f"model '{self.spec.name}': llama.cpp could not load {self.path}: {exc}",
                "check that the file is a complete GGUF (re-download or re-copy it)",
            ) from None
        self._template_tokens = {}
        if self.spec.chat_format == FROM_GGUF:
            template = llama.metadata.get("tokenizer.chat_template")
            if not template:
                raise ModelError(
                    f"model '{self.spec.name}': {self.path.name} has no chat template",
                    f"set chat_format in models.toml to one of: {', '.join(BUILTIN)}",
                )
            self._template_tokens = {
                "template": template,
                "bos_token": _token_text(llama, llama.token_bos()),
                "eos_token": _token_text(llama, llama.token_eos()),
            }
        self._llama, self._llama_cells = llama, cells
        return llama

    def _unload(self) -> None:
        """Free the Llama and the batch decoder's context, which uses its weights."""
        if self._batch_decoder is not None:
            self._batch_decoder.close()
            self._batch_decoder = None
        self._llama.close()
        self._llama, self._llama_cells = None, 0


def _token_text(llama, token: int) -> str:
    return llama.detokenize([token], special=True).decode("utf-8", errors="replace") if token >= 0 else ""


_LOG_CALLBACK = None


def silence_llama_logs(llama_cpp) -> None:
    import ctypes

    global _LOG_CALLBACK
    if _LOG_CALLBACK is None:
        _LOG_CALLBACK = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
        llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


class safe_buffer_types:
    """Keep weights out of llama.cpp's AMX buffers when AMX code is compiled in (and out of every
    extra buffer type, the repacked copies, with repack=False).

    llama.cpp built with -march=native on a CPU that reports AMX segfaults in
    ggml_backend_amx_mul_mat inside VMs that do not enable AMX tiles (seen on this
    project's build machines). Set LOCALDIGEST_ALLOW_AMX=1 on bare metal to keep AMX.
    """

    def __init__(self, llama_cpp, repack: bool = True):
        self.llama_cpp = llama_cpp
        self.repack = repack
        self.original = None

    def __enter__(self):
        info = self.llama_cpp.llama_print_system_info().decode(errors="replace")
        amx = "AMX_INT8 = 1" in info and os.environ.get("LOCALDIGEST_ALLOW_AMX") != "1"
        if amx or not self.repack:
            from llama_cpp import llama as llama_module

            original = self.original = llama_module.llama_cpp.llama_model_default_params

            def without_extra_buffers():
                params = original()
                params.use_extra_bufts = False
                return params

            llama_module.llama_cpp.llama_model_default_params = without_extra_buffers

    def __exit__(self, *exc):
        if self.original is not None:
            from llama_cpp import llama as llama_module

            llama_module.llama_cpp.llama_model_default_params = self.original
