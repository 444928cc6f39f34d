"""A rich progress bar on stderr: paper i/N, live tokens/s, ETA.

A local model reports every token (live speed of the current paper); a server reports
tokens per finished paper, so the speed shown is then the run's overall throughput.
The bar appears with the first paper that needs the model: a run served from the cache
shows none and never imports rich.progress.
"""

import time


class DigestProgress:
    def __init__(self, total: int, console):
        self._console = console
        self._total = total
        self._done = 0
        self._progress = None
        self._task = None
        self._tokens = 0
        self._started = 0.0
        self._last_refresh = 0.0
        self._run_started = time.perf_counter()
        self._run_tokens = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._progress.__exit__(*exc) if self._progress else None

    def start_paper(self, paper) -> None:
        self._tokens = 0
        self._started = time.perf_counter()
        from rich.markup import escape  # a title is data, not markup

        self._bar().update(self._task, description=escape(paper.title[:40]))

    def waiting_on(self, what: str) -> None:
        """Parallel requests have no one current paper: say what the run is waiting for instead."""
        from rich.markup import escape

        self._bar().update(self._task, description=escape(what))

    def token(self) -> None:
        self._tokens += 1
        now = time.perf_counter()
        if now - self._last_refresh > 0.25:
            self._last_refresh = now
            speed = self._tokens / max(now - self._started, 1e-9)
            self._bar().update(self._task, speed=f"{speed:5.1f} tok/s")

    def finish_paper(self, generated_tokens: int = 0) -> None:
        self._done += 1
        self._run_tokens += generated_tokens
        if generated_tokens and not self._tokens:  # no live token count: show the run's throughput
            speed = self._run_tokens / max(time.perf_counter() - self._run_started, 1e-9)
            self._bar().update(self._task, speed=f"{speed:5.1f} tok/s")
        if self._progress:
            self._progress.update(self._task, completed=self._done)

    def log(self, message: str) -> None:
        console = self._progress.console if self._progress else self._console
        console.print(message, soft_wrap=True, highlight=False)

    def _bar(self):
        if self._progress is None:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[speed]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=self._console, transient=False,
            )
            self._task = self._progress.add_task("papers", total=self._total, completed=self._done, speed="")
            self._progress.__enter__()
        return self._progress
