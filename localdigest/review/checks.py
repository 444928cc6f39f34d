"""Checks on a schema-valid review: what a reader would catch that the grammar cannot.

Each problem is a short Chinese-free English line for the log plus a Chinese instruction that
is sent back to the model when the answer is retried ("your answer copied the example; …").
Severe problems (a copy of the worked example, a loop, nothing said) mean the review is not
shown at all; the others are retried and, if they persist, shown with the review as flags.

Bump CHECKS_VERSION when a check changes: it is part of the cache key, so a review that today's
checks would send back is never served from the cache.
"""

import re
import unicodedata
from dataclasses import dataclass, replace
from functools import cached_property

from localdigest.review.schema import MAX_CHARS, PROSE, SCORE_DIMENSIONS, SENTENCE_END, Keyword, Review
from localdigest.review.terms import normalise_keyword, standard_prose, standard_terms
from localdigest.text import CJK, compact_origins, copied_run, weight
from localdigest.text import compact as _norm

# 15: 个 read between a number and its scale, numbers in words read in the paper; and 主要工作's floor
# (review.schema.FLOORS), which changes what is sampled, not what is checked: drawn again all the same.
# 16: worked examples' runs turned away while sampling (sampling.Copies) and their Chinese keywords
# avoided where the paper has no English for them (example_terms): what is sampled, drawn again.
# 17: no repetition penalty on a score (sampling.GrammarFirstSampler._penalised), and no open-source
# claim the paper does not make (OPEN_WORDS): what is sampled and checked, drawn again.
# 18: a plain number of four digits or more that the paper does not give (PLAIN_NUMBER), and a size
# other than the one in the paper's name given right after it (NAME_SIZE): asked again.
# 19: a 亮点 closed at the sentence end where it already repeats 主要工作 (said_already): what is
# sampled, drawn again.
CHECKS_VERSION = 19
MIN_DISTINCT_NGRAMS = 0.5  # below this share of distinct 4-character sequences, a text is a loop
COPY_RUN = 10  # characters in a row shared with a worked example (and not in the paper) is a copy
# A Latin letter counts half: "fine-tunin" is one English term any paper may use (measured: a
# MetaMath review dropped for it), so an English run must be 20 long, a mixed one in between.
# Where a local model is kept from writing such a run at all (AnswerFormat.copy_keys, sampling.Copies):
# the prose. Keywords are left to the check: a Latin keyword may be the paper's own term (_own_term),
# which only the whole keyword shows.
COPY_KEYS = ("main_work", "highlights", "reason")
MAX_OVERLAP = 0.5  # share of 亮点's 8-character runs found in 主要工作: it says nothing new
# What the reader is told of a 亮点 that repeats 主要工作: the digest leaves it out (output.render,
# publish.site). Why: in all 30 such reviews of stop 45's bench (104) every sentence of 亮点 said again
# what 主要工作 says, even the sentences under the line on their own (LMSYS-Chat-1M's "包含1M条真实对话…
# 25个最先进的 LLM", 0.26); five ways to have the model write something new only moved the wording
# (README, Prompts), so the reader is spared the second reading instead. The JSON keeps it.
HIGHLIGHTS_LEFT_OUT = "亮点只是重复了主要工作，已从略"
MIN_CJK_SHARE = 0.3  # of the letters in a Chinese field; GPT-4's fields are 0.6-0.9
# 主要工作 shorter than this says what the paper is about, not what it found (GPT-4's: 76-335
# characters, median 188). Measured on Qwen2.5-Coder 1.5B, 26 papers: 3 answered one sentence of
# 45-73 characters (RMT: "本文提出了 RMT，一种…视觉骨干网络。"), following the one-sentence worked examples;
# asked again with that said, all three wrote three sentences with the results (165-266 characters).
# A local model's grammar now asks for two sentences at least (schema.PROSE); the check stays for
# servers, whose JSON-schema converters may not enforce the pattern, and for two very short sentences.
MIN_MAIN_WORK = 90
FIRST_PERSON = re.compile(r"我们|(?<![自忘])我(?![国])|笔者|\b[Ww]e\b")
# What a local model is never allowed to write: tokens starting with 我 or 笔者 (自我 is one token of
# its own), and the English "we" as a whole token (measured: "然后， we介绍了…" in a 主要工作).
NEVER_WRITE = ("我", "笔者", "we", "We")
# The JSON keys whose values are Chinese prose (主要工作, 亮点, the reasons, a keyword's Chinese): a
# local model begins no English word in lower case or Capitalised there (AnswerFormat.chinese_keys),
# so it writes 幻觉, not "hallucination" or "Hallucination"; but the words below, which Chinese ML
# writing keeps as they are, and the names the paper itself spells (english_words).
CHINESE_KEYS = ("main_work", "highlights", "reason", "zh")
ENGLISH_KEPT = ("token", "tokens", "Transformer", "GitHub", "Markdown")  # as Chinese ML writing keeps them
LOWER_WORD = re.compile(r"(?<![A-Za-z0-9])[a-z][A-Za-z0-9\-_.]*[A-Za-z0-9]")
CAPITAL_WORD = re.compile(r"(?<![A-Za-z0-9])[A-Z][a-z][A-Za-z0-9\-_.]*[A-Za-z0-9]")
INNER_NAME = re.compile(r"\d|[a-z][A-Z]")  # DreamLLM, LongLoRA, Kosmos-2.5 (not Chain-of-Verification)
SENTENCE_START = re.compile(r"(?:^|[.!?:]\s+|\n\s*)[\"'(\[]?$")  # what comes before a sentence's first word
# seq2seq, wav2vec, arXiv, mT5, llama.cpp: a digit, a capital, an underscore or a dotted part of two
# letters or more (not "e.g", "i.e").
LOWER_NAME = re.compile(r"[A-Z0-9_]|\.[a-z]{2}")
# No run of this many tokens twice in one review (AnswerFormat.no_repeat; 0: off). Tried at 10 on
# Qwen2.5-Coder 1.5B, 26 papers: flags fell from 0.69 to 0.27, but by dodging the checks, not by
# writing something new: 亮点 became 主要工作 with words swapped (编撰→编译), and names the ban cut
# into came out wrong ("LMSYS-Chat-10M", "LMSYS-Chat-1м", "BTLM-3B-8 K"). Off until a ban knows names.
NO_REPEAT = 0
# A score's reason is written, not copied from 主要工作/亮点: a local model is turned aside from a long
# run of the answer's own earlier words there (AnswerFormat.fresh_keys, sampling.Restating); the
# check below (a reason repeating 主要工作/亮点) reads every answer as before.
FRESH_KEYS = ("reason",)
# 主要工作 says what the paper did and found, not the abstract's background: a local model begins no
# sentence there with these (AnswerFormat.avoid_openings, sampling.Openings). GPT-4 begins one of
# its 283 主要工作 sentences in the 85 reference reviews with one (虽然); Qwen2.5-Coder 1.5B began 14
# in 78 of stop 34's bench reviews with them ("近年来，机器学习社区对…感兴趣", "然而，训练此类模型假设…",
# "通常，训练 LLMs 时…", "由于 LLM 没有内置布局编码…", "例如，将上下文长度设置为 8192…"); with them
# turned away, none of 52 (stop 35), and 4 opened with background in other words (README, Prompts).
# The words change what is sampled, not what is checked, but they are in CHECKS_VERSION (13, 14) all
# the same: a cached review drawn before them is drawn again.
OPENING_KEYS = ("main_work",)
# Turned away from one, it took the next ("在最近几年中，", "在通常情况下，", "比如，", "虽然现有的…"
# in a trial on 4 papers), so the list has those too; and from stop 35's 52 bench reviews,
# "不过，大多数强大的 LLMs 是封闭源的…" (Baichuan 2) and "在最新的几年里，…" (checks version 14).
BACKGROUND_OPENINGS = ("近年", "近来", "最近", "如今", "当前", "目前", "过去", "然而", "但", "通常", "一般", "由于",
                       "因为", "鉴于", "随着", "现有", "已有", "传统", "例如", "比如", "许多", "大多数", "虽然",
                       "尽管", "不过", "可是", "在最近", "在最新", "在近", "在过去", "在通常", "在现有", "在传统",
                       "在许多", "在大多数")
