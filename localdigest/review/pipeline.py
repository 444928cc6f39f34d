"""The review pipeline: cache lookup, prompt, constrained generation, validation, retries.

`make_digest` is the one entry point: the CLI's `run`, the bench and the tests all review
papers through it, so the bench measures exactly what a user runs.
"""

import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from localdigest.errors import PromptRejected, ReviewInvalid, option
from localdigest.llm.base import AnswerFormat, Request, ReviewModel, as_format
from localdigest.llm.forced import Skeleton
from localdigest.review import checks as quality
from localdigest.review.cache import ReviewCache, review_key
from localdigest.review.grammar import schema_to_gbnf
from localdigest.review.prompts import PromptTemplate
from localdigest.review.schema import FLOORS, PROSE, Review
from localdigest.review.terms import keyword_values
from localdigest.sources.papers import Paper

BASE_SEED = 42
# An answer with a problem is asked again twice, with the problem stated; a model's registry entry
# may say otherwise (`attempts`).
ATTEMPTS = 3
ANSWER_RESERVE = 1024  # tokens kept free for the answer when fitting a long abstract into the context


@dataclass(frozen=True)
class PaperResult:
    paper: Paper
    review: Review | None
    error: str | None = None
    cached: bool = False
    warning: str | None = None
    cost: dict | None = None  # tokens and seconds of the generation that produced the review
    flags: tuple[str, ...] = ()  # what the checks still found after the retries (Problem.text: the log, the JSON)
    notes: tuple[str, ...] = ()  # the same, as the digest's reader is told it (Problem.for_reader)


@dataclass
class RunStats:
    cached: int = 0
    generated: int = 0
    failed: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0  # the answers' time, their prompts' evaluation included (summed: one at a time, the wall)
    prompt_seconds: float = 0.0  # of seconds, evaluating prompts


