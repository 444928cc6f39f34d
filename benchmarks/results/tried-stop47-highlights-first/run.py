"""Fresh reviews (no cache) with 亮点 written before 主要工作 (schema order patched). usage: hlfirst.py PROMPT SEED ids..."""
import sys
from localdigest.review import schema as S
props = S._REVIEW_SCHEMA["properties"]
S._REVIEW_SCHEMA["properties"] = {"highlights": props["highlights"], **{k: v for k, v in props.items() if k != "highlights"}}
from localdigest.review.checks import overlap
from localdigest.cli.common import load_papers, open_engine
from localdigest.cli.bench import BENCH_DATA
from localdigest.review.pipeline import make_digest
from localdigest.review.prompts import load_prompt
prompt, seed, ids = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
papers = [p for p in load_papers([str(BENCH_DATA / "papers")], None, None, None, False) if p.arxiv_id in ids]
model = open_engine(None, server=None, api_key=None, threads=None, ctx=None, gpu_layers=0, batch_size=None, parallel=1, papers=len(papers))
p = load_prompt(prompt)
print(list(p.schema()["properties"]))
d = make_digest(papers, model=model, prompt=p, cache=None, seed=seed)
for r in d.results:
    c = r.cost or {}
    print(f"## {r.paper.arxiv_id} {r.paper.title[:50]} attempts={c.get('attempts')} sent_back={c.get('sent_back_for')} "
          f"steps={c.get('all_completion_tokens',0)-c.get('all_forced_tokens',0)} s={c.get('all_seconds',0):.1f}")
    print("FLAGS:", list(r.flags))
    if r.review:
        print(f"overlap {overlap(r.review.highlights, r.review.main_work):.2f}")
        print("主要工作:", r.review.main_work); print("亮点:", r.review.highlights)
        print("kw:", "; ".join(f"{k.en} ({k.zh})" for k in r.review.keywords))
        for k, v in r.review.scores().items(): print(f"  {k} {v.score}: {v.reason}")
    print(flush=True)