PROSE_FIELDS = {"main_work": "主要工作", "highlights": "亮点"}
# "7B" in an abstract is 70 亿 parameters; Qwen2.5-Coder 1.5B wrote "7 亿和 13 亿参数" for Baichuan 2's
# 7B and 13B, even when told to keep the numbers as written, and "1000 万" for 1M. A number that is
# wrong by 10x is worse than none. (pattern, the paper's suffix, Chinese unit, right factor, wrong ones)
SCALES = (
    (re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(?:B\b|billion\b)"), "B", "亿", 10, (1,)),
    (re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(?:M\b|million\b)"), "M", "万", 100, (1, 1000)),
)


def english_words(paper_text: str, titles: bool = False) -> tuple[str, ...]:
    """The English words (in lower case, or Capitalised) a review of the paper whose title + abstract
    is `paper_text` may begin in its Chinese: ENGLISH_KEPT, the paper's own lower-case names
    (LOWER_NAME), and its Capitalised words that are names: with a capital or digit inside (DreamLLM,
    Kosmos-2.5), or Capitalised in the abstract where no sentence starts (Languini Kitchen, Stable
    Diffusion). A title's words are title case, and an abstract's first words are any word: neither
    makes "Portraits" or "Recent" a name. With `titles` (a list of titles, one a line, for 今日速览,
    which names the papers: "Baichuan 2", "Languini Kitchen") every Capitalised word counts."""
    abstract = paper_text.partition("\n")[2]
    names = {word for word in LOWER_WORD.findall(paper_text) if LOWER_NAME.search(word)}
    capitals = {word for word in CAPITAL_WORD.findall(paper_text) if titles or INNER_NAME.search(word)}
    capitals |= {match.group() for match in CAPITAL_WORD.finditer(abstract)
                 if not SENTENCE_START.search(abstract[:match.start()])}
    return ENGLISH_KEPT + tuple(sorted(names | capitals))


@dataclass(frozen=True)
class Problem:
    text: str  # for the log and the digest's flag
    feedback: str  # what the model is told when it is asked again
    severe: bool = False  # never shown: worse than no review
    # Worth a new answer. Measured on Qwen2.5-Coder 1.5B (4 papers, 3 attempts each): a sentence cut
    # at its cap, a copied score triple or a 亮点 that repeats 主要工作 came back just the same, at
    # two to three times the generation time; those are flagged for the reader instead. A reason
    # that restates 主要工作/亮点 is asked again since answers go on from the field at fault (only
    # the reasons are written again): on 26 papers x 2 seeds, flagged reviews 0.44 -> 0.35 (README).
    ask_again: bool = True
    # Where in the answer the trouble starts ("main_work", "keywords", "scores.innovation"; "" for
    # the whole answer): asked again, a local model keeps what comes before it and writes on from there.
    field: str = ""
    # What the digest's reader is told, in the digest's language (the text above is for the log and
    # the JSON, the feedback for the model): a Chinese reader of a Chinese digest got English flags.
    note: str = ""

    @property
    def for_reader(self) -> str:
        return self.note or self.text

    @property
    def kind(self) -> str:
        """The problem without its particulars, for counting: "main_work is too short",
        "the innovation reason repeats 主要工作/亮点", "misreads a number"."""
        if self.text.startswith(("writes ", "misreads the size in")):
            return "misreads a number"
        return self.text.split(" (")[0].split(":")[0]


@dataclass(frozen=True)
class Example:
    """What a prompt's worked example said, for spotting it in other papers' reviews."""

    texts: tuple[str, ...]  # every string of the example's answer
    scores: tuple[float, float, float]
    keywords: tuple[Keyword, ...] = ()
    reasons: tuple[str, ...] = ()  # its score reasons, in SCORE_DIMENSIONS' order
    openings: tuple[str, ...] = ()  # what the prompt makes every reason open with (its `openings`)


def problems(review: Review, examples: list[Example] = (), paper_text: str = "") -> list[Problem]:
    """Everything wrong with a review of the paper whose title + abstract is paper_text."""
    found = []
    prose = {**{name: getattr(review, name) for name in PROSE_FIELDS},
             **{f"{name} reason": score.reason for name, score in review.scores().items()}}
    copied = _copied_from_examples(review, examples, paper_text)
    if copied:
        run, where = copied
        found.append(Problem(f"copies the worked example ({run!r})",
                             f"你照抄了示例中的句子（“{run}”）。示例只演示格式，请只根据这篇论文的标题和摘要重写。",
                             severe=True, field=where))
    for name, text in prose.items():
        if is_loop(text):
            found.append(Problem(f"{name} repeats itself", f"{name} 在重复同样的内容，请写通顺、不重复的句子。",
                                 severe=True, field=_field(name)))
    for name, label in PROSE_FIELDS.items():
        text = getattr(review, name)
        if FIRST_PERSON.search(text):
            found.append(Problem(f"{name} is in the first person",
                                 f"{label}用了第一人称（我们/我）。请用第三人称客观叙述，例如“本文提出……”。", field=name,
                                 note=f"{label}用了第一人称"))
    for name, label in PROSE_FIELDS.items():
        repeated = _repeated_sentence(getattr(review, name))
        if repeated:
            twice = f"{label}把同一句话写了两遍（“{repeated[:30]}”）"
            found.append(Problem(f"{name} says one sentence twice ({repeated[:30]!r})",
                                 f"{twice}。请删去重复，每句写不同的内容。", field=name, note=twice))
    if len(review.main_work) < MIN_MAIN_WORK:
        found.append(Problem(f"main_work is too short ({len(review.main_work)} characters)",
                             "主要工作太短，只说了论文做什么。请用 2-3 句话写清本文研究的问题、提出的方法和得到的结果，约 120-200 字。",
                             field="main_work", note=f"主要工作偏短（{len(review.main_work)} 字）"))
    numbers = NumberChecks(paper_text)
    for name, text in prose.items():  # the first field with a misread number: the rest were written after it
        if misread := numbers.problem(name, text):
            found.append(misread)
            break
    not_chinese = [name for name, text in prose.items() if cjk_share(text) < MIN_CJK_SHARE]
    if not_chinese:
        found.append(Problem(f"not written in Chinese: {', '.join(not_chinese)}",
                             "部分字段不是中文。除专有名词外，请全部用简体中文写。", field=_field(not_chinese[0]),
                             note=f"{'、'.join(map(_label, not_chinese))}不是用中文写的"))
    for name, text in prose.items():
        if cut_off(text, PROSE["reason" if name.endswith("reason") else name]):
            found.append(Problem(f"{name} is cut off", f"{name} 的句子太长，被截断了。请写得更短，用完整的句子并以句号结尾。",
                                 ask_again=False, field=_field(name), note=f"{_label(name)}的句子被截断了"))
    distinct_en = len({_norm(k.en) for k in review.keywords})
    if distinct_en < len(review.keywords) or len({_norm(k.zh) for k in review.keywords}) < len(review.keywords):
        severe = distinct_en == 1
        found.append(Problem("all five keywords are the same" if severe else "duplicate keywords",
                             "关键词有重复。请给出 5 个不同的核心关键词。", severe=severe, ask_again=severe,
                             field="keywords", note="关键词有重复"))
    if highlights_repeat(review):
        found.append(Problem("highlights repeat 主要工作",
                             "亮点几乎是主要工作的重复。亮点应写主要工作之外的具体内容：关键设计、实验数字或公开资源。",
                             ask_again=False, field="highlights", note=HIGHLIGHTS_LEFT_OUT))
    for unsaid, claim, hint, said in (
            (_unsaid_code(prose, paper_text), "code is available", "摘要没有说公开代码。请不要说有代码可用", "有代码可用"),
            (_unsaid_open(prose, paper_text), "it is open source", "摘要没有说开源或公开发布。请不要说开源", "开源")):
        if unsaid:
            name, clause = unsaid
            found.append(Problem(f"says {claim}, which the abstract does not ({clause!r})",
                                 f"{hint}，只写摘要里确有的模型、数据、方法或结论。", ask_again=False, field=_field(name),
                                 note=f"{_label(name)}说{said}（“{clause}”），摘要并没有这样说"))
    if moved := _figure_moved(prose, paper_text):
        name, clause, figure, sizes, given = moved
        found.append(Problem(f"misattributes a figure: {figure}% to {sizes}, which the abstract gives with {given} ({clause!r})",
                             f"摘要里的 {figure}% 说的是 {given}，不是 {sizes}。请照原文写清这个数字说的是谁。", ask_again=False,
                             field=_field(name), note=f"{_label(name)}把摘要里与 {given} 有关的 {figure}% 写到了 {sizes} 上（“{clause}”）"))
    summary = review.main_work + review.highlights
    for name, score in review.scores().items():
        # A reason that restates 主要工作/亮点 says what the paper does, not why it earns the score
        # (seen: LongLoRA's 实用性 reason was its 主要工作's first sentence, word for word).
        if overlap(score.reason, summary) >= MAX_OVERLAP:
            found.append(Problem(f"the {name} reason repeats 主要工作/亮点",
                                 f"{SCORE_DIMENSIONS[name]}的理由照搬了主要工作或亮点。理由应说明本文凭什么得这个分数。",
                                 field=f"scores.{name}", note=f"{SCORE_DIMENSIONS[name]}的理由重复了主要工作或亮点"))
    reasons = [score.reason for score in review.scores().values()]
    if len(set(reasons)) < len(reasons):
        found.append(Problem("two score reasons are identical",
                             "三项评分的理由相同。请分别说明实用性、创新性和推荐度各自的理由。", ask_again=False,
                             field="scores", note="有两项评分的理由完全相同"))
    copied = {problem.field for problem in found if problem.severe}  # a copy is not a frame as well
    if framed := _example_frame(review, examples, paper_text, copied):
        name, pieces = framed
        framing = f"{SCORE_DIMENSIONS[name]}的理由套用了示例的句式（“{'…'.join(pieces)}”）"
        found.append(Problem(f"the {name} reason is the worked example's sentence ({'…'.join(pieces)!r})",
                             f"{framing}。请根据这篇论文自己的内容说明理由。", ask_again=False, field=f"scores.{name}",
                             note=framing))
    values = tuple(score.score for score in review.scores().values())
    if all(value == 0 for value in values):
        found.append(Problem("every score is 0", "三项分数都是 0。请根据论文本身认真打分。", severe=True))
    elif any(values == example.scores for example in examples):
        triple = "/".join(f"{v:g}" for v in values)
        found.append(Problem(f"the scores {triple} are exactly the worked example's",
                             "三项分数与示例完全相同。请根据这篇论文自己的价值独立打分。", ask_again=False,
                             field="scores", note=f"三项分数 {triple} 与提示词的示例完全相同"))
    return found


# Code a review says a reader can use, against an abstract that announces none. Measured on
# Qwen2.5-Coder 1.5B, the 26 bench papers x 2 seeds (`default`): 10 of 52 reviews did it, mostly in the
# practicality reason the prompt opens with 能拿来用的是 ("能拿来用的是 RMT 模型及其推理代码": RMT's
# abstract ends "Our work is still in progress"). A local model is kept from writing the words
# there (never_write); a server's answer is flagged, not asked again: a reader must know. "的实现"
# (the implementation) because with 代码 banned the model offered the implementation instead in 3 of
# those 7 reviews ("能拿来用的是优势模型和选择性重演的实现"; the third, "架构和实现", is not caught:
# 和实现 is as often the verb); the verb (实现了, 难以实现) is not preceded by 的. "开源实现" (an
# open-source implementation) since stop 32: with links no longer counting as code (stop 31),
# LLM-Grounder's review at seed 7 offered "LLM-Grounder 的开源实现" (的 + 开源实现 gets past 的实现).
CODE_WORDS = ("代码", "源码", "的实现", "开源实现")
SAYS_CODE = re.compile("|".join(CODE_WORDS))
# A paper announces code when it says "code" (a release, or its topic: a paper on code generation
# keeps 代码) or links a code host. Not a link, a release or "open-source" as such (checks version
# 10): they are as often a project page (Q-Transformer's qtransformer.github.io), a dataset
# (LMSYS-Chat-1M's "publicly available at huggingface.co/datasets/…"), checkpoints or weights
# (Baichuan 2's "release all pre-training model checkpoints", BTLM's "open-source language model") or
# other people's models ("other open-source models"), and with them counted as code, 7 of the 52
# bench reviews at stop 30 offered code that 4 abstracts never announce ("能拿来用的是 LLM-Grounder 的
# 代码和视频", "Baichuan 2 … 提供了开放源代码", "CoDyNeRF 的代码和项目页面").
ANNOUNCES_CODE = re.compile(r"\bcode(?:base)?s?\b|github\.com|gitlab\.com", re.IGNORECASE)
# "Implemented with only two lines of code" (LongLoRA; FreeU: "a few lines of code") says how small a
# change is, not that code is out, yet the review in the quick start's digest offered "能拿来用的是
# LongLoRA 的代码和预训练模型". It still counts as announcing code for the ban, because the same
# review's faithful "移位短注意力只需两行代码即可实现" needs the word (tried: banning it failed that
# test); the claim in the practicality reason is flagged instead (_unsaid_code).
LINES_OF_CODE = re.compile(r"\blines? of code\b", re.IGNORECASE)
# An open-source release a review offers, against a paper that says nothing of one. Qwen2.5-Coder
# 1.5B read FoleyGen's "an open-domain V2A generation system" as "能拿来用的是 FoleyGen 的开源系统" and
# LLM-Grounder's project page as "开源项目网站" (stop 43's bench, 2 of 52 reviews): a reader goes looking
# for a release that is not there. Any word of a release, of open source (the paper's or other
# people's models) or of code lets the words through, as ANNOUNCES_CODE does for code.
OPEN_WORDS = ("开源", "开放源")
SAYS_OPEN = re.compile("|".join(OPEN_WORDS))
ANNOUNCES_OPEN = re.compile(r"open[- ]?sourc|\breleas|publicly available|\bcode(?:base)?s?\b|github\.com|gitlab\.com",
                            re.IGNORECASE)


def announces_release(paper_text: str) -> bool:
    """Whether the paper (title + abstract + code link) speaks of a release, of open source or of
    code: then a reader may be offered what it puts out (a prompt's `openings`), else what can be
    learned from it (its `openings_without_release`). "Only two lines of code" says how small a
    change is, not that anything is out (LongLoRA, FreeU): the open-source ban holds there."""
    return bool(ANNOUNCES_OPEN.search(LINES_OF_CODE.sub("", paper_text)))


def never_write(paper_text: str) -> tuple[str, ...]:
    """What a local model never writes in a review of the paper(s) whose title + abstract is
    `paper_text`: NEVER_WRITE, CODE_WORDS unless the paper announces code (a paper about code
    generation says "code" and keeps them), and OPEN_WORDS unless it speaks of a release or of
    open source."""
    words = NEVER_WRITE
    if not ANNOUNCES_CODE.search(paper_text):
        words += CODE_WORDS
    if not announces_release(paper_text):
        words += OPEN_WORDS
    return words


def _unsaid_code(prose: dict[str, str], paper_text: str) -> tuple[str, str] | None:
    """(field, the clause) of the first claim of usable code in the review's `prose` (problems()'
    names) when the paper's title and abstract announce none; 主要工作 is not read. Where their
    only code is "lines of code", only the practicality reason (what a reader can use) is read: the
    rest may say 代码 as the paper does."""
    if not paper_text or ANNOUNCES_CODE.search(LINES_OF_CODE.sub("", paper_text)):
        return None
    if ANNOUNCES_CODE.search(paper_text):  # its only code: "lines of code"
        fields = {"practicality reason": prose["practicality reason"]}
    else:
        fields = {name: text for name, text in prose.items() if name != "main_work"}
    return _first_clause(fields, SAYS_CODE)


def _unsaid_open(prose: dict[str, str], paper_text: str) -> tuple[str, str] | None:
    """(field, the clause) of the first open-source claim in the review's `prose` when the paper's
    title and abstract speak of no release, open source or code; a clause that offers code is the
    code check's (_unsaid_code), not read twice."""
    if not paper_text or announces_release(paper_text):
        return None
    return _first_clause(prose, SAYS_OPEN, unless=SAYS_CODE)


# A figure the paper gives of one comparison, written of another: BTLM-3B-8K "outperforms all
# existing 3B parameter models by 2-5.5%", and its 亮点 at seed 1 (stops 48 and 49) has "比 7B参数的
# 模型性能高出 2 到 5.5%" (7B models are the ones the abstract has it "competitive with"). Read: a
# percentage in a clause that names a model size (NAME_SIZE), where the paper's sentences with that
# percentage name sizes, none of them that one. Over the 44 bench draws of 26 papers kept from stops
# 41-49 (~1,100 reviews) it finds that clause only. A flag, not asked again: one answer in 104 asked
# again from 亮点 costs ~2.4 decoding steps per paper, and the steps are 2.5 under issue 13's line.
PERCENT = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*%")
PAPER_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n")


def _figure_moved(prose: dict[str, str], paper_text: str) -> tuple[str, str, str, str, str] | None:
    """(field, clause, the percentage, the clause's sizes, the paper's) of the first clause of the
    review's `prose` that gives a paper's percentage to a model size the paper gives it with none of."""
    sentences = PAPER_SENTENCE.split(paper_text)
    for name, clause in _clauses(prose):
        sizes = set(NAME_SIZE.findall(clause))
        for figure in PERCENT.findall(clause) if sizes else ():
            same = re.compile(rf"(?<![\d.]){re.escape(figure)}\s*%")
            given = {size for sentence in sentences if same.search(sentence) for size in NAME_SIZE.findall(sentence)}
            if given and not sizes & given:
                return name, clause, figure, _sizes(sizes), _sizes(given)
    return None


def _sizes(sizes: set[str]) -> str:
    return "、".join(f"{size}B" for size in sorted(sizes, key=float))


def _first_clause(fields: dict[str, str], pattern: re.Pattern, unless: re.Pattern | None = None):
    """(field, clause) of the first clause of `fields`' texts that `pattern` finds and `unless` does not."""
    return next(((name, clause) for name, clause in _clauses(fields)
                 if pattern.search(clause) and not (unless and unless.search(clause))), None)


def _clauses(fields: dict[str, str]):
    """(field, clause) for each clause of `fields`' texts, in order, stripped."""
    for name, text in fields.items():
        for clause in re.split(f"[，；、{SENTENCE_END}]", text):
            yield name, clause.strip()


class NumberChecks:
    """The number checks for one paper (its title + abstract, `paper_text`): a number it gives in
    billions or millions written at the wrong Chinese scale, or a number at a Chinese scale it does
    not give. Built once per paper: its number tables, and the write-back patterns of
    fix_numbers/fix_counted (compiled on first use)."""

    def __init__(self, paper_text: str):
        self.paper_text = paper_text
        self.wrong, self.given = _wrong_numbers(paper_text), paper_numbers(paper_text)
        title, _, abstract = paper_text.partition("\n")
        self.sized = _sized_name(paper_name(title, abstract))

    @cached_property
    def _fixes(self) -> list[tuple[re.Pattern, str]]:
        return _misread_fixes(self.wrong) + _counted_fixes(self.paper_text)  # fix_numbers, then fix_counted

    def problem(self, name: str, text: str) -> "Problem | None":
        """The problem of the prose field `name` (a problems() prose name) whose text is `text`, if any."""
        if misread := _numbers_misread(self.wrong, text):
            value, unit, back, right = misread
            return Problem(f"writes {back} as {value} {unit} ({back} is {right} {unit})",
                           f"摘要里的 {back} 是 {right} {unit}，不是 {value} {unit}。请照原文写 {back}。",
                           field=_field(name), note=f"{_label(name)}把摘要里的 {back}（{right} {unit}）写成了 {value} {unit}")
        if self.sized and (size := _other_size(self.sized, text)):
            paper, own = self.sized
            return Problem(f"misreads the size in {paper}'s name: {size}B (the name says {own}B)",
                           f"{paper} 是 {own}B 参数的模型（名字里的 {own}B），不是 {size}B。请照原文写它的规模。",
                           field=_field(name), note=f"{_label(name)}把 {paper}（{own}B）说成了 {size}B 参数的模型")
        unknown = _unknown_scale(self.given, text) if self.paper_text else None  # no paper to read the numbers in
        if unknown:
            return Problem(f"writes {unknown}, a number the paper does not give",
                           f"摘要里没有 {unknown} 这个数。数字和规模请照摘要原样写（如 3B、1M），不要换算。",
                           field=_field(name), note=f"{_label(name)}写了摘要里没有的数字 {unknown}")
        return None

    def early_problems(self, values: dict[str, str]) -> list[Problem]:
        """What problems() would find in an answer's first prose fields, `values` (path -> text, as
        written: "main_work", "scores.innovation.reason"), before the rest is written: the number
        checks, on the text as repair() would leave it (a sentence cut at its cap ended at its last
        clause, then numbers written back; the other repairs touch no number). Only the first such field's
        problem, as problems() reports it.

        Why: an answer that misreads a number is asked again from that field, so whatever the model
        writes after it is thrown away: BTLM-3B-8K's "7.5 亿参数" in 主要工作 (stop 38's bench, seed 7)
        cost a whole answer, 389 decoding steps, for the 110 of its 主要工作."""
        for path, text in values.items():
            name = path if path in PROSE_FIELDS else _prose_name(path)
            if name is None:
                continue
            text = end_at_clause(text, PROSE[path] if path in PROSE_FIELDS else PROSE["reason"])
            for pattern, back in self._fixes:
                text = pattern.sub(back, text)
            if found := self.problem(name, text):
                return [found]
        return []


def _prose_name(path: str) -> str | None:
    """problems()' prose name of a schema path ("scores.innovation.reason" -> "innovation reason")."""
    parts = path.split(".")
    return f"{parts[1]} reason" if len(parts) == 3 and parts[0] == "scores" and parts[2] == "reason" else None


def _field(prose_name: str) -> str:
    """A Problem's field for a name of `problems`' prose ("innovation reason" -> "scores.innovation")."""
    return f"scores.{prose_name.removesuffix(' reason')}" if prose_name.endswith(" reason") else prose_name


def highlights_repeat(review: Review) -> bool:
    """Whether 亮点 says again what 主要工作 says (MAX_OVERLAP of its runs): flagged, and left out of
    the digest (HIGHLIGHTS_LEFT_OUT)."""
    return _repeats(review.highlights, review.main_work)


def _repeats(highlights: str, main_work: str) -> bool:
    """The line of highlights_repeat, which said_already closes a 亮点 at: the two must agree, or a
    closed 亮点 could be one the digest shows."""
    return overlap(highlights, main_work) >= MAX_OVERLAP


def said_already(path: str, value: str, values: dict[str, str]) -> bool:
    """Whether a 亮点 being written, `value` up to the end of a sentence, already says again what
    主要工作 (in `values`) says, as highlights_repeat measures it: it is then closed there
    (AnswerFormat.close_when), since the digest leaves such a 亮点 out whatever follows.

    Why: every step after that sentence is thrown away. In stop 48's bench, 13 of the 31 亮点 left
    out had repeated 主要工作 by a sentence end before their last (0.58-1.0 of their runs) and wrote
    1,013 characters more; no 亮点 kept in the digest reached 0.5 at any of its sentence ends (0.33
    at most). Closed there at stop 49: 301.9 → 297.5 decoding steps per paper (README, Benchmarks)."""
    return path == "highlights" and _repeats(value, values.get("main_work", ""))


def _label(prose_name: str) -> str:
    """A problems() prose name as the digest's reader knows it ("innovation reason" -> 创新性的理由)."""
    if prose_name in PROSE_FIELDS:
        return PROSE_FIELDS[prose_name]
    return f"{SCORE_DIMENSIONS[prose_name.removesuffix(' reason')]}的理由"


def _repeated_sentence(text: str) -> str | None:
    """A sentence (8 characters or more) that the field has twice."""
    seen = set()
    for sentence in re.findall(f"[^{SENTENCE_END}]+", text):
        key = _norm(sentence)
        if len(key) >= 8 and key in seen:
            return sentence.strip()
        seen.add(key)
    return None


MIN_KEPT = 20  # characters: a shorter remainder says too little, the cut sentence stays (and is flagged)


def repair(review: Review, paper_text: str) -> Review:
    """What can be put right without asking again, applied to every review whatever its source
    (generated, cached, a server's): numbers back in the paper's spelling, sentences the grammar
    had to stop at their cap ended at their last clause instead of mid-word, a Chinese keyword left
    half in English shown in English, an English keyword cut mid-word at its cap ended at its last
    whole word, each keyword's Chinese in the field's standard term and a few plain
    mistranslations put right in the prose too (terms.py), no claim to be the first that the
    paper does not make, tokens not called parameters, no sentence that only calls a thing by its
    own name, and the paper's own name among its keywords and not half translated in the prose
    (`paper_text` starts with the title line)."""
    title, _, abstract = paper_text.partition("\n")
    # The clause cut first, on the sentences as the grammar ended them: every repair after it may
    # change a sentence's length (at_cap), "380B参数" -> "380B tokens" as much as 梦LLM -> DreamLLM.
    fixed = fix_counted(fix_numbers(_each_prose(review, end_at_clause), paper_text), paper_text)
    standard = standard_prose(paper_text)
    fixed = _each_prose(fixed, lambda text, _shape: standard(text))
    keywords = whole_word_keywords(untranslated_keywords(_each_prose(fixed, without_tautology)), paper_text)
    return name_kept(name_first(no_unsaid_first(standard_terms(keywords), paper_text), title, abstract), title, abstract)


# A sentence that calls a thing by its own name and says nothing else: Qwen2.5-Coder 1.5B ended
# Q-Transformer's 主要工作 "因此，Q-Transformer 可以被称为 Q-Transformer。" (stop 41's bench, seed 42);
# no check saw it, a reader does at once.
TAUTOLOGY = re.compile(rf"(?:^|(?<=[{SENTENCE_END}]))\s*(?:[^，,{SENTENCE_END}]{{0,6}}[，,]\s*)?"
                       rf"(?P<name>[^，,{SENTENCE_END}\s][^，,{SENTENCE_END}]*?)\s*也?(?:可以|可)?被?"
                       rf"(?:称为|称作|叫做|叫作|即为|就是|即|是)\s*(?P=name)\s*[{SENTENCE_END}]")


def without_tautology(text: str, _shape=None) -> str:
    """`text` without its sentences that only say a thing is itself (TAUTOLOGY), unless that would
    leave it shorter than MIN_KEPT characters (the review then keeps the sentence as it is)."""
    kept = TAUTOLOGY.sub("", text)
    return kept if kept != text and len(kept) >= MIN_KEPT else text


# An English keyword the grammar stopped at its cap (MAX_CHARS) in the middle of a word: LMDX's
# title copied as "Language Model-based Document Information Extraction and Loc" (1 of the bench's
# 520 keywords, stop 30). It ends at its last whole word instead, without a dangling "and"/"of".
DANGLING = re.compile(r"(?:[\s,:;/-]+(?:and|or|of|for|with|via|in|on|to|the|a|an|from|by))*[\s,:;/-]*$",
                      re.IGNORECASE)


def whole_word_keywords(review: Review, paper_text: str) -> Review:
    """The review with each English keyword cut mid-word at its cap ended at its last whole word. A
    last word counts as whole when the paper has it as a word (a term of 60 letters may end exactly
    at the cap). Not where the shorter term is another keyword (the duplicate check would flag it)."""
    if all(len(keyword.en) < MAX_CHARS["keyword"] for keyword in review.keywords):
        return review  # nearly always: the paper is read only for a keyword at its cap
    words = {word.casefold() for word in re.findall(r"[A-Za-z0-9]+", paper_text)}
    have = {_norm(keyword.en) for keyword in review.keywords}

    def fixed(keyword: Keyword) -> Keyword:
        last = re.search(r"[A-Za-z0-9]+$", keyword.en)
        if len(keyword.en) < MAX_CHARS["keyword"] or not last or last.group().casefold() in words:
            return keyword
        shorter = DANGLING.sub("", keyword.en[:last.start()])
        return Keyword(shorter, keyword.zh) if shorter and _norm(shorter) not in have else keyword
    return replace(review, keywords=tuple(fixed(keyword) for keyword in review.keywords))


# A lower-case English word (3+ letters, not part of a name like seq2seq or gzip-9) inside a Chinese
# keyword: the model stopped translating halfway. Measured on Qwen2.5-Coder 1.5B, 26 papers: 5 of
# 130 keywords per run, across three prompts ("链-of-_verification", "空间 carving 演变" for Space
# Carved Outpainting, "全局 modeling", "可信的 factual信息", "3D 立体 portraits").
HALF_TRANSLATED = re.compile(r"(?<![A-Za-z0-9])[a-z]{3,}(?![A-Za-z0-9])")
# A Chinese word hyphened to an English word: a hyphenated name translated in part ("链-of-Verification"
# for Chain-of-Verification, stop 38's bench at seed 7, which HALF_TRANSLATED misses: "of" is short
# and "Verification" Capitalised). A letter or a digit's unit hyphened to Chinese is a term (GPT-4's
# "Q-值" for Q-value; "3D-重建").
HALF_JOINED = re.compile(rf"{CJK.pattern}-[A-Za-z]{{2}}|[A-Za-z]{{2}}-{CJK.pattern}")


def untranslated_keywords(review: Review) -> Review:
    """The review with each half-translated Chinese keyword replaced by its English term, which a
    reader can read as it stands (as for a name: `OpenBA` (`OpenBA`)). A word the English term also
    has in lower case is kept: there it is a name or the paper's own spelling ("gzip 压缩")."""
    def fixed(keyword: Keyword) -> Keyword:
        kept = set(re.findall(r"[a-z]+", keyword.en))
        if CJK.search(keyword.zh) and (HALF_JOINED.search(keyword.zh)
                                       or any(word not in kept for word in HALF_TRANSLATED.findall(keyword.zh))):
            return Keyword(keyword.en, keyword.en)
        return keyword
    return replace(review, keywords=tuple(fixed(keyword) for keyword in review.keywords))


# A claim to be first in the paper ("the first MLLM capable of…", "first to", "for the first time",
# "pioneer") lets the review say it; otherwise 第一个/首个 (a model, 第一种 a method, …) becomes 一个
# and 首次/第一次 goes. "First" as an adverb is no claim: RMT's "Transformer first appears in NLP"
# let its review say "RMT 是首次提出结合 RetNet 和 ViT 的方法", and CoVe's "the model first drafts".
SAYS_FIRST = re.compile(r"\b(?:the|a) first\b|\bfirst[- ](?:to|time|ever|of[- ]its[- ]kind)\b|\bpioneer", re.IGNORECASE)
CLAIMED_FIRST = re.compile(r"(?:第一|首)([个种款篇套])(?![阶步部])|(?:第一|首)次")


def no_unsaid_first(review: Review, paper_text: str) -> Review:
    """The review without a claim that the paper is the first of its kind, when the paper does not
    say so.

    Measured on Qwen2.5-Coder 1.5B over the 26 bench papers: with reasons that say what is new
    (创新性: "与已有工作相比，…"), 10 reviews called the paper "第一个…" (Q-Transformer "第一个利用
    Transformer 进行离线强化学习的方法", Kosmos-2.5, Auto-ACD, …), and the abstracts of 7 of
    them make no such claim; a reader cannot tell a guess from the paper's word."""
    if SAYS_FIRST.search(paper_text):
        return review

    def fix(text: str, _shape=None) -> str:
        return CLAIMED_FIRST.sub(lambda m: f"一{m.group(1)}" if m.group(1) else "", text)

    return _each_prose(review, fix)


# A title's "Name: what it does" prefix is the paper's name when it looks like one: a single word
# (FreeU, Boolformer) or at most four with a digit, an inner capital or a hyphen (Baichuan 2,
# BTLM-3B-8K, LLM-Grounder), not a phrase ("Multimodal Foundation Models", "The Languini Kitchen"),
# and the abstract uses it as written (all 16 named papers of 2023-09-20..22 do; "Position: …" and
# "Survey: …" papers say "this position paper").
TITLE_NAME = re.compile(r"^\s*([^:：]{2,40}?)\s*[:：]\s")
NAME_LIKE = re.compile(r"\d|[a-z][A-Z]|[A-Z]{2}|-")


def paper_name(title: str, abstract: str) -> str | None:
    match = TITLE_NAME.match(title)
    if not match or match.group(1) not in abstract:
        return None
    name = match.group(1)
    words = name.split()
    return name if len(words) == 1 or (len(words) <= 4 and NAME_LIKE.search(name)) else None


def name_first(review: Review, title: str, abstract: str) -> Review:
    """The review with the paper's name (paper_name) as its first keyword when no keyword has it;
    the last keyword makes room.

    The prompt asks for the name first (GPT-4's references have it for 12 of the 16 named papers of
    2023-09-20..22); Qwen2.5-Coder 1.5B left it out for 9 of them (Boolformer, FoleyGen,
    Q-Transformer, LMSYS-Chat-1M, …) and wrote field terms instead. A reader scanning the keywords,
    or searching the digest for the name, needs it.

    A keyword that is the name spelled otherwise becomes the name in both languages: the model wrote
    "Long LoRA" (LongLoRA) and translated names it should keep ("DreamLLM" as 梦LLM)."""
    name = paper_name(title, abstract)
    if name is None:
        return review
    letters = _letters(name)
    review = replace(review, keywords=tuple(Keyword(name, name) if _letters(k.en) == letters else k
                                            for k in review.keywords))
    wanted = _squash(name)
    # "SlimPajama" names SlimPajama-DC; "LLM" does not name LLM-Grounder.
    if any(wanted in (have := _squash(text)) or (wanted.startswith(have) and 2 * len(have) >= len(wanted))
           for k in review.keywords for text in (k.en, k.zh)):
        return review
    return replace(review, keywords=(Keyword(name, name), *review.keywords[:-1]))


# Where a name's head ends and its tail begins: DreamLLM is Dream + LLM, LongLoRA Long + LoRA.
NAME_HEAD = re.compile(r"^([A-Z][a-z]+)(?=[A-Z])")
# A Chinese word of one or two characters glued to the tail that opens a sentence or a clause (after
# other Chinese, or a space, it could be the end of a longer word: "和大LLM"), and not a determiner:
# 该LLM ("this LLM") is no translation.
TRANSLATED_HEAD = r"(?:^|(?<=[。！？，；：、（“]))(?![该此这其本各每多大小新])[\u3400-\u9fff]{{1,2}}(?={tail})"


def name_kept(review: Review, title: str, abstract: str) -> Review:
    """The review with the paper's name written as the paper writes it where the prose translated its
    head and kept its tail: Qwen2.5-Coder 1.5B opened a sentence of DreamLLM's 主要工作 with "梦LLM"
    at both bench seeds of stop 35 (and wrote DreamLLM elsewhere in the same review). Only a whole
    word that starts a clause is taken for the head; "提出了长LoRA" (GPT-4's) stays, since which of the
    characters before LoRA are the name cannot be told without a dictionary."""
    name = paper_name(title, abstract)
    head = NAME_HEAD.match(name or "")
    if head is None:
        return review
    pattern = re.compile(TRANSLATED_HEAD.format(tail=re.escape(name[head.end():])))
    return _each_prose(review, lambda text, _shape: pattern.sub(head.group(1), text))


def _squash(text: str) -> str:
    return "".join(text.lower().split())


def _letters(text: str) -> str:
    return "".join(char for char in text.casefold() if char.isalnum())


def _each_prose(review: Review, fix) -> Review:
    """The review with fix(text, its ProseShape) applied to 主要工作, 亮点 and every reason."""
    scores = {name: replace(score, reason=fix(score.reason, PROSE["reason"]))
              for name, score in review.scores().items()}
    return replace(review, main_work=fix(review.main_work, PROSE["main_work"]),
                   highlights=fix(review.highlights, PROSE["highlights"]), **scores)


WHOLE_SENTENCE = re.compile(f"[^{SENTENCE_END}]*[{SENTENCE_END}]")  # with its closing mark: as at_cap counts it


def end_at_clause(text: str, shape) -> str:
    """`text` up to the first sentence that ran into its cap, that sentence ended at its last clause
    mark (；： first, else ，、) with 。; what followed it (a fragment the grammar forced into a new sentence) goes.

    Measured on Qwen2.5-Coder 1.5B, 26 papers: 19% of reviews had such a sentence, e.g. a 亮点 ending
    "…基准 GSM8。和 MATH 上都优于…"; asked again, the model wrote as long a sentence again."""
    sentences = WHOLE_SENTENCE.findall(text)
    done = ""
    for sentence in sentences:
        if not at_cap(sentence, shape):
            done += sentence
            continue
        body = sentence[:-1]
        # The last ；(a whole clause) before the last ，: "…模型；实验结果表明，…" ends at 模型, not at 表明.
        cut = next((at for marks in ("；：", "，、") if (at := max(body.rfind(m) for m in marks)) >= MIN_KEPT), -1)
        if cut >= MIN_KEPT:
            return done + body[:cut].rstrip() + "。"
        return done if len(done) >= MIN_KEPT else text
    return text


def fix_numbers(review: Review, paper_text: str) -> Review:
    """The review with "7 亿" (or "七亿") written back as "7B" where the paper says 7B (and not 0.7B),
    and "1000 万" (or "一千万") as "1M" where it says 1M (and not 10M).

    Measured on Qwen2.5-Coder 1.5B over the 26 bench papers: asked again with the mistake named, it
    wrote "7 亿参数" once more for BTLM-3B-8K, and LMSYS-Chat-1M's one million conversations became
    "1000 万条"; the paper's own spelling is always right, and a reader knows it."""
    return _written_back(review, _misread_fixes(_wrong_numbers(paper_text)))


def _misread_fixes(wrong_numbers: list[tuple[str, str, str, str]]) -> list[tuple[re.Pattern, str]]:
    return [(re.compile(_written(value, unit)), back) for value, unit, back, _right in wrong_numbers]


def _written_back(review: Review, wrong: list[tuple[re.Pattern, str]]) -> Review:
    """The review with each pattern's matches replaced by the paper's spelling, in the prose and in
    the Chinese keywords: BTLM's "7 亿参数模型" is as wrong there."""
    if not wrong:
        return review

    def fix(text: str, _shape=None) -> str:
        for pattern, back in wrong:
            text = pattern.sub(back, text)
        return text

    fixed = _each_prose(review, fix)
    return replace(fixed, keywords=tuple(Keyword(k.en, fix(k.zh)) for k in fixed.keywords))


# "380B tokens" in a paper, as Qwen2.5-Coder 1.5B read OpenBA's ("仅使用 380B参数也能达到…", the
# model's size is 15B): a count of tokens called parameters. Only a suffixed number the paper gives
# with "tokens" every time is put right; "7B" that is a model's size stays whatever follows it.
COUNTED = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*([KMBT])\b(?:\s+(tokens?)\b)?")


def fix_counted(review: Review, paper_text: str) -> Review:
    """The review with "<n>B参数" written as "<n>B tokens" where the paper says <n>B only of tokens."""
    return _written_back(review, _counted_fixes(paper_text))


def _counted_fixes(paper_text: str) -> list[tuple[re.Pattern, str]]:
    uses: dict[str, set[str | None]] = {}
    for digits, suffix, tokens in COUNTED.findall(paper_text):
        uses.setdefault(digits + suffix, set()).add(tokens or None)
    return [(re.compile(rf"(?<![\d.]){re.escape(number[:-1])}\s*{number[-1]}\s*个?参数"), f"{number} tokens")
            for number, words in uses.items() if None not in words]


def _wrong_numbers(paper_text: str) -> list[tuple[str, str, str, str]]:
    """(wrong value, Chinese unit, the paper's spelling, the right value) for the paper's numbers in
    billions and millions: "7 亿" is wrong for 7B (70 亿) unless the paper also has 0.7B."""
    wrong = []
    for pattern, suffix, unit, times, mistakes in SCALES:
        numbers = [float(n) for n in dict.fromkeys(pattern.findall(paper_text))]
        right = {f"{n * times:g}" for n in numbers}
        for n in numbers:
            for mistake in mistakes:
                if f"{n * mistake:g}" not in right:
                    wrong.append((f"{n * mistake:g}", unit, f"{n:g}{suffix}", f"{n * times:g}"))
    return wrong


# What may stand between a number and its scale: spaces, and 个 ("7.5 个亿参数": Qwen2.5-Coder 1.5B
# wrote it for BTLM-3B-8K's 3B when a trial sampler turned 亿 away after a wrong number; README).
MEASURED = r"\s*(?:个\s*)*"
# A number at a Chinese scale ("7.5 亿", "68 万", "2.6 万亿", "7 个亿"), as a review writes it, and
# what each scale is worth. Longest first, so 万亿 is read before 万 and 亿.
CHINESE_SCALE = re.compile(rf"(?<![\d.])(\d+(?:\.\d+)?){MEASURED}(万亿|千亿|百亿|十亿|亿|千万|百万|十万|万)")
SCALE_VALUE = {"万": 1e4, "十万": 1e5, "百万": 1e6, "千万": 1e7, "亿": 1e8, "十亿": 1e9, "百亿": 1e10, "千亿": 1e11,
               "万亿": 1e12}
# A number in a paper: digits with thousands commas or a decimal point, and an English scale after it
# ("3 billion", "3-billion-parameter", "627B", "100k").
PAPER_NUMBER = re.compile(r"(?<![\d.,])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)[\s-]*"
                          r"(trillion\b|billion\b|million\b|thousand\b|[TBMK]\b|k\b)?")
PAPER_SCALE = {"trillion": 1e12, "T": 1e12, "billion": 1e9, "B": 1e9, "million": 1e6, "M": 1e6, "thousand": 1e3,
               "K": 1e3, "k": 1e3}
# A number in words before a scale: LMSYS-Chat-1M has "one million real-world conversations".
WORD_VALUE = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
              "nine": 9, "ten": 10, "twelve": 12, "twenty": 20, "fifty": 50, "hundred": 100}
WORD_NUMBER = re.compile(rf"\b({'|'.join(sorted(WORD_VALUE, key=len, reverse=True))})[\s-]+(trillion|billion|million|thousand)\b",
                         re.IGNORECASE)


def paper_numbers(paper_text: str) -> list[float]:
    """Every number the paper gives, at its scale: "3 billion" 3e9, "680,000" 6.8e5, "1M" 1e6, "one
    million" 1e6; "8K" both 8000 and 8192 (a context of 8K tokens is 8192 of them)."""
    found = [(float(digits.replace(",", "")), scale) for digits, scale in PAPER_NUMBER.findall(paper_text)]
    return [n * PAPER_SCALE.get(scale, 1) for n, scale in found] + [n * 1024 for n, scale in found if scale in ("K", "k")] + \
        [WORD_VALUE[word.lower()] * PAPER_SCALE[scale.lower()] for word, scale in WORD_NUMBER.findall(paper_text)]


# A plain number of four digits or more, as a review writes one ("100000 条", "210,000 个"), not part of
# a name (GSM8K, 2309.12307), a decimal, a percentage, a year (2023 年, or 19xx/20xx alone: "ICCV
# 2023" is no count) or a number at a Chinese scale (CHINESE_SCALE's).
PLAIN_NUMBER = re.compile(r"(?<![\w.,])(?!(?:19|20)\d\d(?!\d))(\d{1,3}(?:,\d{3})+|\d{4,})"
                          r"(?![\w.,%]|\s*(?:个\s*)*[万亿千百年])")


def _unknown_scale(given: list[float], review_text: str) -> str | None:
    """The first number the review writes at a Chinese scale, or in plain digits from 1000 up, that is
    none of the paper's numbers (within 1%, for rounding), as written ("7.5 亿"): BTLM-3B-8K's 3
    billion parameters became "7.5 亿参数" (750 million) in a bench review, in 主要工作, 亮点, a keyword
    and a reason, and LMSYS-Chat-1M's one million conversations "100000 条真实世界对话" (stop 45, seed
    42; the only plain number of 104 reviews that is not the paper's)."""
    written = [(float(m.group(1)) * SCALE_VALUE[m.group(2)], f"{m.group(1)} {m.group(2)}", m.start())
               for m in CHINESE_SCALE.finditer(review_text)]
    written += [(float(m.group(1).replace(",", "")), m.group(1), m.start()) for m in PLAIN_NUMBER.finditer(review_text)]
    for value, shown, _at in sorted(written, key=lambda w: w[2]):
        if not any(abs(value - number) <= 0.01 * number for number in given):
            return shown
    return None


# A size in a model's name ("BTLM-3B-8K": 3B), and the same name given another size in apposition:
# "名为 BTLM-3B-8K 的 7B参数开源语言模型", "BTLM-3B-8K 是一个 7B参数的开源语言模型" — Qwen2.5-Coder 1.5B
# wrote it in 主要工作 at three of stop 45's four seeds, misled by the title ("7B Parameter
# Performance in a 3B Parameter Model"); the number is the paper's, so _unknown_scale passes it.
# Only what stands right after the name: "比一些 7B 参数模型还好" compares, it does not name a size.
NAME_SIZE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)B(?![a-z])", re.IGNORECASE)
APPOSITION = (r"\s*(?:[的是，,]\s*)?(?:一个|一款|一种)?\s*(?:新的|全新的)?\s*"
              r"(?:(\d+(?:\.\d+)?)\s*B|(\d+(?:\.\d+)?)\s*(?:个\s*)?亿)\s*(?:个\s*)?参数")


