"""Keywords (and what follows) drawn again from each stored review's 主要工作 + 亮点, with the repetition
penalty as is (arm 'as-is') or off inside keyword values ('no-penalty'); paired keyword F1 vs GPT-4.
usage: kwpen.py CACHE SEED > out.json"""
import json, sys, pathlib
from localdigest.llm import sampling
from localdigest.cli.common import load_papers, open_cache, open_engine
from localdigest.cli.bench import BENCH_DATA
from localdigest.bench.references import load_references
from localdigest.bench.metrics import set_f1
from localdigest.review.pipeline import Reviewer, paper_text
from localdigest.review.checks import repair
from localdigest.review.prompts import load_prompt
from localdigest.review.schema import Review
cache, seed = sys.argv[1], int(sys.argv[2])
papers = load_papers([str(BENCH_DATA / "papers")], None, None, None, False)
refs = load_references(BENCH_DATA / "references")
model = open_engine(None, server=None, api_key=None, threads=None, ctx=None, gpu_layers=0, batch_size=None, parallel=1, papers=1)
rev = Reviewer(model, load_prompt("default"), open_cache(pathlib.Path(cache)), seed=seed)
orig = sampling.JsonCursor.at_number
KW = frozenset({b"en", b"zh"})
out = []
for paper in papers:
    hit = rev.cache.get(rev.key(paper))
    if hit is None or paper.arxiv_id not in refs:
        continue
    r = hit.review
    start = ('{"main_work": ' + json.dumps(r.main_work, ensure_ascii=False) + ', "highlights": '
             + json.dumps(r.highlights, ensure_ascii=False) + ', "keywords": [{"en": "')
    row = {"id": paper.arxiv_id, "stored": [k.en for k in r.keywords], "ref": [k[0] for k in refs[paper.arxiv_id].keywords],
           "ref_zh": [k[1] for k in refs[paper.arxiv_id].keywords], "stored_zh": [k.zh for k in r.keywords]}
    for arm in ("as-is", "no-penalty"):
        sampling.JsonCursor.at_number = orig if arm == "as-is" else (lambda self: orig(self) or self.inside(KW))
        job = rev._job(paper, *rev._format_for([paper]))
        c = rev.model.complete_many([job.conversation], job.answer_format, seed=seed, starts=[start])[0]
        try:
            new = repair(Review.from_json(c.text), paper_text(paper))
            row[arm + "_text"] = c.text
            row[arm] = [k.en for k in new.keywords]; row[arm + "_zh"] = [k.zh for k in new.keywords]
        except Exception as exc:
            row[arm] = None; row[arm + "_err"] = str(exc)[:200]
        row[arm + "_steps"] = c.completion_tokens - c.forced_tokens
    for arm in ("stored", "as-is", "no-penalty"):
        if row.get(arm) is not None:
            row[arm + "_f1"] = set_f1(row[arm], row["ref"])
            row[arm + "_f1zh"] = set_f1(row[arm + "_zh"] if arm != "stored" else row["stored_zh"], row["ref_zh"])
    print(json.dumps(row, ensure_ascii=False), flush=True)
