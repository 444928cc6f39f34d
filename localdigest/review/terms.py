"""One Chinese term per common English term in a review's keywords.

Qwen2.5-Coder 1.5B translates the field's everyday terms differently from paper to paper, and
sometimes wrongly. Over every keyword it wrote in the bench runs of 2023-09-20..22 (all prompts):
"Large Language Models" became 大型语言模型 91 times, 大语言模型 14 and 预训练语言模型 (pre-trained
language models, wrong) 8; "Hallucination" 虚假信息 8, 假象 3, 假事实 2 and 幻觉 (the field's word) 2;
"Skip Connections" 跳接连接; "Language Modelling" 语言 modelling; "Binary Classification" 二进制分类;
"State-of-the-Art LLMs" 最新状态机 LLM. A reader scanning a digest wants the word the field uses,
the same one in every paper. The standard terms below are the ones Chinese ML writing uses (and
GPT-4's reference digests use most: 大型语言模型 for 27 of its 31 "Large Language Model(s)" on the
six days outside the bench); `variants` are the wrong or uneven spellings put right inside longer
terms ("多模态大语言模型" for "Multimodal Large Language Models").
"""

import re
import unicodedata
from collections.abc import Callable
from dataclasses import replace

from localdigest.review.schema import Keyword, Review


def normalise_keyword(text: str) -> str:
    """One spelling per keyword, as a reader would match them: case, width, hyphens, an English
    plural ("Transformers" = "Transformer", the stemming keyphrase evaluation uses) and the space
    a CJK term may or may not have next to Latin letters ("SlimPajama 数据集" = "SlimPajama数据集")."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[\s\-_]+", " ", text)
    text = re.sub(r"[^\w ]", "", text).strip()
    # a plural ends where Latin letters and digits do: "Transformers架构" is "Transformer 架构" (Boolformer's
    # keyword, GPT-4's and ours; \b saw no end between "s" and 架, both word characters)
    text = re.sub(r"(?<=[a-z]{3})(?<!s)s(?![a-z0-9])", "", text)
    return re.sub(r" ?([\u3400-\u9fff]) ?", r"\1", text)


# English term (any case, plural or hyphenation) -> (its Chinese term, spellings of it to replace
# inside the Chinese of a longer term that contains the English one).
_GLOSSARY = {
    "large language model": ("大型语言模型", ("大语言模型", "大规模语言模型", "预训练语言模型")),
    "LLM": ("大型语言模型", ()),
    # 多种多模态 ("various multimodal") is Qwen's: 12 of the 14 "Multimodal Large Language Models" in
    # this machine's bench caches (DreamLLM, both seeds, every stop).
    "multimodal large language model": ("多模态大型语言模型", ("多种多模态大型语言模型", "多种模态大型语言模型")),
    "MLLM": ("多模态大型语言模型", ()),
    "language modeling": ("语言建模", ("语言 modeling",)),
    "language modelling": ("语言建模", ("语言 modelling",)),
    # 生成模型 is "generative model": DreamLLM's "Generative Modeling" at both seeds of stop 44's bench.
    "generative modeling": ("生成建模", ()),
    "generative modelling": ("生成建模", ()),
    # 假话 ("lies"): Chain-of-Verification's reviews at both bench seeds (stop 38), 11 times.
    "hallucination": ("幻觉", ("虚假信息", "假事实", "假象", "错觉", "假话")),
    # "新的状态机" first: it is "a new state of the art" (LMDX's 亮点 at both bench seeds, stop 30:
    # "达到了新的状态机"), which the plain replacement would make "新的最先进的".
    "state of the art": ("最先进的", ("新的状态机", "最新状态机", "最新状态")),
    "skip connection": ("跳跃连接", ("跳接连接", "跳通连接")),
    "binary classification": ("二分类", ("二进制分类",)),
    "visual grounding": ("视觉定位", ("视觉引导",)),
    "offline RL": ("离线强化学习", ()),
    "offline reinforcement learning": ("离线强化学习", ()),
    "reinforcement learning": ("强化学习", ()),
    "RLHF": ("基于人类反馈的强化学习", ()),
    "reinforcement learning from human feedback": ("基于人类反馈的强化学习", ()),
    "fine tuning": ("微调", ()),
    "instruction tuning": ("指令微调", ("指令调谐",)),
    "pre training": ("预训练", ()),
    "in context learning": ("上下文学习", ("情境学习", "在上下文中学习")),
    "chain of thought": ("思维链", ()),
    "retrieval augmented generation": ("检索增强生成", ()),
    "mixture of experts": ("混合专家", ()),
    "knowledge distillation": ("知识蒸馏", ()),
    "quantization": ("量化", ()),
    "zero shot learning": ("零样本学习", ("零次学习",)),
    "few shot learning": ("少样本学习", ("小样本学习",)),
    "self supervised learning": ("自监督学习", ()),
    "contrastive learning": ("对比学习", ()),
    "diffusion model": ("扩散模型", ()),
    "neural radiance field": ("神经辐射场", ()),
    "domain adaptation": ("领域适应", ()),
    "attention mechanism": ("注意力机制", ()),
    "speech recognition": ("语音识别", ()),
    # 编码器 is "encoder": FoleyGen's "Neural Audio Codec" at seed 7 of stop 44's bench.
    "codec": ("编解码器", ("编码器",)),
    "machine translation": ("机器翻译", ()),
    "semantic segmentation": ("语义分割", ()),
    "object detection": ("目标检测", ()),
}
GLOSSARY = {normalise_keyword(en): term for en, term in _GLOSSARY.items()}
# Spellings that are wrong in any sentence, not just uneven: put right in 主要工作, 亮点 and the
# reasons too, when the paper uses the English term ("最新状态机 LLM", "newest state machine LLM", was
# LMSYS-Chat-1M's "state-of-the-art LLMs" in its 主要工作 and 亮点, every run). Term -> those of
# its variants (None: all of them): hallucination's 虚假信息 and 假事实 can be fair words for what a
# model makes up, 假话 ("lies": "即所谓的“假话”", "减少假话", CoVe's 主要工作, 亮点 and reasons at
# both stop-38 bench seeds) cannot.
WRONG_IN_PROSE = {"state of the art": None, "skip connection": None, "binary classification": None,
                  "hallucination": ("假话",)}
# A variant whose right spelling in a sentence is not the keyword's term.
PROSE_SPELLING = {"新的状态机": "新的最先进水平"}
# 语音 is speech, 音频 any sound. Qwen2.5-Coder 1.5B wrote 语音 for "audio" where the paper has no
# speech in it: FoleyGen's visual-to-audio generation was 视频到语音 / 视觉到语音 in all 10 of its
# reviews over stops 41-44's bench runs (prose and keyword), Auto-ACD's audio-language learning
# 语音语言表示学习 (stop 44, seed 7). In a keyword whose English says audio and not speech, and in
# the prose of a paper that says audio and never speech, 语音 is 音频.
AUDIO = re.compile(r"\baudio", re.IGNORECASE)
SPEECH = re.compile(r"speech|spoken|voice|speaker|utteranc|phonem|\bASR\b|\bTTS\b", re.IGNORECASE)


def _audio_not_speech(text: str) -> bool:
    return bool(AUDIO.search(text)) and not SPEECH.search(text)


def standard_terms(review: Review) -> Review:
    """The review with each keyword's Chinese in the field's standard term (GLOSSARY): the whole
    term when the English is a glossary term, a variant spelling put right inside a longer one.
    A change that would give two keywords the same Chinese is not made (the duplicate check would
    then flag a review that was fine)."""
    keywords = list(review.keywords)
    for i, keyword in enumerate(keywords):
        zh = _standard(keyword)
        if zh != keyword.zh and all(other.zh != zh for other in keywords):
            keywords[i] = Keyword(keyword.en, zh)
    return replace(review, keywords=tuple(keywords))


def _standard(keyword: Keyword) -> str:
    en = normalise_keyword(keyword.en)
    if en in GLOSSARY:
        return GLOSSARY[en][0]
    zh = keyword.zh
    for term, (standard, variants) in GLOSSARY.items():
        if re.search(rf"\b{re.escape(term)}\b", en):
            for variant in variants:
                zh = zh.replace(variant, standard)
    # "Generative Large Language Models" written 生成语言模型: the Chinese lost "large".
    if re.search(r"\blarge language model\b", en) and "大型语言模型" not in zh:
        zh = zh.replace("语言模型", "大型语言模型", 1)
    if _audio_not_speech(keyword.en):
        zh = zh.replace("语音", "音频")
    return zh


def keyword_values(name: str | None) -> Callable[[str, dict[str, str]], str | None]:
    """The Chinese of a keyword, known once its English is written, by path in the answer
    (llm.base.AnswerFormat.known_values): the paper's own name (checks.paper_name) is itself in
    Chinese, as the prompt asks; a GLOSSARY term's Chinese is its standard term, unless an earlier
    keyword has that term (standard_terms would leave it too). Why: each of those tokens took a
    decoding step, and the repairs kept or overwrote what was sampled (stop 44's bench: ~5 tokens a
    review, and the closing quote's step). The English stays the model's: the name forced as the
    first keyword (stop 41) made the keywords after it worse (English keyword F1 -0.027 on the
    named papers, paired draws)."""
    def known(path: str, values: dict[str, str]) -> str | None:
        kind, _, rest = path.partition(".")
        index, _, language = rest.partition(".")
        en = values.get(f"keywords.{index}.en")
        if kind != "keywords" or language != "zh" or en is None:
            return None
        zh = name if en == name else GLOSSARY.get(normalise_keyword(en), (None,))[0]
        return None if zh in {values.get(f"keywords.{i}.zh") for i in range(int(index))} else zh
    return known


def standard_prose(paper_text: str) -> Callable[[str], str]:
    """A function putting right, in a text, the WRONG_IN_PROSE terms' variant spellings for those
    terms the paper (its title and abstract, `paper_text`) uses; the paper is read once."""
    used = f" {normalise_keyword(paper_text)} "
    fixes = [(variant, PROSE_SPELLING.get(variant, GLOSSARY[term][0])) for term, wrong in WRONG_IN_PROSE.items()
             if f" {term} " in used for variant in (GLOSSARY[term][1] if wrong is None else wrong)]
    if _audio_not_speech(paper_text):
        fixes.append(("语音", "音频"))

    def fix(text: str) -> str:
        for variant, standard in fixes:
            text = text.replace(variant, standard)
        return text
    return fix