def _sized_name(name: str | None) -> tuple[str, str] | None:
    """(the paper's name, the size it carries) when the name carries one size ("BTLM-3B-8K": "3")."""
    sizes = set(NAME_SIZE.findall(name or ""))
    return (name, sizes.pop()) if len(sizes) == 1 else None


def _other_size(sized: tuple[str, str], text: str) -> str | None:
    """A size other than the name's that `text` gives the paper's model right after its name."""
    name, own = sized
    for match in re.finditer(re.escape(name) + APPOSITION, text):
        size = float(match.group(1)) if match.group(1) else float(match.group(2)) / 10  # 70 亿 is 7B
        if size != float(own):
            return f"{size:g}"
    return None


def _numbers_misread(wrong_numbers: list[tuple[str, str, str, str]],
                     review_text: str) -> tuple[str, str, str, str] | None:
    """A number the paper gives in billions or millions (_wrong_numbers of the paper) that the review
    writes at the wrong scale."""
    for value, unit, back, right in wrong_numbers:
        if re.search(_written(value, unit), review_text):
            return value, unit, back, right
    return None


def _written(value: str, unit: str) -> str:
    """A pattern for `value` `unit` as a review may write it: in digits ("1000 万") or in Chinese
    numerals ("一千万": LMSYS-Chat-1M's one million conversations, in a later run)."""
    numeral = _chinese_numeral(value)
    forms = rf"(?<![\d.]){re.escape(value)}{MEASURED}" + (f"|(?<![零一二三四五六七八九十百千]){numeral}" if numeral else "")
    return f"(?:{forms}){unit}"


