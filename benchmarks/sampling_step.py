"""The sampler's top-k on the real logits of a review, two ways, in one process: over the whole
vocabulary (localdigest until stop 42) against over the tokens the bans leave (now).

    python benchmarks/sampling_step.py                  # default model, the first paper of 2023-09-22
    python benchmarks/sampling_step.py --steps 200 --repeats 5

It writes one review with the default prompt (bans and all, as `localdigest run` does), keeps the
scores each step's pick was made from, then times both ways of choosing the top k over the same
scores, alternating which goes first, and checks they choose the same tokens. Why it matters: with
the bans ~85k of Qwen's 152k logits are -inf, and numpy's argpartition over that many equal values
was measured at 26-31 ms a step on an EPYC (1.8 ms on random logits), against a step of ~50 ms.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from localdigest.llm import sampling  # noqa: E402
from localdigest.llm.choose import open_model  # noqa: E402
from localdigest.llm.registry import load_registry  # noqa: E402
from localdigest.review.pipeline import make_digest  # noqa: E402
from localdigest.review.prompts import load_prompt  # noqa: E402
from localdigest.sources.feeds import load_feeds  # noqa: E402

FEED = ROOT / "benchmarks" / "data" / "papers" / "2023-09-22.json"
TOP_K = 40  # GenerationSettings' default, as the sampler uses it


def whole_vocabulary(scores: np.ndarray) -> np.ndarray:
    """The top k as chosen until stop 42: argpartition over every logit, then the -inf ones dropped."""
    candidates = np.argpartition(scores, -TOP_K)[-TOP_K:]
    return candidates[np.isfinite(scores[candidates])]


def tokens_left(scores: np.ndarray) -> np.ndarray:
    """The top k as GrammarFirstSampler._pick chooses it now (sampling.top_k)."""
    return sampling.top_k(scores, TOP_K)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name (default: the registry's default)")
    parser.add_argument("--steps", type=int, default=120, help="steps of the review to keep scores from")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ctx", type=int, help="context size (default: the model's n_ctx)")
    args = parser.parse_args()

    kept: list[np.ndarray] = []
    pick = sampling.GrammarFirstSampler._pick

    def keeping(sampler, scores):  # the scores each pick is made from, as the review is written
        if len(kept) < args.steps:
            kept.append(scores.copy())
        return pick(sampler, scores)

    sampling.GrammarFirstSampler._pick = keeping
    model = open_model(load_registry().get(args.model), batch_size=1, n_ctx=args.ctx)
    paper = load_feeds([str(FEED)]).papers[:1]
    make_digest(paper, model=model, prompt=load_prompt(), cache=None)
    sampling.GrammarFirstSampler._pick = pick

    for scores in kept:
        assert set(whole_vocabulary(scores).tolist()) == set(tokens_left(scores).tolist()), "different candidates"
    ways = {"whole vocabulary": whole_vocabulary, "tokens the bans leave": tokens_left}
    times = {name: [] for name in ways}
    for repeat in range(args.repeats):
        for name in (list(ways) if repeat % 2 == 0 else list(reversed(ways))):
            started = time.perf_counter()
            for scores in kept:
                ways[name](scores)
            times[name].append((time.perf_counter() - started) / len(kept) * 1000)
    banned = statistics.mean(float(np.mean(~np.isfinite(scores))) for scores in kept)
    print(f"{len(kept)} steps of {paper[0].title!r}; {banned:.0%} of the logits -inf on average; same candidates both ways")
    base = statistics.median(times["whole vocabulary"])
    for name, runs in times.items():
        ms = statistics.median(runs)
        print(f"{name:24} {ms:6.2f} ms per step   {base / ms:6.1f}x")


if __name__ == "__main__":
    main()
