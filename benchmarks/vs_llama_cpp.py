"""localdigest against the peer a user would pick instead: llama.cpp's own llama-server, and
llama.cpp's raw generation rate (llama-batched-bench), built from the llama.cpp that the installed
llama-cpp-python vendors (benchmarks/build_llama_tools.sh, cached), on the same model and papers.

    python benchmarks/vs_llama_cpp.py                          # default model, the 8 papers of 2023-09-22
    python benchmarks/vs_llama_cpp.py --parallel 1 --batch-size 1 --lookahead 0 4
    python benchmarks/vs_llama_cpp.py --in-process-only --batch-size 4 1   # no llama.cpp tools built
    python benchmarks/vs_llama_cpp.py --in-process-only --batch-size 4 1 --days 2023-09-20 2023-09-21 2023-09-22 \
        --papers 26                                            # a longer feed: the 26 papers of three days

Every digest is written from scratch (nothing cached) with the same prompt, grammar and sampling
settings: (a) localdigest in-process, per --batch-size x --lookahead; (b) localdigest --server
against llama-server started with -np N for each --parallel N (one server per N, on 127.0.0.1);
(c) llama-batched-bench's generation rate with 1 and --batch-size sequences, and with one sequence
after a review's prompt length. Prints wall time per digest and effective generated tokens/s, as
ratios against the best llama-server run and against llama.cpp's single-sequence rate; and
in-process, the rate over the decoding steps alone against llama.cpp's at a review's depth; all from
this one run (these machines are noisy).
"""

import argparse
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from localdigest.bench.runner import timed_reviews  # noqa: E402
from localdigest.llm.choose import open_model  # noqa: E402
from localdigest.llm.registry import ModelSpec, load_registry  # noqa: E402
from localdigest.llm.server import ServerModel  # noqa: E402
from localdigest.review.prompts import load_prompt  # noqa: E402
from localdigest.sources.feeds import load_feeds  # noqa: E402
from localdigest.testing.local_server import free_port  # noqa: E402

PAPERS = ROOT / "benchmarks" / "data" / "papers"
FEED = PAPERS / "2023-09-22.json"  # the default day (benchmarks/draft_model.py uses the same papers)
N_CTX = 4096  # per sequence, as localdigest's default entry
DEPTH = 1800  # prompt tokens before a review's answer (default prompt, Qwen's tokenizer: 1808 on average)
# Weights as localdigest loads them in-process, without llama.cpp's repacked copy (LocalModel._load);
# on CPUs with AMX the repacked path also dies of SIGILL in these VMs.
NO_REPACK = ["--no-repack"]


def llama_tools(given: Path | None) -> Path:
    """The folder holding llama.cpp's tools: `given`, else benchmarks/build_llama_tools.sh's cached build."""
    if given:
        return given
    built = subprocess.run([str(ROOT / "benchmarks" / "build_llama_tools.sh")], check=True, capture_output=True,
                           text=True)
    return Path(built.stdout.strip().splitlines()[-1])