def _chinese_numeral(value: str) -> str | None:
    """1-9999 in Chinese numerals (7 -> 七, 13 -> 十三, 1000 -> 一千, 1050 -> 一千零五十); None otherwise."""
    if not value.isdigit() or not 0 < int(value) < 10000:
        return None
    number, written, gap = int(value), "", False
    for place, name in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = number // place % 10
        if not digit:
            gap = bool(written)
            continue
        written += ("零" if gap else "") + ("" if digit == 1 and place == 10 and not written else "零一二三四五六七八九"[digit]) + name
        gap = False
    return written


def cut_off(text: str, shape) -> bool:
    """Whether a sentence of the text ran into its length cap (the grammar then had to end it), or
    the text does not end a sentence at all (a server's answer, a cache entry)."""
    sentences = WHOLE_SENTENCE.findall(text)
    return text[-1] not in SENTENCE_END or len(sentences) > shape.sentences \
        or any(at_cap(sentence, shape) for sentence in sentences)


def at_cap(sentence: str, shape) -> bool:
    """Whether a sentence (its closing mark included) is as long as the grammar lets one be, give or
    take its last character: where it had to end it. Not a longer one: no answer has one, so a
    repair after the answer lengthened a complete sentence. Read as cut, DreamLLM's 主要工作 (stop 46,
    seed 42: "梦LLM遵循两个基本原则：第一，…；第二，…分布。", 138 characters, 142 once name_kept wrote
    DreamLLM back) was flagged as cut off where it was generated, and its second principle was cut
    away when the cache entry was read (repair runs again on every hit): the two digests differed."""
    return shape.sentence_chars - 1 <= len(sentence) <= shape.sentence_chars


