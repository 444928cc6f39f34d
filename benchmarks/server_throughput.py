"""Digest throughput through an inference server against --parallel, as ratios against --parallel 1
measured in the same process on the same server, papers and seeds.

    python benchmarks/server_throughput.py                         # tiny test model, 4 papers
    python benchmarks/server_throughput.py --model gemma-3-270m --parallel 1 2 4 --repeats 2
    python benchmarks/server_throughput.py --server http://gpu-box:8080 --papers 16 --parallel 1 4 16

Without --server it starts llama-cpp-python's server (the `server` extra) on 127.0.0.1 for the
model. Nothing is cached, so every setting generates the same reviews from scratch.
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from localdigest.testing.local_server import LocalServer  # noqa: E402
from localdigest.testing.tiny_model import write_tiny_gguf  # noqa: E402

from localdigest.bench.runner import timed_reviews  # noqa: E402
from localdigest.sources.feeds import load_feeds  # noqa: E402
from localdigest.llm.registry import ModelSpec, load_registry  # noqa: E402
from localdigest.review.prompts import load_prompt  # noqa: E402
from localdigest.llm.server import ServerModel  # noqa: E402

FEED = ROOT / "benchmarks" / "data" / "papers" / "2023-09-22.json"


def run_once(url: str, spec: ModelSpec, prompt, papers, parallel: int) -> dict:
    model = ServerModel(spec, url, parallel=parallel)
    try:
        return timed_reviews(model, prompt, papers, parallel)
    finally:
        model.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="registry name or .gguf for the local server (default: the tiny test "
                                        "model); with --server, the served model's name")
    parser.add_argument("--server", help="benchmark this server instead of starting one")
    parser.add_argument("--papers", type=int, default=4)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="threads of the local server")
    parser.add_argument("--max-tokens", type=int, help="default: the model's (4096 for the tiny model)")
    args = parser.parse_args()

    papers = load_feeds([str(FEED)]).papers[: args.papers]
    prompt = load_prompt()
    levels = sorted(set(args.parallel) | {1})
    if args.server:
        url, server, generation = args.server, None, {}
        served_model = args.model
    else:
        if args.model:
            registry_spec = load_registry().get(args.model)
            path, generation = registry_spec.resolve(), dict(registry_spec.generation)
        else:
            path = write_tiny_gguf(Path(tempfile.mkdtemp()) / "tiny.gguf")
            generation = {"max_tokens": 4096}  # random weights need room to close their strings
        server = LocalServer(path, threads=args.threads).start()
        url, served_model = server.url, None
    if args.max_tokens:
        generation["max_tokens"] = args.max_tokens
    source = {"server": url, **({"served_model": served_model} if served_model else {})}
    spec = ModelSpec("bench", source, generation=generation)
    runs: dict[int, list[dict]] = {level: [] for level in levels}
    try:
        run_once(url, spec, prompt, papers[:1], 1)  # warm-up: load pages, fill the prompt cache
        for repeat in range(args.repeats):
            order = levels[repeat % len(levels):] + levels[: repeat % len(levels)]  # rotate: no fixed position
            for level in order:
                runs[level].append(run_once(url, spec, prompt, papers, level))
                print(f"parallel {level}: {runs[level][-1]['seconds']:.1f} s", file=sys.stderr)
    finally:
        if server:
            server.stop()

    def tok_s(level: int) -> float:
        return statistics.median(r["tok_s"] for r in runs[level])

    print(f"{len(papers)} papers, {args.repeats} repeat(s), server {url}")
    print(f"{'parallel':>8} {'s/paper':>8} {'tok/s':>8} {'vs 1':>6} {'valid':>6}")
    for level in levels:
        seconds = statistics.median(r["seconds"] for r in runs[level]) / len(papers)
        valid = statistics.mean(r["valid"] / r["papers"] for r in runs[level])
        print(f"{level:>8} {seconds:>8.2f} {tok_s(level):>8.1f} {tok_s(level) / tok_s(1):>5.2f}x {valid:>6.0%}")


if __name__ == "__main__":
    main()
