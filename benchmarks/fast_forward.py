"""Fast-forwarding schema-forced tokens (localdigest.llm.forced) against sampling them one step each.

    python benchmarks/fast_forward.py                       # default model, 4 papers of 2023-09-22
    python benchmarks/fast_forward.py --papers 8 --repeats 2

Same process, same model, prompt, seed and batch; the two modes alternate (which goes first
rotates with each repeat), so the machine's noise hits both. Prints, per mode, generated tokens,
the share appended without a decoding step, wall time of the generation and effective tokens/s,
then the ratio. Answers differ between the modes (a forced span is tokenized on its own, so the
model sees slightly different tokens); both are valid reviews under the same grammar.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from localdigest.llm.base import AnswerFormat  # noqa: E402
from localdigest.llm.choose import open_model  # noqa: E402
from localdigest.llm.registry import load_registry  # noqa: E402
from localdigest.review.checks import NEVER_WRITE  # noqa: E402
from localdigest.review.grammar import schema_to_gbnf  # noqa: E402
from localdigest.review.prompts import load_prompt  # noqa: E402
from localdigest.review.schema import REVIEW_SCHEMA, Review  # noqa: E402
from localdigest.sources.feeds import load_feeds  # noqa: E402

FEED = ROOT / "benchmarks" / "data" / "papers" / "2023-09-22.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name (default: the registry's default)")
    parser.add_argument("--papers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--prompt", default="default")
    args = parser.parse_args()

    model = open_model(load_registry().get(args.model), batch_size=args.batch_size)
    prompt = load_prompt(args.prompt)
    answer = AnswerFormat(schema_to_gbnf(REVIEW_SCHEMA), REVIEW_SCHEMA, avoid=NEVER_WRITE)
    papers = load_feeds([str(FEED)]).papers[: args.papers]
    batches = [papers[i:i + args.batch_size] for i in range(0, len(papers), args.batch_size)]
    # The shared prefix once, outside the timing (both modes reuse it).
    model.complete_many([prompt.messages(papers[0])], AnswerFormat('root ::= "{}"'), seed=0)
    totals = {mode: {"tokens": 0, "forced": 0, "seconds": 0.0, "valid": 0} for mode in ("sampled", "fast-forward")}
    for repeat in range(args.repeats):
        order = ["sampled", "fast-forward"] if repeat % 2 == 0 else ["fast-forward", "sampled"]
        for batch in batches:
            for mode in order:
                model.fast_forward = mode == "fast-forward"
                started = time.perf_counter()
                completions = model.complete_many([prompt.messages(p) for p in batch], answer, seed=42 + repeat)
                seconds = time.perf_counter() - started - sum(c.prompt_seconds for c in completions)
                total = totals[mode]
                total["tokens"] += sum(c.completion_tokens for c in completions)
                total["forced"] += sum(c.forced_tokens for c in completions)
                total["seconds"] += seconds
                total["valid"] += sum(_valid(c.text) for c in completions)
                print(f"  {mode:12} {len(batch)} papers: {sum(c.completion_tokens for c in completions)} tokens "
                      f"({sum(c.forced_tokens for c in completions)} forced) in {seconds:.1f} s", file=sys.stderr)
    print(f"model {model.describe()}, {len(papers)} papers x {args.repeats}, batch {args.batch_size}")
    for mode, t in totals.items():
        print(f"{mode:12}  tokens {t['tokens']:5}  forced {t['forced'] / max(t['tokens'], 1):5.1%}  "
              f"generation {t['seconds']:6.1f} s  {t['tokens'] / t['seconds']:5.1f} tok/s  "
              f"{t['seconds'] / (len(papers) * args.repeats):5.1f} s/paper  valid {t['valid']}/{len(papers) * args.repeats}")
    sampled, fast = totals["sampled"], totals["fast-forward"]
    per_paper = (sampled["seconds"] / sampled["tokens"]) / (fast["seconds"] / fast["tokens"])
    print(f"effective tokens/s, fast-forward / sampled: {per_paper:.2f}x; "
          f"generation time per paper, sampled / fast-forward: {sampled['seconds'] / fast['seconds']:.2f}x")


def _valid(text: str) -> bool:
    try:
        Review.from_json(text)
        return True
    except Exception:
        return False


if __name__ == "__main__":
    main()