def example_of(review: Review, openings: tuple[str, ...] = ()) -> Example:
    return Example(texts=tuple(text for _field, text in _texts(review)),
                   scores=tuple(getattr(review, name).score for name in SCORE_DIMENSIONS), keywords=review.keywords,
                   reasons=tuple(getattr(review, name).reason for name in SCORE_DIMENSIONS), openings=openings)


def example_terms(examples: list[Example], paper_text: str) -> tuple[str, ...]:
    """The worked examples' Chinese keywords whose English the paper (`paper_text`) never uses: a
    local model does not write them (AnswerFormat.avoid).

    Why: Qwen2.5-Coder 1.5B carries an example's subject into papers that have none of it. Stop 37's
    bench: "推荐给需要在中文文本分类上微调 LLM 的工程师" for OpenBA (the second example's "在小样本文本分类上
    微调 BERT 的工程师"), Auto-ACD's dataset offered "用于各种语音识别和字幕生成任务" (the first example is
    Whisper's), and ALMA's reason copied the example's "在小样本文本分类上微调" twice at seed 42; with the
    copy turned away in sampling (sampling.Copies) it still wrote "在小样本文本分类上使用 LLM". A paper
    that uses every word of the English term keeps the word, together or apart as for a copied
    keyword (_own_term): the speech-recognition paper writes 语音识别, and Baichuan 2, whose abstract
    has "multilingual" and "training" apart, its keyword 多语言训练 (with the whole term required, a
    bench run turned it into 多语言培训, training courses). Not a check, so a server's review is not
    flagged for these words: a paper may need one its abstract does not spell."""
    words = set(normalise_keyword(paper_text).split())
    return tuple(dict.fromkeys(keyword.zh for example in examples for keyword in example.keywords
                               if CJK.search(keyword.zh)
                               and not all(word in words for word in normalise_keyword(keyword.en).split())))