class Reviewer:
    """Reviews papers with one model (a LocalModel or a ServerModel) and one prompt, through the cache."""

    def __init__(self, model: ReviewModel, prompt: PromptTemplate, cache: ReviewCache | None, seed: int = BASE_SEED):
        self.model = model
        self.seed = seed  # of the first answer; asked again, seed + attempt
        self.prompt = prompt
        self.cache = cache
        self._examples = worked_examples(prompt)
        # (format, skeleton) for a paper that announces a release (True) and for one that does not:
        # they differ only where the prompt has openings_without_release
        self._formats = {True: self._format(prompt.schema(True))}
        self._formats[False] = self._format(prompt.schema(False)) if prompt.openings_without_release \
            else self._formats[True]
        self.stats = RunStats()
        self._stats_lock = threading.Lock()
        self._model_identity = model.identity()
        self.attempts = getattr(model.spec, "attempts", ATTEMPTS)

    def _format(self, schema: dict) -> tuple[AnswerFormat, Skeleton]:
        return AnswerFormat(schema_to_gbnf(schema), schema, avoid=quality.NEVER_WRITE,
                            no_repeat=quality.NO_REPEAT, chinese_keys=quality.CHINESE_KEYS,
                            fresh_keys=quality.FRESH_KEYS, opening_keys=quality.OPENING_KEYS,
                            avoid_openings=quality.BACKGROUND_OPENINGS,
                            floors=tuple((key, *floor) for key, floor in FLOORS.items()),
                            sentence_caps=tuple((key, shape.sentences) for key, shape in PROSE.items()),
                            copy_keys=quality.COPY_KEYS, copy_run=quality.COPY_RUN, close_when=quality.said_already,
                            copy_sources=tuple(text for example in self._examples for text in example.texts)), \
            Skeleton.from_schema(schema)

    @property
    def answer_format(self) -> AnswerFormat | str:
        """The answer format of a paper that announces a release."""
        return self._formats[True][0]

    @answer_format.setter
    def answer_format(self, value: AnswerFormat | str) -> None:
        """One format for every paper (a GBNF string, or an AnswerFormat; its answers still read by
        the prompt's skeleton for a paper with a release)."""
        self._formats = {released: (value, self._formats[True][1]) for released in (True, False)}

    def _format_for(self, papers: list[Paper]) -> tuple[bool, AnswerFormat, Skeleton]:
        """Whether these papers (decoded together: one format) get the openings of a paper with a
        release (when one of them announces one), the answer format, and the skeleton its answers
        are read by."""
        released = any(quality.announces_release(paper_text(paper)) for paper in papers)
        answer_format, skeleton = self._formats[released]
        return released, for_papers(as_format(answer_format), papers, self._examples), skeleton

    def key(self, paper: Paper) -> str:
        # n_ctx belongs here because it decides whether a long abstract is trimmed; the checks'
        # version because they decide which answers were sent back.
        return review_key(paper.content_key(), self.prompt.fingerprint(), self._model_identity,
                          {**self.model.generation.as_dict(), "seed": self.seed, "n_ctx": self.model.n_ctx,
                           "checks": quality.CHECKS_VERSION})

    def check(self, paper: Paper, review: Review) -> list[quality.Problem]:
        return check_review(paper, review, self._examples)

    def review(self, paper: Paper, on_start: Callable[[Paper], None] | None = None,
               on_token: Callable[[], None] | None = None) -> PaperResult:
        """The paper's review from the cache, or generated (on_start is called then, before the model runs)."""
        if hit := self._from_cache(paper):
            return hit
        if on_start:
            on_start(paper)
        return self._generate([paper], on_token)[0]

    def review_many(self, papers: list[Paper], parallel: int = 1,
                    on_start: Callable[[Paper], None] | None = None,
                    on_token: Callable[[], None] | None = None) -> Iterator[tuple[int, PaperResult]]:
        """(index in `papers`, result) for each paper as it finishes.

        A server model gets `parallel` requests at a time (on_start and on_token only when one at a
        time); a local model decodes batch_size uncached papers at a time, a finished paper's place
        taken by the next at once (its answers asked again included).
        On an error (say the server went away) the papers not yet started are dropped, those in
        flight finish (and are cached), and the error propagates.
        """
        if parallel <= 1 and self._streams:
            yield from self._review_streaming(papers, on_start, on_token)
            return
        if parallel <= 1:
            for index, paper in enumerate(papers):
                yield index, self.review(paper, on_start=on_start, on_token=on_token)
            return
        yield from _in_threads(self.review, papers, parallel)

    @property
    def _streams(self) -> bool:
        """Whether the model takes answers one by one as places free up (a local model)."""
        return hasattr(self.model, "complete_stream")

    def _review_streaming(self, papers, on_start, on_token) -> Iterator[tuple[int, PaperResult]]:
        todo = []
        for index, paper in enumerate(papers):
            if hit := self._from_cache(paper):
                yield index, hit
            else:
                todo.append((index, paper))
        yield from self._stream(todo, on_start, on_token)

    def _from_cache(self, paper: Paper) -> PaperResult | None:
        if self.cache is None or not (hit := self.cache.get(self.key(paper))):
            return None
        review = quality.repair(hit.review, paper_text(paper))  # entries written before a repair get it too
        found = self.check(paper, review)  # an entry is data from a shared folder: checked like an answer
        if any(problem.severe for problem in found):
            return None
        self._count(cached=1)
        return PaperResult(paper, review, cached=True, cost=hit.cost, **flagged(found))

    def _generate(self, papers: list[Paper], on_token) -> list[PaperResult]:
        """Reviews for uncached papers: generated (together, for several), validated and checked. An
        answer with problems is asked again with the problems stated; after the last attempt the best
        answer is kept with its problems as flags, unless they are severe. Good ones are cached."""
        if self._streams:
            done = dict(self._stream(list(enumerate(papers)), None, on_token))
            return [done[i] for i in range(len(papers))]
        released, answer_format, skeleton = self._format_for(papers)
        jobs = [self._job(paper, released, answer_format, skeleton) for paper in papers]
        pending = jobs
        while pending:  # every job here has had as many answers as the others
            completions = self._complete([job.conversation for job in pending], answer_format, pending[0].attempt,
                                         on_token, [job.start for job in pending])
            pending = [job for job, completion in zip(pending, completions) if self._answered(job, completion)]
        return [job.result for job in jobs]

    def _stream(self, papers: list[tuple[int, Paper]], on_start, on_token) -> Iterator[tuple[int, PaperResult]]:
        """(index, result) for each (index, paper) as it finishes, through the model's stream of
        answers: an answer asked again goes back in at once, ahead of papers not yet started."""
        if not papers:  # all cached: the model is not even loaded
            return
        waiting = list(papers)
        again: list[_Job] = []

        def take() -> Request | None:
            if again:
                job = again.pop(0)
            elif waiting:
                index, paper = waiting.pop(0)
                if on_start:
                    on_start(paper)
                job = self._job(paper, *self._format_for([paper]), index)
            else:
                return None
            return Request(job.conversation, job.answer_format, self.seed + job.attempt, job.start, tag=job,
                           stop_early=self._stop_early(job) if job.attempt + 1 < self.attempts else None)

        for job, completion in self.model.complete_stream(take, min(len(papers), self.model.batch_size), on_token):
            if self._answered(job, completion):
                again.append(job)
            else:
                yield job.index, job.result

    def _job(self, paper: Paper, released: bool, answer_format: AnswerFormat, skeleton: Skeleton,
             index: int = 0) -> "_Job":
        messages, trimmed = self._fit_context(paper, released)
        return _Job(index, paper, messages, trimmed, messages, answer_format, skeleton)

    def _answered(self, job: "_Job", completion) -> bool:
        """Take a paper's answer: True when it is to be asked again (the job then says how), False
        when the job has its result (accepted, kept with flags after the last attempt, or failed)."""
        if isinstance(completion, PromptRejected):  # asking again will not help
            job.error = completion.one_line()
            return self._last(job)
        attempt = job.attempt
        job.attempt += 1
        more = job.attempt < self.attempts  # another answer may be asked for
        self._count(completion_tokens=completion.completion_tokens, seconds=completion.seconds,
                    prompt_seconds=completion.prompt_seconds)
        job.spent.update(all_completion_tokens=completion.completion_tokens, all_seconds=completion.seconds,
                         all_prompt_seconds=completion.prompt_seconds,
                         all_forced_tokens=completion.forced_tokens, attempts=1)
        if completion.stopped_early:  # its first fields already ask for another answer
            found = quality.NumberChecks(paper_text(job.paper)).early_problems(job.skeleton.values(completion.text))
        else:
            try:
                review = quality.repair(Review.from_json(completion.text), paper_text(job.paper))
            except ReviewInvalid as exc:
                job.error = f"model output failed validation {job.attempt} times: {exc.message}"
                if more:
                    job.sent_back.append("not valid JSON for the schema")
                job.conversation = job.messages  # nothing to point at: the same prompt, another seed
                job.start = ""
                return more or self._last(job)
            found = self.check(job.paper, review)
            if not any(problem.ask_again for problem in found):  # flagged for the reader, not asked again
                job.result = self._accept(job.paper, review, completion, job.trimmed, job.spent,
                                          found=found, sent_back=job.sent_back)
                return False
            if job.best is None or _badness(found) < _badness(job.best[1]):
                job.best = (review, found, completion, attempt)
        if more:
            job.sent_back.extend(problem.kind for problem in found if problem.ask_again)
        job.conversation = self._with_feedback(job.messages, found)
        # The last answer starts afresh while every answer so far was unusable: kept fields
        # led ALMA's reviews (seed 42) into the same copied example reason three times.
        last_chance = job.attempt + 1 == self.attempts and job.best is not None and \
            any(problem.severe for problem in job.best[1])
        job.start = "" if last_chance else self._restart(job.skeleton, completion.text, found)
        return more or self._last(job)

    def _stop_early(self, job: "_Job") -> Callable[[str], bool]:
        """For a local model: whether an answer so far (its closed values) already has a problem
        that would ask for another answer from there (checks.NumberChecks.early_problems: a misread
        number), so the rest of it is not written for nothing. Not on an answer's last attempt: that
        one is kept whole, problems and all, if it is the best. The paper's numbers are read once,
        not at each of the ~20 times an answer is asked."""
        numbers, skeleton = quality.NumberChecks(paper_text(job.paper)), job.skeleton
        return lambda answer: bool(numbers.early_problems(skeleton.values(answer)))

    def _last(self, job: "_Job") -> bool:
        """No more answers for the job: the best one if it has no severe problem, else the error."""
        if job.best is not None and not any(problem.severe for problem in job.best[1]):
            review, found, completion, attempt = job.best
            job.result = self._accept(job.paper, review, completion, job.trimmed, job.spent,
                                      found=found, kept=attempt,
                                      sent_back=job.sent_back)
            return False
        self._count(failed=1)
        error = job.error if job.best is None else \
            f"the model's answers failed the checks {self.attempts} times: " + "; ".join(p.text for p in job.best[1])
        job.result = PaperResult(job.paper, None, error=error)
        return False

    def _complete(self, conversations: list[list[dict]], answer_format: AnswerFormat, attempt: int, on_token,
                  starts: list[str]) -> list:
        """One completion per conversation (going on from its start, where the backend can); a prompt
        the backend rejects is its PromptRejected instead."""
        seed = self.seed + attempt
        # A local model decodes even one paper through complete_many: it fast-forwards what the
        # schema forces (llm.forced), which complete() cannot, and it keeps a character split
        # across tokens whole (llama-cpp-python's create_completion drops bytes that are not
        # UTF-8 yet, which left a keyword empty).
        if len(conversations) > 1 or self.model.url is None:
            return self.model.complete_many(conversations, answer_format, seed=seed, on_token=on_token,
                                            starts=starts)
        try:
            return [self.model.complete(conversations[0], answer_format, seed=seed, on_token=on_token)]
        except PromptRejected as exc:
            return [exc]

    @staticmethod
    def _restart(skeleton: Skeleton, text: str, found: list[quality.Problem]) -> str:
        """Where the answer asked again starts: this answer up to the first field with a problem worth
        asking again about, so what came before it is kept as written and only the rest is written
        anew ("" when that is the whole answer). Why: asked again from the start, Stabilizing RLHF's
        review lost a good 主要工作 to a copied innovation reason, and the new 主要工作 was worse."""
        fields = [problem.field for problem in found if problem.ask_again]
        first = min(fields, key=skeleton.position, default="")
        return skeleton.start_of(text, first) or ""

    def _with_feedback(self, messages: list[dict], found: list[quality.Problem]) -> list[dict]:
        """The paper's question asked again with what was wrong last time appended to it.

        Not as a follow-up turn after the flawed answer: measured on Qwen2.5-Coder 1.5B, a follow-up
        turn ("your answer has these problems") makes it answer with the first worked example, word
        for word; a question that carries its own warnings keeps it on the paper."""
        return with_warnings(messages, "为这篇论文写的速览", [p.feedback for p in found])

    def _accept(self, paper: Paper, review: Review, completion, trimmed: str | None, spent: Counter,
                found: Sequence[quality.Problem] = (), kept: int | None = None,
                sent_back: Sequence[str] = ()) -> PaperResult:
        """The kept answer's figures, and what all the answers asked for cost together (all_*): a
        review asked again took two or three times the kept answer's seconds. `kept`: the kept
        answer's attempt (from 0) when it was not the last; `sent_back`: what each answer asked
        again was sent back for (Problem.kind), so the bench can say which checks cost steps."""
        cost = {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
                "forced_tokens": completion.forced_tokens, "given_tokens": completion.given_tokens,
                "evaluated_prompt_tokens": completion.evaluated_prompt_tokens,
                "prompt_seconds": completion.prompt_seconds, "seconds": completion.seconds, **spent}
        if kept is not None and kept + 1 != spent["attempts"]:
            cost["kept_attempt"] = kept + 1
        if sent_back:
            cost["sent_back_for"] = list(sent_back)
        cache_problem = None
        if self.cache is not None:
            cache_problem = self.cache.put(self.key(paper), review, cost, model=self.model.spec.name,
                                           prompt=self.prompt.name)
        self._count(generated=1)
        return PaperResult(paper, review, warning="; ".join(filter(None, (trimmed, cache_problem))) or None, cost=cost,
                           **flagged(found))

    def _count(self, **amounts) -> None:
        with self._stats_lock:
            for name, amount in amounts.items():
                setattr(self.stats, name, getattr(self.stats, name) + amount)

    def _fit_context(self, paper: Paper, released: bool) -> tuple[list[dict], str | None]:
        """The prompt for this paper, with the abstract shortened if prompt + answer would overflow
        n_ctx; its $schema that of the answer format it is decoded with (`released`, the whole
        abstract's say, trimmed or not)."""
        messages = self.prompt.messages(paper, released)
        if self.model.n_ctx is None:  # a server: it holds the context and rejects what does not fit
            return messages, None
        budget = self.model.n_ctx - min(self.model.generation.max_tokens, ANSWER_RESERVE)
        excess = self.model.prompt_tokens(messages) - budget
        if excess <= 0:
            return messages, None
        abstract_tokens = self.model.count_tokens(paper.abstract)
        keep = max(0, abstract_tokens - excess - 8)
        shortened = paper.abstract[: len(paper.abstract) * keep // max(abstract_tokens, 1)]
        messages = self.prompt.messages(replace(paper, abstract=shortened.rstrip() + " …"), released)
        return messages, (f"abstract trimmed to {keep} of {abstract_tokens} tokens to fit the "
                          f"{self.model.n_ctx}-token context; raise {option('ctx')} to keep it whole")


def flagged(found: Sequence[quality.Problem]) -> dict[str, tuple[str, ...]]:
    """A PaperResult's flags and notes (its keyword arguments) for the problems a shown review still has."""
    return {"flags": tuple(problem.text for problem in found), "notes": tuple(problem.for_reader for problem in found)}


def with_warnings(messages: list[dict], what: str, warnings: list[str]) -> list[dict]:
    """The messages with the last (user) message carrying what was wrong with the last answer."""
    warning = f"\n\n注意：上一次{what}有以下问题，这次必须避免：\n" + "\n".join(f"- {w}" for w in warnings)
    return [*messages[:-1], {**messages[-1], "content": messages[-1]["content"] + warning}]


def check_review(paper: Paper, review: Review, examples: list[quality.Example]) -> list[quality.Problem]:
    """The checks on a review of this paper: its own title and abstract may share text with an example."""
    return quality.problems(review, examples, paper_text(paper))


def for_papers(answer_format: AnswerFormat, papers: list[Paper], examples: Sequence[quality.Example] = ()) -> AnswerFormat:
    """The format with the lower-case names these papers spell allowed in its Chinese fields, no
    claim of code unless one of them announces code, none of the worked `examples`' Chinese keywords
    the papers have no English for, their own text free to quote where an example has it too, and
    the keywords known before they are written (terms.keyword_values; the paper's name only for one
    paper): one format per batch, the papers decoded together share it."""
    text = "\n".join(map(paper_text, papers))
    name = quality.paper_name(papers[0].title, papers[0].abstract) if len(papers) == 1 else None
    return replace(answer_format, english_words=quality.english_words(text), copy_allowed=text,
                   avoid=quality.never_write(text) + quality.example_terms(list(examples), text),
                   known_values=keyword_values(name))


def paper_text(paper: Paper) -> str:
    """What the checks read of a paper: its title line, then its abstract, then the code repository
    the feed names (Hugging Face's githubRepo), which announces code where the abstract may not
    (labelled, as it may be on a host checks.ANNOUNCES_CODE does not know)."""
    return f"{paper.title}\n{paper.abstract}" + (f"\ncode: {paper.code_url}" if paper.code_url else "")


def worked_examples(prompt: PromptTemplate) -> list[quality.Example]:
    """The prompt's worked answers (a prompt file's examples are validated when it is loaded)."""
    examples = []
    openings = tuple(text for _field, text in prompt.openings + prompt.openings_without_release)
    for _user, answer in prompt.examples:
        try:
            examples.append(quality.example_of(Review.from_json(answer), openings))
        except ReviewInvalid:
            continue
    return examples


def _in_threads(review: Callable[[Paper], PaperResult], papers: list[Paper],
                workers: int) -> Iterator[tuple[int, PaperResult]]:
    """review(paper) for every paper on `workers` threads, yielding (index, result) as each finishes.

    Daemon threads rather than a ThreadPoolExecutor, whose threads Python joins at exit: Ctrl-C
    must end the run at once even while a hung server holds every worker (the finished reviews
    are already cached). Any other error stops new papers, lets those in flight finish, then
    propagates.
    """
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for item in enumerate(papers):
        todo.put(item)
    done: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                index, paper = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((index, review(paper), None))
            except BaseException as exc:  # handed to the caller's thread, which decides
                done.put((index, None, exc))

    threads = [threading.Thread(target=work, name=f"review-{n}", daemon=True) for n in range(min(workers, len(papers)))]
    for thread in threads:
        thread.start()
    failure = None
    try:
        for _ in papers:
            while True:
                try:  # a timed wait, so the main thread sees Ctrl-C within a fraction of a second
                    index, result, exc = done.get(timeout=0.2)
                    break
                except queue.Empty:
                    if failure is not None and not any(t.is_alive() for t in threads) and done.empty():
                        raise failure
            if exc is not None:
                stop.set()
                failure = failure or exc
                continue
            yield index, result
        if failure is not None:
            raise failure
    finally:
        stop.set()  # Ctrl-C or a closed generator: no new papers; daemon threads die with the process


@dataclass
class _Job:
    """One paper's review in the making: its prompt, what to ask next, its best answer so far."""

    index: int
    paper: Paper
    messages: list[dict]  # the paper's prompt (its abstract trimmed to fit, where it had to be)
    trimmed: str | None  # the warning when it was
    conversation: list[dict]  # what the next answer is asked with (the prompt, with problems stated)
    answer_format: AnswerFormat
    skeleton: Skeleton  # the answer's fixed text between its values, by which its fields are read
    attempt: int = 0  # answers so far
    start: str = ""  # the next answer goes on from this beginning of the last one
    best: tuple | None = None  # (review, problems, completion, attempt) of the least bad answer
    error: str | None = None
    spent: Counter = field(default_factory=Counter)  # all answers: tokens, seconds, how many
    sent_back: list[str] = field(default_factory=list)  # why answers were asked again (Problem.kind)
    result: PaperResult | None = None


def _badness(found: list[quality.Problem]) -> tuple[int, int]:
    return sum(problem.severe for problem in found), len(found)


@dataclass
class Digest:
    """Every paper's result, in the order of the papers given, and what the run cost."""

    results: list[PaperResult]
    stats: RunStats
    model: str  # the model as the digest's header names it
    server: str | None = None
    prompt: str = ""
    extra: dict = field(default_factory=dict)


def make_digest(papers: list[Paper], *, model: ReviewModel, prompt: PromptTemplate, cache: ReviewCache | None,
                parallel: int = 1, on_start: Callable[[Paper], None] | None = None,
                on_token: Callable[[], None] | None = None,
                on_result: Callable[[int, PaperResult, list], None] | None = None,
                seed: int = BASE_SEED) -> Digest:
    """Review the papers (from the cache where it can) and return them in order.

    on_result(index, result, results so far) is called as each paper finishes (in whatever order
    they finish), e.g. for a progress bar or a partial digest; results not yet there are None.
    An error that stops the run (the server went away, Ctrl-C) propagates after the papers in
    flight are finished and cached. `seed` picks another draw of the same model and prompt (bench
    measures how much a figure moves between draws).
    """
    reviewer = Reviewer(model, prompt, cache, seed=seed)
    results: list[PaperResult | None] = [None] * len(papers)
    for index, result in reviewer.review_many(papers, parallel, on_start=on_start, on_token=on_token):
        results[index] = result
        if on_result:
            on_result(index, result, results)
    return Digest(results=results, stats=reviewer.stats, model=model.describe(), server=model.url,
                  prompt=prompt.name)
