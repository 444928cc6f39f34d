"""Ways of decoding a review, against each other: every token sampled one step each ("sampled"),
schema-forced tokens appended without a step ("fast-forward", localdigest.llm.forced), and on top
of that prompt-lookup drafts checked in the same decode ("lookahead", localdigest.llm.batch), or
no lower-case English word begun in the Chinese fields ("no-english", what reviews use:
llm.sampling.LatinWords; the other modes allow them, to show what the bans cost).

    python benchmarks/decoding.py                       # default model, 4 papers of 2023-09-22, all modes
    python benchmarks/decoding.py --papers 8 --batch-size 1 --modes fast-forward lookahead --lookahead 4

Same process, same model, prompt, seed and batch; the modes alternate (which goes first rotates
with each repeat), so the machine's noise hits them all. Prints, per mode, generated tokens, the
share appended without a decoding step of their own (forced, or drafted and accepted), wall time
of the generation and effective tokens/s, then the ratios against the first mode. Fast-forwarded
answers differ from sampled ones (a forced span is tokenized on its own); lookahead answers are
the fast-forward ones except where llama.cpp's batched kernels round differently (counted).
"""

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from localdigest.llm.base import AnswerFormat  # noqa: E402
from localdigest.llm.choose import open_model  # noqa: E402
from localdigest.llm.registry import load_registry  # noqa: E402
from localdigest.review.checks import CHINESE_KEYS, NEVER_WRITE  # noqa: E402
from localdigest.review.grammar import schema_to_gbnf  # noqa: E402
from localdigest.review.pipeline import for_papers  # noqa: E402
from localdigest.review.prompts import load_prompt  # noqa: E402
from localdigest.review.schema import Review  # noqa: E402
from localdigest.sources.feeds import load_feeds  # noqa: E402

FEED = ROOT / "benchmarks" / "data" / "papers" / "2023-09-22.json"


# mode -> (fast-forward, lookahead drafts, no English words in the Chinese fields)
MODES = {"sampled": (False, False, False), "fast-forward": (True, False, False), "lookahead": (True, True, False),
         "no-english": (True, False, True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name (default: the registry's default)")
    parser.add_argument("--papers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--prompt", default="default")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--lookahead", type=int, default=4, help="draft tokens per step in the lookahead mode")
    args = parser.parse_args()

    model = open_model(load_registry().get(args.model), batch_size=args.batch_size)
    prompt = load_prompt(args.prompt)
    answer = AnswerFormat(schema_to_gbnf(prompt.schema()), prompt.schema(), avoid=NEVER_WRITE)
    papers = load_feeds([str(FEED)]).papers[: args.papers]
    batches = [papers[i:i + args.batch_size] for i in range(0, len(papers), args.batch_size)]
    # The shared prefix once, outside the timing (every mode reuses it).
    model.complete_many([prompt.messages(papers[0])], AnswerFormat('root ::= "{}"'), seed=0)
    totals = {mode: {"tokens": 0, "free": 0, "drafted": 0, "accepted": 0, "seconds": 0.0, "valid": 0, "texts": []}
              for mode in args.modes}
    for repeat in range(args.repeats):
        order = args.modes[repeat % len(args.modes):] + args.modes[:repeat % len(args.modes)]
        for batch in batches:
            for mode in order:
                fast_forward, lookahead, chinese = MODES[mode]
                model.fast_forward = fast_forward
                model.lookahead = args.lookahead if lookahead else 0
                started = time.perf_counter()
                form = for_papers(replace(answer, chinese_keys=CHINESE_KEYS), batch) if chinese else answer
                completions = model.complete_many([prompt.messages(p) for p in batch], form, seed=42 + repeat)
                seconds = time.perf_counter() - started - sum(c.prompt_seconds for c in completions)
                total = totals[mode]
                total["tokens"] += sum(c.completion_tokens for c in completions)
                total["free"] += sum(c.forced_tokens + c.accepted_tokens for c in completions)
                total["drafted"] += sum(c.drafted_tokens for c in completions)
                total["accepted"] += sum(c.accepted_tokens for c in completions)
                total["seconds"] += seconds
                total["valid"] += sum(_valid(c.text) for c in completions)
                total["texts"] += [c.text for c in completions]
                print(f"  {mode:12} {len(batch)} papers: {sum(c.completion_tokens for c in completions)} tokens "
                      f"({sum(c.forced_tokens for c in completions)} forced, "
                      f"{sum(c.accepted_tokens for c in completions)}/{sum(c.drafted_tokens for c in completions)} "
                      f"drafts accepted) in {seconds:.1f} s", file=sys.stderr)
    count = len(papers) * args.repeats
    print(f"model {model.describe()}, {len(papers)} papers x {args.repeats}, batch {args.batch_size}, "
          f"lookahead {args.lookahead}")
    for mode, t in totals.items():
        drafts = f"  drafts accepted {t['accepted']}/{t['drafted']}" if t["drafted"] else ""
        print(f"{mode:12}  tokens {t['tokens']:5}  without a step {t['free'] / max(t['tokens'], 1):5.1%}  "
              f"generation {t['seconds']:6.1f} s  {t['tokens'] / t['seconds']:5.1f} tok/s  "
              f"{t['seconds'] / count:5.1f} s/paper  valid {t['valid']}/{count}{drafts}")
    first = totals[args.modes[0]]
    for mode, t in list(totals.items())[1:]:
        per_token = (first["seconds"] / first["tokens"]) / (t["seconds"] / t["tokens"])
        same = sum(a == b for a, b in zip(first["texts"], t["texts"]))
        print(f"{mode} vs {args.modes[0]}: effective tokens/s {per_token:.2f}x, generation time per paper "
              f"{first['seconds'] / t['seconds']:.2f}x, identical answers {same}/{count}")


def _valid(text: str) -> bool:
    try:
        Review.from_json(text)
        return True
    except Exception:
        return False


if __name__ == "__main__":
    main()