def _texts(review: Review) -> list[tuple[str, str]]:
    """Every string of the answer, in the answer's order, with its Problem.field."""
    return [*((name, getattr(review, name)) for name in PROSE_FIELDS),
            *(("keywords", k.en) for k in review.keywords), *(("keywords", k.zh) for k in review.keywords),
            *((f"scores.{name}", score.reason) for name, score in review.scores().items())]


# Characters no reader can read: U+FFFD (bytes that were not UTF-8: a character split between
# tokens), private-use and unassigned code points. Random weights write them; so does a model whose
# output was cut inside a character.
GARBLED = {"Co", "Cn", "Cs"}


def garbled(text: str) -> bool:
    return any(char == "\ufffd" or unicodedata.category(char) in GARBLED for char in text)


def is_loop(text: str, n: int = 4) -> bool:
    compact = "".join(text.split())
    if len(compact) < 40:
        return False
    grams = [compact[i:i + n] for i in range(len(compact) - n + 1)]
    return len(set(grams)) / len(grams) < MIN_DISTINCT_NGRAMS


def cjk_share(text: str) -> float:
    """Share of CJK characters among the letters and digits (punctuation and spaces left out)."""
    chars = [c for c in text if not c.isspace() and unicodedata.category(c)[0] not in "PS"]
    return sum(bool(CJK.match(c)) for c in chars) / len(chars) if chars else 0.0


