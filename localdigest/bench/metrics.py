"""Review quality metrics: against the GPT-4 references, and reference-free signs of a bad prompt/model."""

import re
import statistics
from collections import Counter

from localdigest.bench.references import ReferenceReview
from localdigest.llm.sampling import word_starts  # one rule for where a word begins: the decoder's
from localdigest.review.checks import cjk_share, english_words  # one definition: the checks and the bench agree
from localdigest.review.schema import SCORE_DIMENSIONS, Review
from localdigest.review.terms import normalise_keyword  # the glossary looks terms up the same way


def set_f1(predicted: list[str], reference: list[str]) -> float:
    """F1 between two sets of keywords after normalisation (1.0 when both are empty), each keyword
    matching at most one on the other side (same_keyword)."""
    pred = _distinct(predicted)
    ref = _distinct(reference)
    if not pred and not ref:
        return 1.0
    unmatched = list(ref)
    hits = 0
    for keyword in pred:
        if match := next((other for other in unmatched if same_keyword(keyword, other)), None):
            unmatched.remove(match)
            hits += 1
    if hits == 0:
        return 0.0
    precision, recall = hits / len(pred), hits / len(ref)
    return 2 * precision * recall / (precision + recall)


def same_keyword(a: str, b: str) -> bool:
    """Whether a reader would take two keywords for the same: equal once normalised, either part of
    "Long Name (ABBR)", or an abbreviation and the initials of a phrase of two or more words
    ("LLMs" = "Large Language Models", "WER" = "Word Error Rate"; keyphrase evaluation matches
    abbreviations likewise). Two phrases never match by their initials alone."""
    forms_a, forms_b = _forms(a), _forms(b)
    return bool(forms_a & forms_b) or bool(_initials(forms_a) & _single(forms_b)) \
        or bool(_initials(forms_b) & _single(forms_a))


def _distinct(keywords: list[str]) -> list[str]:
    seen = {}
    for keyword in keywords:
        seen.setdefault(normalise_keyword(keyword), keyword)
    return [keyword for normal, keyword in seen.items() if normal]


# A name with the Chinese word for what it is after it: GPT-4 wrote "FoleyGen系统" and "LMSYS-Chat-1M数据集"
# where a review wrote the name alone (both seeds of stop 37's bench), which a reader takes for the
# same keyword. Only after Latin letters: "生成模型" and "生成建模" stay two terms.
NAME_AND_WHAT = re.compile(r"([\x21-\x7e][\x20-\x7e]*?)\s*(?:数据集|系统|模型|框架|方法|算法|基准)")


def _forms(keyword: str) -> set[str]:
    forms = {normalise_keyword(keyword)}
    if parts := re.fullmatch(r"(.+?)\s*[(（](.+?)[)）]\s*", keyword):
        forms |= {normalise_keyword(parts[1]), normalise_keyword(parts[2])}
    if named := NAME_AND_WHAT.fullmatch(keyword.strip()):
        forms.add(normalise_keyword(named[1]))
    return forms - {""}


def _initials(forms: set[str]) -> set[str]:
    return {"".join(word[0] for word in form.split()) for form in forms
            if len(form.split()) >= 2 and all(word.isascii() and word.isalpha() for word in form.split())}


def _single(forms: set[str]) -> set[str]:
    return {form for form in forms if " " not in form}


def chrf(hypothesis: str, reference: str, max_n: int = 6, beta: float = 2.0) -> float:
    """Character n-gram F-score (Popović 2015), whitespace ignored, on a 0-100 scale."""
    hyp, ref = "".join(hypothesis.split()), "".join(reference.split())
    precisions, recalls = [], []
    for n in range(1, max_n + 1):
        hyp_grams = Counter(hyp[i:i + n] for i in range(len(hyp) - n + 1))
        ref_grams = Counter(ref[i:i + n] for i in range(len(ref) - n + 1))
        if not hyp_grams or not ref_grams:
            continue
        overlap = sum((hyp_grams & ref_grams).values())
        precisions.append(overlap / sum(hyp_grams.values()))
        recalls.append(overlap / sum(ref_grams.values()))
    if not precisions:
        return 0.0
    p, r = statistics.mean(precisions), statistics.mean(recalls)
    if p + r == 0:
        return 0.0
    return 100 * (1 + beta**2) * p * r / (beta**2 * p + r)


