"""A run's first paper with the shared prompt prefix read back from disk (llm.prefix_states)
against evaluating it, in one process, on the same model, prompt and papers.

    python benchmarks/prefix_state.py                 # default model, the first 2 papers of 2023-09-22
    python benchmarks/prefix_state.py --repeats 5 --max-tokens 16

Each repeat starts a new run's context (what a new `localdigest run` has), writes the papers'
first answers (`--max-tokens` each: the prompt is what differs) once without the store and once
with it, alternating which goes first, and checks that both write the same tokens. Prints the
first paper's prompt time both ways and their ratio, and the prompt tokens each evaluated.
"""

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from localdigest.llm.choose import open_model  # noqa: E402
from localdigest.llm.prefix_states import PrefixStates  # noqa: E402
from localdigest.llm.registry import load_registry  # noqa: E402
from localdigest.review.pipeline import Reviewer  # noqa: E402
from localdigest.review.prompts import load_prompt  # noqa: E402
from localdigest.sources.feeds import load_feeds  # noqa: E402

FEED = ROOT / "benchmarks" / "data" / "papers" / "2023-09-22.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--papers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()

    model = open_model(load_registry().get(args.model), batch_size=1)
    model.generation = dataclasses.replace(model.generation, max_tokens=args.max_tokens)
    prompt = load_prompt()
    papers = load_feeds([str(FEED)]).papers[:args.papers]
    conversations = [prompt.messages(paper) for paper in papers]
    answer_format = Reviewer(model, prompt, None).answer_format
    folder = Path(tempfile.mkdtemp(prefix="prefix-states-"))  # not the user's data folder
    key = model._prefix_states().key
    model.prefix_states = False  # the warm-up answers write nothing to the user's data folder either

    def run(stored: bool):
        model.complete_many(conversations[:1], answer_format, seed=42)  # loads the model before timing
        decoder = model._batch_decoder
        decoder._free_context()  # a new run: a new context, nothing in it
        decoder.states = PrefixStates(folder, key) if stored else None
        started = time.perf_counter()
        completions = model.complete_many(conversations, answer_format, seed=42)
        return completions, time.perf_counter() - started

    run(True)  # writes the file the stored runs read
    seconds = {False: [], True: []}
    evaluated, texts = {}, {}
    for repeat in range(args.repeats):
        for stored in ((False, True) if repeat % 2 == 0 else (True, False)):
            completions, _wall = run(stored)
            seconds[stored].append(completions[0].prompt_seconds)
            evaluated[stored] = [c.evaluated_prompt_tokens for c in completions]
            texts[stored] = [c.text for c in completions]
    evaluate, read = statistics.median(seconds[False]), statistics.median(seconds[True])
    size = sum(path.stat().st_size for path in folder.iterdir())
    print(f"first paper's prompt, evaluated: {evaluate:.2f} s ({evaluated[False][0]} tokens); "
          f"with the prefix read back: {read:.2f} s ({evaluated[True][0]} tokens): {evaluate / read:.2f}x, "
          f"{evaluate - read:.1f} s saved a run (medians of {args.repeats})")
    print(f"other papers' prompt tokens evaluated: {evaluated[False][1:]} vs {evaluated[True][1:]}; "
          f"file {size / 1e6:.1f} MB; the same answers: {texts[False] == texts[True]}")


if __name__ == "__main__":
    main()