def overlap(text: str, other: str, n: int = 8) -> float:
    """Share of the text's n-character runs (spaces ignored) that also occur in the other text; runs
    all in ASCII are left out. Why: they are names and figures, which a reason may well repeat (the
    restating penalty, llm.sampling.Restating, lets them through for that reason): ALMA's practicality
    reason "能拿来用的是 Advanced Language Model-based trAnslator (ALMA) 模型，无需依赖大量并行数据即可进行翻译"
    counted 0.61 by its model's name alone and was asked again twice (stop 32, seed 42); without the
    name's runs it is 0.08."""
    compact, pool = _norm(text), _norm(other)
    runs = [run for i in range(len(compact) - n + 1) if not (run := compact[i:i + n]).isascii()]
    return sum(run in pool for run in runs) / len(runs) if runs else 0.0


def _copied_from_examples(review: Review, examples: list[Example], paper_text: str) -> tuple[str, str] | None:
    """The first run of COPY_RUN characters a field shares with an example and the paper does not,
    and the field (Problem.field) it is in, in the answer's order."""
    if not examples:
        return None
    pool = "\n".join(_norm(text) for example in examples for text in example.texts)
    paper = _norm(paper_text)
    paper_words = set(LATIN_TERM_WORD.findall(paper_text.casefold()))
    for where, text in _texts(review):
        if where == "keywords" and _own_term(text, paper_words):
            continue
        found = copied_run(_norm(text), pool, paper, COPY_RUN)
        if found:
            return found, where
    return None


