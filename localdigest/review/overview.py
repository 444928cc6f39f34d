"""今日速览: a short paragraph on top of the digest, written by the same local model from the day's reviews.

It is constrained like a review (a grammar: one JSON string of 2-5 Chinese sentences, each closed)
and checked like one. Its own check is the one that matters most: a small model asked to name the
papers to read first may name a paper that is not in the digest, so every Latin-script name in the
paragraph (LongLoRA, GPT-4, LLaMA2) must occur in the day's titles or reviews. An answer that fails is
asked again once with the problem stated; then the digest goes without an overview (and says why
on stderr) rather than with a wrong one. Overviews are cached by the reviews they summarise.
"""

import hashlib
import json
import re
from dataclasses import dataclass

from localdigest.errors import PromptRejected, ReviewInvalid
from localdigest.llm.base import AnswerFormat, ReviewModel
from localdigest.review import checks
from localdigest.review.cache import ReviewCache
from localdigest.review.grammar import schema_to_gbnf
from localdigest.review.pipeline import BASE_SEED, PaperResult, with_warnings
from localdigest.review.schema import CONTROL, OVERVIEW_SCHEMA as SCHEMA, PROSE

OVERVIEW_VERSION = 1  # in the cache key: bump when the prompt, schema or checks below change
# A name a reader would look up: a Latin word with a capital after its first letter or a digit
# (LongLoRA, GPT-4, LLaMA2, DreamLLM, 3D), or an all-caps acronym of 3+ letters.
NAME = re.compile(r"(?<![A-Za-z0-9\-])(?:[A-Za-z][a-z]*[A-Z0-9][A-Za-z0-9\-.]*[A-Za-z0-9]|[A-Z]{3,})(?![A-Za-z0-9])")
# Shorter than this, an overview cannot name a direction and 2-3 papers with a reason, as SYSTEM asks
# (the tiny model's random "犊*U>˨。掘H。" is 9 characters; Qwen 1.5B writes 100-200).
MIN_CHARS = 30
MAX_PAPERS = 30  # in the prompt: enough for a day of Hugging Face papers, short enough for the context
SYSTEM = """你是一名资深的人工智能研究员。下面是今天的论文速览列表（每篇：编号、简称、标题、推荐度、主要工作）。
请写一段“今日速览”：2-4 句话，约 100-200 字。先概括今天论文的主要方向（例如长上下文、多模态、数学推理），
再点出最值得先读的 2-3 篇，用列表中给出的简称称呼论文，并说明理由。
要求：只输出一个 JSON 对象 {"overview": "..."}；全部用简体中文（论文简称保留英文）；第三人称，不用“我们”“我”；
只提列表中的论文，不要编造论文名、数字或结论；每句以句号结尾。"""


@dataclass(frozen=True)
class Overview:
    text: str | None  # None: the model's answers failed the checks
    problem: str | None = None  # why there is none
    cached: bool = False


def short_name(title: str) -> str:
    """What a reader calls a paper: the part of its title before a colon ("LongLoRA"), else the title."""
    head = title.split(":", 1)[0].strip()
    return head if ":" in title and 0 < len(head) <= 40 else title.strip()


def write_overview(model: ReviewModel, results: list[PaperResult], cache: ReviewCache | None) -> Overview | None:
    """The day's overview from its reviews; None when fewer than two papers were reviewed."""
    reviewed = [r for r in results if r.review is not None][:MAX_PAPERS]
    if len(reviewed) < 2:
        return None
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": _listing(reviewed)}]
    key = _key(model, messages)
    if cache is not None and (text := cache.get_text(key)) is not None and not problems(text, reviewed):
        return Overview(text, cached=True)
    # Chinese prose like a review's: no untranslated English word, but the papers' names.
    answer = AnswerFormat(schema_to_gbnf(SCHEMA), SCHEMA, avoid=checks.NEVER_WRITE, chinese_keys=("overview",),
                          english_words=checks.english_words("\n".join(r.paper.title for r in reviewed), titles=True))
    found: list[str] = []
    for attempt in range(2):
        asked = with_warnings(messages, "写的今日速览", found) if found else messages
        try:
            completion = model.complete_many([asked], answer, seed=BASE_SEED + attempt)[0]
        except PromptRejected as exc:  # a server's context is too small for the day's list
            return Overview(None, problem=exc.one_line())
        try:
            text = _parse(completion.text)
        except ReviewInvalid as exc:
            found = [f"回答不是要求的 JSON（{exc.message}）"]
            continue
        found = problems(text, reviewed)
        if not found:
            if cache is not None:
                cache.put_text(key, text, model=model.describe())
            return Overview(text)
    return Overview(None, problem="; ".join(found))


def problems(text: str, reviewed: list[PaperResult]) -> list[str]:
    """What is wrong with an overview of these reviews (Chinese, for the model; short enough for a log)."""
    known = " ".join(f"{r.paper.title} {r.review.main_work} {r.review.highlights} "
                     + " ".join(k.en for k in r.review.keywords) for r in reviewed).casefold()
    invented = [name for name in dict.fromkeys(NAME.findall(text)) if name.casefold() not in known]
    found = []
    if invented:
        found.append(f"提到了列表中没有的名字：{'、'.join(invented[:5])}")
    if checks.FIRST_PERSON.search(text):
        found.append("用了第一人称")
    if checks.cjk_share(text) < checks.MIN_CJK_SHARE:
        found.append("不是中文")
    if checks.is_loop(text):
        found.append("在重复同样的内容")
    if checks.garbled(text):
        found.append("有乱码")
    if checks.cut_off(text, PROSE["overview"]):
        found.append("句子被截断")
    if len(text) < MIN_CHARS:
        found.append(f"太短（{len(text)} 字），请写 2-4 句、约 100-200 字")
    return found


def _listing(reviewed: list[PaperResult]) -> str:
    lines = []
    for i, result in enumerate(reviewed, 1):
        review = result.review
        lines.append(f"[{i}] 简称：{short_name(result.paper.title)}；标题：{result.paper.title}；"
                     f"推荐度：{review.recommendation.score:g}；主要工作：{review.main_work}")
    return "\n".join(lines)


def _parse(text: str) -> str:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReviewInvalid(f"not JSON ({exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("overview"), str) or not data["overview"].strip():
        raise ReviewInvalid("no overview text")
    if CONTROL.search(data["overview"]) or len(data["overview"]) > SCHEMA["properties"]["overview"]["maxLength"]:
        raise ReviewInvalid("a control character, a line break or too long")
    return data["overview"].strip()


def _key(model: ReviewModel, messages: list[dict]) -> str:
    material = {"overview": OVERVIEW_VERSION, "model": model.identity(), "messages": messages,
                "generation": model.generation.as_dict(), "seed": BASE_SEED}
    return "overview:" + hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