def llama_server(tools: Path, model: Path, parallel: int, threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([str(tools / "llama-server"), "-m", str(model), "--host", "127.0.0.1", "--port",
                                str(port), "-c", str(N_CTX * parallel), "-np", str(parallel), "-t", str(threads),
                                "-tb", str(threads), "--no-webui", *NO_REPACK],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"llama-server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    raise SystemExit("llama-server did not become healthy within 120 s")


def batched_bench(tools: Path, model: Path, sequences: list[int], threads: int, prompt: int, generated: int) -> dict:
    """llama-batched-bench's generation tokens/s (S_TG, all sequences together) per sequence count."""
    out = subprocess.run([str(tools / "llama-batched-bench"), "-m", str(model), "-c", str(N_CTX * max(sequences)),
                          "-b", "512", "-ub", "512", "-npp", str(prompt), "-ntg", str(generated),
                          "-npl", ",".join(map(str, sequences)), "-t", str(threads), "-tb", str(threads), *NO_REPACK],
                         capture_output=True, text=True, check=True).stdout
    return parse_batched_bench(out)


def parse_batched_bench(out: str) -> dict[int, float]:
    """{sequences: S_TG tokens/s} from llama-batched-bench's table."""
    rates = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and re.fullmatch(r"\d+", cells[2] or ""):
            rates[int(cells[2])] = float(cells[7])  # PP | TG | B | N_KV | T_PP | S_PP | T_TG | S_TG | T | S
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name (default: the registry's default)")
    parser.add_argument("--papers", type=int, default=8)
    parser.add_argument("--days", nargs="+", default=[FEED.stem], help="days of benchmarks/data/papers, in order")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[1, 4])  # 1: the default model's own
    parser.add_argument("--lookahead", type=int, nargs="+", default=[0])
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tools", type=Path, help="folder with llama-server and llama-batched-bench "
                                                   "(default: build them with benchmarks/build_llama_tools.sh)")
    parser.add_argument("--in-process-only", action="store_true",
                        help="only localdigest in-process, per --batch-size, as ratios against the first")
    args = parser.parse_args()

    tools = None if args.in_process_only else llama_tools(args.tools)
    spec = load_registry().get(args.model)
    path = spec.resolve()
    prompt = load_prompt()
    papers = [p for day in args.days for p in load_feeds([str(PAPERS / f"{day}.json")]).papers][: args.papers]
    rows = []

    def report(name: str, run: dict) -> None:
        rows.append((name, run))
        print(f"  {name}: {run['seconds']:.0f} s, {run['tokens']} tokens, {run['valid']}/{run['papers']} valid",
              file=sys.stderr)

    sizes = sorted(set(args.batch_size) | {1})
    raw = {}
    if tools:
        print("llama-batched-bench ...", file=sys.stderr)
        raw = batched_bench(tools, path, sizes, args.threads, prompt=400, generated=128)
        # One sequence again after a prompt as long as a review's (instructions, worked examples and
        # the paper: ~1800 tokens): each step attends to all of it, so this is the rate to read
        # localdigest's decoding against.
        deep = batched_bench(tools, path, [1], args.threads, prompt=DEPTH, generated=128)[1]
    for parallel in args.parallel if tools else []:
        process, url = llama_server(tools, path, parallel, args.threads)
        try:
            model = ServerModel(ModelSpec("bench", {"server": url}, generation=dict(spec.generation)), url,
                                parallel=parallel)
            timed_reviews(model, prompt, papers[:1], 1)  # warm-up: pages in, shared prefix cached
            report(f"localdigest --server, llama-server -np {parallel}", timed_reviews(model, prompt, papers, parallel))
            model.close()
        finally:
            process.terminate()
            process.wait(30)
    for batch in args.batch_size:
        for lookahead in args.lookahead:
            model = open_model(spec, threads=args.threads, batch_size=batch)
            model.lookahead = lookahead
            timed_reviews(model, prompt, papers[:1], 1)  # same warm-up: the shared prefix evaluated once
            report(f"localdigest in-process, --batch-size {batch}, lookahead {lookahead}",
                   timed_reviews(model, prompt, papers, 1))
            del model  # the next setting loads its own copy; llama.cpp frees this one now

    print(f"model {spec.name}, {len(papers)} papers of {', '.join(args.days)}, {args.threads} threads; "
          f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if not tools:
        print(f"{'how':58} {'wall s':>7} {'tokens':>6} {'tok/s':>6} {'wall vs first':>13} {'tok/s vs first':>14} "
              f"{'decoding tok/s':>14}")
        for name, run in rows:
            print(f"{name:58} {run['seconds']:7.1f} {run['tokens']:6} {run['tok_s']:6.1f} "
                  f"{rows[0][1]['seconds'] / run['seconds']:12.2f}x {run['tok_s'] / rows[0][1]['tok_s']:13.2f}x "
                  f"{run['decoding_tok_s']:14.1f}")
        return
    best_server = min((run for name, run in rows if "--server" in name), key=lambda run: run["seconds"])
    print("llama-batched-bench generation (pp 400, tg 128): " +
          ", ".join(f"{n} seq {rate:.1f} tok/s" for n, rate in sorted(raw.items())))
    print(f"llama-batched-bench, 1 sequence after {DEPTH} prompt tokens: {deep:.1f} tok/s")
    print("tok/s: generated tokens over the wall time; decoding tok/s: over the time of the decoding steps "
          "(prompts' evaluation left out, as in llama.cpp's rate; in-process only)")
    print(f"{'how':58} {'wall s':>7} {'tokens':>6} {'tok/s':>6} {'vs best server':>14} {'vs llama.cpp 1 seq':>18} "
          f"{'decoding tok/s':>14} {f'vs llama.cpp at {DEPTH}':>20}")
    for name, run in rows:
        decoding = run["decoding_tok_s"] if "in-process" in name else 0.0
        print(f"{name:58} {run['seconds']:7.0f} {run['tokens']:6} {run['tok_s']:6.1f} "
              f"{best_server['seconds'] / run['seconds']:13.2f}x {run['tok_s'] / raw[1]:17.2f}x "
              + (f"{decoding:14.1f} {decoding / deep:19.2f}x" if decoding else f"{'-':>14} {'-':>20}"))


if __name__ == "__main__":
    main()