# A reason built on the sentence of the same score's reason in a worked example, with this paper's
# words in its gaps: pieces of FRAME_PIECE characters or more that the example's reason has and the
# paper does not, FRAME_WEIGHT Chinese characters of them in all. Qwen2.5-Coder 1.5B put the
# learning-rate example's "…都是常见做法，本文只在六个小数据集上比较了它们" into 10 of 104 innovation
# reasons of stop 44's code (four seeds), mostly with the example's innovation 2, and where it
# contradicts itself: "与已有工作相比，语言模型的压缩能力是新颖的，本文只在训练文本时比较了它们", "本文只在
# 五个核心话题上比较了它们" for a survey. Its runs are 4-7 characters, under the copy check's 10.
# 9, not less: common words shared with an example's recommendation ("…的研究者和开发者。",
# "…的工程师，…的工程师") reach 8 in those runs. A flag, never asked again, so CHECKS_VERSION stays:
# no cached review is one this check would send back.
# Since stop 48 the pieces are weighed as the copy check weighs a run (a CJK character 1, any other
# ½), and only the prompt's opening is left out, not all the two open with alike: BTLM-3B-8K's
# "推荐给在小数据上微调 BERT 的工程师" (stop 48, seed 2) was 7 under the old weights, and with BERT
# kept out a trial draw wrote "推荐给在小样本文本任务上微调 BART 的工程师", whose "在小样本文本" went
# with the opening. Over the 312 reviews of stops 45 and 48 (four seeds each, and stop 48's trial)
# that adds those two and RLHF's "…是新颖的方法，本文只在 RLHF 训练中应用了它们" (seed 1), and no other.
FRAME_PIECE = 4
FRAME_WEIGHT = 9


def _example_frame(review: Review, examples: list[Example], paper_text: str,
                   copied: set[str] = frozenset()) -> tuple[str, list[str]] | None:
    """(score name, the pieces) of the first reason that is a worked example's reason for that score
    with other words in its gaps; the prompt's opening both begin with is left out. Reasons whose
    field is in `copied` are the copy check's (_copied_from_examples) and not read."""
    paper = _norm(paper_text)
    for index, (name, score) in enumerate(review.scores().items()):
        if f"scores.{name}" in copied:
            continue
        text = _norm(score.reason)
        for example in examples:
            if index >= len(example.reasons):
                continue
            model = _norm(example.reasons[index])
            same = max((len(opening) for opening in map(_norm, example.openings)
                        if text.startswith(opening) and model.startswith(opening)), default=0)
            spans = _shared_pieces(text, model[same:], paper, same)
            if sum(weight(text[begin:end]) for begin, end in spans) >= FRAME_WEIGHT:
                return name, _as_written(score.reason, text, spans)
    return None


def _shared_pieces(text: str, model: str, paper: str, start: int = 0) -> list[tuple[int, int]]:
    """The longest pieces of `text` from `start`, left to right, of FRAME_PIECE characters or more,
    that `model` has and `paper` does not: their (begin, end) in `text`."""
    spans, i = [], start
    while i + FRAME_PIECE <= len(text):
        piece = text[i:i + FRAME_PIECE]
        if piece in model and piece not in paper:
            end = i + FRAME_PIECE
            while end < len(text) and text[i:end + 1] in model:
                end += 1
            spans.append((i, end))
            i = end
        else:
            i += 1
    return spans


def _as_written(original: str, compact: str, spans: list[tuple[int, int]]) -> list[str]:
    """The pieces at `spans` of `compact` (_norm(original)) as `original` writes them: a reader is
    quoted "都是常见做法，本文只" and "微调 BERT 的工程师", not the compared text's "都是常见做法,本文只" and
    "微调bert的工程师" (stop 48's notes)."""
    origins = compact_origins(original)
    if origins is None:
        return [compact[begin:end] for begin, end in spans]
    return [original[origins[begin]:origins[end - 1] + 1] for begin, end in spans]


# A Latin keyword is a term, not a sentence: "Multilingual Training" is the Whisper example's keyword
# and also a fair one for Baichuan 2, whose abstract says "multilingual" and "training" but never the
# two together (seed 7 of stop 35's bench lost the paper to it: 20 letters, the copy check's line).
LATIN_TERM_WORD = re.compile(r"[a-z0-9]+")


def _own_term(keyword: str, paper_words: set[str]) -> bool:
    """Whether `keyword` is Latin only and every word of it is one of the paper's own words."""
    words = LATIN_TERM_WORD.findall(keyword.casefold())
    return keyword.isascii() and bool(words) and all(word in paper_words for word in words)