def copy_rate(text: str, sources: list[str], n: int = 8) -> float:
    """Share of the text's character n-grams found verbatim in the sources (e.g. the prompt's examples)."""
    compact = "".join(text.split())
    grams = [compact[i:i + n] for i in range(len(compact) - n + 1)]
    if not grams:
        return 0.0
    pool = "\n".join("".join(s.split()) for s in sources)
    return sum(gram in pool for gram in grams) / len(grams)


def untranslated_words(review: Review, paper_text: str) -> list[str]:
    """Lower-case English words begun in the review's Chinese prose (主要工作, 亮点, the reasons) that
    are neither kept words nor the paper's own lower-case names (checks.english_words): "hallucination"
    where the Chinese has 幻觉. A local model's decoder does not begin them; a server's can."""
    allowed = [(name[:1], name.casefold()) for name in english_words(paper_text)]
    text = " ".join([review.main_work, review.highlights, *(s.reason for s in review.scores().values())])
    begun = (match.group().decode("ascii") for match in word_starts(text.encode("utf-8")))  # as the decoder sees them
    # A name with its first letter as the paper writes it and other capitals inside is the paper's
    # name: OpenBA's "Huggingface Transformers Library" written HuggingFace (stop 46's bench, seed 2),
    # which the decoder let through, as it judges a word by its first token (" Hugging").
    return [word for word in begun if not any(word[:1] == first and (word.casefold().startswith(name) or name.startswith(word.casefold()))
                                              for first, name in allowed)]


def chinese_text(review: Review) -> str:
    return " ".join([review.main_work, review.highlights, *(k.zh for k in review.keywords),
                     *(s.reason for s in review.scores().values())])


def against_reference(review: Review, reference: ReferenceReview) -> dict[str, float]:
    metrics = {
        "keyword_f1_en": set_f1([k.en for k in review.keywords], [en for en, _ in reference.keywords]),
        "keyword_f1_zh": set_f1([k.zh for k in review.keywords], [zh for _, zh in reference.keywords]),
        "main_work_chrf": chrf(review.main_work, reference.main_work),
        "length_ratio": len(review.main_work) / max(len(reference.main_work), 1),
    }
    for name in SCORE_DIMENSIONS:
        if name in reference.scores:
            metrics[f"abs_error_{name}"] = abs(getattr(review, name).score - reference.scores[name])
    return metrics


def reference_free(reviews: list[Review], abstracts: list[str], examples: list[str]) -> dict[str, float]:
    """Signs of trouble visible without any reference, over all reviews of one variant."""
    if not reviews:
        return {}
    spreads = [statistics.pstdev([getattr(r, name).score for r in reviews]) for name in SCORE_DIMENSIONS]
    main_works = [r.main_work for r in reviews]
    return {
        "cjk_share": statistics.mean(cjk_share(chinese_text(r)) for r in reviews),
        "copy_rate_examples": statistics.mean(copy_rate(chinese_text(r), examples) for r in reviews),
        "copy_rate_abstract": statistics.mean(copy_rate(r.main_work + r.highlights, [a])
                                              for r, a in zip(reviews, abstracts)),
        "score_spread": statistics.mean(spreads),
        "identical_scores": float(all(spread == 0 for spread in spreads) and len(reviews) > 1),
        "duplicate_keywords": statistics.mean(
            1 - len({normalise_keyword(k.en) for k in r.keywords}) / len(r.keywords) for r in reviews),
        "duplicate_main_work": 1 - len(set(main_works)) / len(main_works),
    }
