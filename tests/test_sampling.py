import re
import subprocess
import sys
from pathlib import Path

import pytest
from llama_cpp import Llama, LogitsProcessorList

from localdigest.llm.sampling import GrammarFirstSampler

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def llama(tiny_gguf):
    return Llama(str(tiny_gguf), n_ctx=512, n_threads=2, verbose=False)


def generate(llama, grammar, seed=0, **settings):
    sampler = GrammarFirstSampler(llama, grammar, seed=seed, temperature=settings.pop("temperature", 0.8),
                                  top_p=0.95, **settings)
    try:
        out = llama.create_completion(prompt="Answer:", max_tokens=80, temperature=0.0, repeat_penalty=1.0,
                                      logits_processor=LogitsProcessorList([sampler]), seed=seed)
    finally:
        sampler.close()
    return out["choices"][0]["text"], sampler


def test_output_follows_the_grammar_through_both_paths(llama):
    # Bytes 'a'..'z' are a tenth of the tiny vocabulary: the model's pick is often allowed, often not.
    for seed in range(5):
        text, sampler = generate(llama, r'root ::= [a-z]{3,30} "."', seed=seed)
        assert re.fullmatch(r"[a-z]{3,30}\.", text), text
        assert sampler.full_masks > 0
    permissive, sampler = generate(llama, r'root ::= [ -~]{20}', seed=1)
    assert len(permissive) == 20 and sampler.fast_picks > 0


def test_narrow_grammar_is_always_met(llama):
    answers = {generate(llama, 'root ::= "yes" | "no"', seed=seed)[0] for seed in range(6)}
    assert answers <= {"yes", "no"} and answers


def test_same_seed_same_text_and_greedy(llama):
    grammar = r'root ::= [a-z ]{10,40} "."'
    assert generate(llama, grammar, seed=3)[0] == generate(llama, grammar, seed=3)[0]
    assert generate(llama, grammar, temperature=0)[0] == generate(llama, grammar, seed=9, temperature=0)[0]


def test_a_draw_depends_on_the_text_so_far_not_on_its_tokens(llama):
    """"。" is one token of the tiny vocabulary and three byte tokens too: written either way (a span
    fast-forwarded is tokenized on its own), the answer goes on with the same random numbers."""
    import numpy as np

    scores = np.random.default_rng(1).normal(size=llama.n_vocab()).astype(np.float32) * 0.1
    end = llama.tokenize("。".encode(), add_bos=False, special=False)
    spelled = list("。".encode())  # token n of the tiny vocabulary is byte n
    assert len(end) == 1 and b"".join(llama.detokenize([t]) for t in spelled) == llama.detokenize(end)

    def picks(seed, written):
        sampler = GrammarFirstSampler(llama, r'root ::= "。" [a-z]{8}', seed=seed, temperature=2.0, top_p=1.0,
                                      min_p=0.0)
        assert all(sampler.force(token) for token in written)
        chosen = [sampler.choose(np.array([], dtype=np.int32), scores) for _ in range(8)]
        sampler.close()
        return chosen

    assert picks(5, end) == picks(5, spelled)
    # Drawn rather than given, "。" is the same text: what follows is drawn alike.
    sure = scores.copy()
    sure[end[0]] = 50.0
    sampler = GrammarFirstSampler(llama, r'root ::= "。" [a-z]{8}', seed=5, temperature=2.0, top_p=1.0, min_p=0.0)
    assert [sampler.choose(np.array([], dtype=np.int32), sure)] == end
    assert [sampler.choose(np.array([], dtype=np.int32), scores) for _ in range(8)] == picks(5, end)
    sampler.close()
    assert len({tuple(picks(seed, end)) for seed in range(4)}) == 4


def test_mask_in_slices_equals_one_pass(llama, monkeypatch):
    import numpy as np

    from localdigest.llm import sampling

    scores = np.random.default_rng(0).normal(size=llama.n_vocab()).astype(np.float32)
    masks = []
    for size in (1 << 20, 7):  # one pass over the whole vocabulary, then slices of 7 tokens
        monkeypatch.setattr(sampling, "MASK_SLICE", size)
        sampler = GrammarFirstSampler(llama, r'root ::= [a-f0-9]{2,} | "yes"', seed=0, temperature=0.5, top_p=0.9)
        masks.append(np.isfinite(sampler._masked(scores)))
        sampler.close()
    allowed = {llama.detokenize([t]).decode() for t in np.flatnonzero(masks[0])}
    assert set("abcdef0123456789y") <= allowed and "g" not in allowed
    assert (masks[0] == masks[1]).all()


def test_top_k_is_taken_among_the_tokens_the_bans_leave(llama):
    """With most of the vocabulary -inf (the bans), the pick is among the rest, fewer than top_k
    are fine, greedy takes the largest, and nothing left is an error."""
    import numpy as np

    scores = np.full(llama.n_vocab(), -np.inf, dtype=np.float32)
    left = {97: 1.0, 98: 3.0, 99: 2.0}  # a, b, c
    scores[list(left)] = list(left.values())
    sampler = GrammarFirstSampler(llama, r'root ::= [a-z]+', seed=0, temperature=1.0, top_p=1.0, min_p=0.0)
    assert {sampler._pick(scores) for _ in range(60)} == set(left)  # each drawn, none of the -inf ones
    sampler.temperature = 0.0
    assert sampler._pick(scores) == 98
    with pytest.raises(RuntimeError, match="allows no token"):
        sampler._pick(np.full(llama.n_vocab(), -np.inf, dtype=np.float32))
    sampler.close()


def test_sampling_step_benchmark_runs_on_the_tiny_model(tiny_gguf):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sampling_step.py"), "--model", str(tiny_gguf),
                             "--steps", "20", "--repeats", "2", "--ctx", "16384"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert re.search(r"20 steps of .*; \d+% of the logits -inf on average; same candidates both ways", result.stdout)
    for way in ("whole vocabulary", "tokens the bans leave"):
        assert re.search(rf"{way} +[\d.]+ ms per step +[\d.]+x", result.stdout), way


def test_bad_grammar_is_an_error(llama):
    with pytest.raises(ValueError, match="could not parse the grammar"):
        GrammarFirstSampler(llama, "root ::= (", seed=0, temperature=0.5, top_p=0.9)


def test_perf_benchmark_runs_on_the_tiny_model(tiny_gguf):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "perf.py"), "--model", str(tiny_gguf), "--papers", "2",
         "--max-tokens", "64", "--ctx", "16384", "--batch-papers", "3", "--batch-size", "2",
         "--batch-max-tokens", "4096"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for mode in ("raw-llama", "unconstrained", "stock-grammar", "fast-grammar"):
        assert re.search(rf"{mode}\s+[\d.]+ tok/s\s+[\d.]+x unconstrained", result.stdout)
    assert len(re.findall(r"evaluated\s+\d+\s+paper-specific\s+\d+", result.stdout)) == 2
    for figure in (r"pipeline overhead: unconstrained vs raw-llama [\d.]+x", r"Peak RSS of `localdigest run` "
                   r"reviewing 2 papers: \d+ MB = model file \d+ MB \+ \d+ MB", r"ceiling \d+ tok/s",
                   r"batch size 2: +[\d.]+ tok/s total, +[\d.]+ s, valid 3/3", r"batch size 2 vs 1: [\d.]+x",
                   r"Fully cached run of 2 papers: [\d.]+s vs --version [\d.]+s"):
        assert re.search(figure, result.stdout), figure


def test_a_banned_word_is_never_written_even_byte_by_byte(tiny_gguf):
    """The tiny model's vocabulary is bytes: 我 can only be written as e6 88 91, three tokens, like
    Qwen writes " 我" as " \\xe6\\x88" + "\\x91". The ban must stop it there too."""
    from localdigest.llm.base import AnswerFormat
    from localdigest.llm.local import LocalModel
    from localdigest.llm.registry import ModelSpec

    model = LocalModel(ModelSpec("tiny", {"path": str(tiny_gguf)}, n_ctx=2048, generation={"max_tokens": 64}),
                       tiny_gguf)
    grammar = 'root ::= ("我" | "你" | "戏")+ "。"'  # 戏 is e6 88 8f: it shares two bytes with 我
    messages = [{"role": "user", "content": "写一个字"}]
    free = [model.complete(messages, AnswerFormat(grammar), seed=seed).text for seed in range(6)]
    assert any("我" in text for text in free)  # the model does write it when allowed: this test can fail
    banned = [model.complete(messages, AnswerFormat(grammar, avoid=("我",)), seed=seed).text for seed in range(6)]
    assert all(text.endswith("。") and "我" not in text for text in banned), banned
    assert "戏" in "".join(banned)  # after e6 88 it took the other way on
    # Where the grammar allows nothing but the banned word, the ban gives way rather than fail.
    forced = model.complete(messages, AnswerFormat('root ::= "我。"', avoid=("我",)), seed=0).text
    assert forced == "我。"


def test_a_banned_word_of_two_characters_is_not_written_a_character_at_a_time(tiny_gguf):
    """Qwen writes 源码 as 源 + 码, and with its 代码 token banned could write 代 + 码: a word of
    several characters is banned however it is split. The tiny model's tokens are bytes: 代码 is six."""
    from localdigest.llm.base import AnswerFormat
    from localdigest.llm.local import LocalModel
    from localdigest.llm.registry import ModelSpec

    model = LocalModel(ModelSpec("tiny", {"path": str(tiny_gguf)}, n_ctx=2048, generation={"max_tokens": 90}),
                       tiny_gguf)
    grammar = 'root ::= ("代" | "码" | "砂"){12} "。"'  # 砂 is e7 a0 82: it shares two bytes with 码
    messages = [{"role": "user", "content": "写两个字"}]
    free = [model.complete(messages, AnswerFormat(grammar), seed=seed).text for seed in range(8)]
    assert any("代码" in text for text in free)  # written when allowed: this test can fail
    banned = [model.complete(messages, AnswerFormat(grammar, avoid=("代码",)), seed=seed).text for seed in range(8)]
    assert all(text.endswith("。") and "代码" not in text for text in banned), banned
    assert any("代码" not in text and "码" in text for text in banned)  # 码 alone is still written


def test_no_run_of_tokens_is_written_twice(tiny_gguf):
    """The review format's no_repeat: once the answer would repeat a run of its own (a 亮点 copying
    主要工作), the token that completes the run is not sampled. The tiny model's tokens are bytes."""
    from localdigest.llm.base import AnswerFormat
    from localdigest.llm.local import LocalModel
    from localdigest.llm.registry import ModelSpec

    model = LocalModel(ModelSpec("tiny", {"path": str(tiny_gguf)}, n_ctx=2048,
                                 generation={"max_tokens": 64, "temperature": 0.0}), tiny_gguf)
    messages = [{"role": "user", "content": "abc"}]

    def runs(text: str) -> list[str]:
        return [text[i:i + 4] for i in range(len(text) - 3)]

    free = model.complete(messages, AnswerFormat("root ::= [a-z]{40}"), seed=0).text
    assert len(runs(free)) > len(set(runs(free)))  # greedy on random weights loops: this test can fail
    limited = model.complete(messages, AnswerFormat("root ::= [a-z]{40}", no_repeat=4), seed=0).text
    assert len(limited) == 40 and len(runs(limited)) == len(set(runs(limited))), limited
    # A digit or a quote may repeat (two reasons can end alike before their scores).
    digits = model.complete(messages, AnswerFormat("root ::= [0-1]{12}", no_repeat=2), seed=0).text
    assert len(digits) == 12


def test_json_cursor_knows_the_key_of_the_string_being_written():
    from localdigest.llm.sampling import JsonCursor

    answer = '{"main_work": "a \\"quoted\\" word, and: more", "keywords": [{"en": "x", "zh": "y"}], "s": 4}'
    keys = frozenset({b"main_work", b"zh"})
    for size in (1, 2, 3, 5):  # any split into tokens
        cursor, inside = JsonCursor(), []
        for at in range(0, len(answer), size):
            cursor.feed(answer[at:at + size].encode())
            inside.append(cursor.inside(keys))
        # From main_work's opening quote to the end of its value (escaped quotes and a colon inside), and
        # zh's; never in a key, in en's value or between values.
        main_work = answer.index('"a'), answer.index('more"') + len("more")
        zh = answer.index('"y'), answer.index('"y') + 2
        expected = [any(a <= end - 1 < b for a, b in (main_work, zh))
                    for end in range(size, len(answer) + size, size)]
        assert inside == expected, size
        assert cursor.key == b"s" and cursor.tail == b": 4}"[-3:]
    # A lower-case letter goes on a word after a letter, a digit, or a joiner after one of them.
    for written, goes_on in [("Q", True), ("Q-", True), ("2.8", True), ("llama.", True), ("零-", False),
                             ("零", False), (" ", False), (" -", False), ('"', False)]:
        cursor = JsonCursor()
        cursor.feed(('{"zh": "' + written).encode())
        assert cursor.in_word() == goes_on, written
    # A capital that begins a word: after a space, a mark or Chinese, not inside a name or after a joiner.
    for written, capital in [(" H", b"H"), ("（H", b"H"), ("的H", b"H"), ("H", b"H"), ("LL", None), ("Q-T", None),
                             ("2B", None), (" h", None), ("零", None)]:
        cursor = JsonCursor()
        cursor.feed(('{"zh": "' + written).encode())
        assert cursor.lone_capital() == capital, written
    # The value so far, and as it would be with a token: up to the token's closing quote, not an escaped one.
    cursor = JsonCursor()
    cursor.feed('{"main_work": "本文'.encode())
    assert bytes(cursor.value) == "本文".encode()
    assert cursor.value_with('提出。", "h'.encode()) == "本文提出。".encode()
    assert cursor.value_with(b'a \\"b" c') == "本文a \\\"b".encode()
    cursor.feed(b'", "x": 1, "')
    assert cursor.value_with(b'key') == b""  # in a key, not a value
    cursor = JsonCursor()
    cursor.feed(b'{"zh": "a\\')
    assert cursor.value_with(b'"b"') == b'a"b'  # the quote escaped by the value's last byte
    cursor.feed(b'"\\n')
    assert bytes(cursor.value) == b'a"\n'  # escapes undone


def test_latin_words_are_told_by_where_they_begin():
    from localdigest.llm.sampling import LatinWords

    vocabulary = (b" hall", b"hall", "的hall".encode(), b"Hello", b"x", b" tokens", b" tok", b"(e", b"2", b" ",
                  b"-functions", b" The", b"ing the", b" Back", b" Dream", b" RMT", b"LLaMA", b" LL", b"Net", b" A")
    words = LatinWords.from_vocabulary(vocabulary)
    named = {vocabulary[t] for t in words.inside}, {vocabulary[t] for t in words.leading}
    # Capitalised words are begun too (" Back" for "Backbone", " The"); acronyms and single capitals never.
    assert named == ({b" hall", "的hall".encode(), b" tokens", b" tok", b"(e", b"ing the", b" The", b" Back", b" Dream"},
                     {b"hall", b"x", b"-functions", b"Hello", b"Net"})
    allowed = words.allowing(("tokens", "DreamLLM"))
    assert {vocabulary[t] for t in allowed.inside} == named[0] - {b" tokens", b" tok", b" Dream"}
    assert words.allowing(()) is words
    # After a capital that begins a word, what would make it a Capitalised word ("H" + "allucination"),
    # but what goes on towards an allowed name ("D" + "ream" for DreamLLM).
    spelled = (b"allucination", b"ream", b"re", b"reamy", b"x", b"LM", b" ream", b"-ream")
    words = LatinWords.from_vocabulary(spelled).allowing(("DreamLLM", "Hx"))
    assert {spelled[t] for t in words.after_capital(b"H")} == {b"allucination", b"ream", b"re", b"reamy"}
    assert {spelled[t] for t in words.after_capital(b"D")} == {b"allucination", b"x", b"reamy"}  # "Dreamy" is no DreamLLM


def test_no_lower_case_english_word_is_begun_in_a_chinese_value(tiny_gguf):
    """Random weights over a byte vocabulary write lower-case and Capitalised words anywhere; with
    `main_work` a Chinese key, none begins inside its value (one byte a token, so "Hxyz" is "H" then
    the lower case a lone capital may not go on with; "HXyz" goes on an acronym), while the English
    value beside it keeps them."""
    from localdigest.llm.base import AnswerFormat
    from localdigest.llm.local import LocalModel
    from localdigest.llm.registry import ModelSpec

    model = LocalModel(ModelSpec("tiny", {"path": str(tiny_gguf)}, n_ctx=2048, generation={"max_tokens": 200}),
                       tiny_gguf)
    grammar = r'root ::= "{\"main_work\": \"" ([a-zA-Z]{1,3} [ 的]){10} "\", \"en\": \"" ([a-z]{1,3} " "){10} "\"}"'
    messages = [{"role": "user", "content": "write"}]
    begun = re.compile(r"(?<![A-Za-z])[a-z]|(?<![A-Za-z])[A-Z][a-z]")  # after a space, 的 or the opening quote

    def values(answer_format, seed):
        text = model.complete_many([messages], answer_format, seed=seed)[0].text
        return re.fullmatch(r'\{"main_work": "(.*)", "en": "(.*)"\}', text).groups()

    free = [values(AnswerFormat(grammar), seed) for seed in range(3)]
    assert all(begun.search(main_work) for main_work, _en in free)  # this test can fail
    assert any(re.search(r"(?<![A-Za-z])[A-Z][a-z]", main_work) for main_work, _en in free)  # Capitalised too
    kept = [values(AnswerFormat(grammar, chinese_keys=("main_work",)), seed) for seed in range(3)]
    assert not any(begun.search(main_work) for main_work, _en in kept), kept
    assert all(begun.search(en) for _main_work, en in kept)
    # Where the grammar allows only lower-case letters, the ban gives way rather than fail.
    only = model.complete_many([messages], AnswerFormat(r'root ::= "{\"zh\": \"" [a-z]{5} "\"}"',
                                                        chinese_keys=("zh",)), seed=0)[0].text
    assert re.fullmatch(r'\{"zh": "[a-z]{5}"\}', only)


def test_restating_penalty_grows_with_the_copied_run_and_spares_latin():
    """llama.cpp's DRY penalty kept to the answer's prose: a token that would go on copying a run
    of the answer's own earlier tokens loses more the longer the run; an ASCII token (a name, a
    number, a space) ends a run and is never penalised itself."""
    import numpy as np

    from localdigest.llm.sampling import Restating

    ascii_tokens = {7, 8}
    restating = Restating(frozenset({b"reason"}), np.array([t in ascii_tokens for t in range(10)]), allowed=2)
    earlier = [1, 2, 3, 4, 5, 6]
    assert restating.penalties(earlier + [9, 1]) == {}  # one token of a run: not yet
    two, three = restating.penalties(earlier + [9, 1, 2]), restating.penalties(earlier + [9, 1, 2, 3])
    assert set(two) == {3} and set(three) == {4} and three[4] > two[3] > 0
    assert restating.penalties([1, 2, 7, 3, 4, 5, 9, 1, 2, 7, 3, 4]) == {5: restating.multiplier}  # 7 ended the run
    assert restating.penalties([1, 2, 8, 5, 1, 2]) == {}  # what came next was Latin: free to copy
    assert restating.penalties([1, 2, 3, 5, 1, 2, 3, 8]) == {}  # the answer ends in Latin


def test_a_fresh_value_copies_less_of_the_answer_before_it(tiny_gguf):
    """Greedy decoding on random weights loops, so a second value repeats the first; with its key
    in fresh_keys the runs it shares with the first are shorter. Each CJK character is three byte
    tokens in the tiny vocabulary, none of them ASCII."""
    from localdigest.llm.base import AnswerFormat
    from localdigest.llm.local import LocalModel
    from localdigest.llm.registry import ModelSpec

    model = LocalModel(ModelSpec("tiny", {"path": str(tiny_gguf)}, n_ctx=2048,
                                 generation={"max_tokens": 300, "temperature": 0.0}), tiny_gguf)
    grammar = r'root ::= "{\"main_work\": \"" [的是了在有和]{30} "\", \"reason\": \"" [的是了在有和]{30} "\"}"'
    messages = [{"role": "user", "content": "write"}]

    def longest_shared(answer_format, seed):
        text = model.complete_many([messages], answer_format, seed=seed)[0].text
        main_work, reason = re.fullmatch(r'\{"main_work": "(.*)", "reason": "(.*)"\}', text).groups()
        return max((n for n in range(1, 31) for i in range(31 - n) if reason[i:i + n] in main_work), default=0)

    free = [longest_shared(AnswerFormat(grammar), seed) for seed in range(3)]
    fresh = [longest_shared(AnswerFormat(grammar, fresh_keys=("reason",)), seed) for seed in range(3)]
    assert min(free) >= 8, free  # this test can fail
    assert max(fresh) <= 4, (free, fresh)


def test_sentence_openings_are_found_in_any_spelling():
    """A banned opening is turned away at a sentence's start however the tokenizer spells it (one
    token, a token with its own space, a character and then the rest), and only there."""
    from localdigest.llm.sampling import JsonCursor, Openings

    vocabulary = ("然而".encode(), " 然而".encode(), "然".encode(), "而".encode(), "而且".encode(), "本文".encode(),
                  "然而，".encode(), "虽然".encode())
    openings = Openings.from_vocabulary(frozenset({b"main_work"}), ("然而",), vocabulary)
    named = {head.decode("utf-8", errors="replace"): {vocabulary[t].decode() for t in tokens}
             for head, tokens in openings.after.items() if head in (b"", "然".encode())}
    assert named == {"": {"然而", " 然而", "然而，"}, "然": {"而", "而且"}}
    cursor = JsonCursor()
    sentences = []
    for piece in ('{"main_work": "', "本文", "。", " 然", "而", "，作者提出", "！", '", "x": "', "虽"):
        cursor.feed(piece.encode())
        sentences.append(cursor.sentence().decode("utf-8", errors="replace"))
    # The value's start, after a sentence's end mark (a space aside), and a new value each begin anew.
    assert sentences == ["", "本文", "", "然", "然而", "然而，作者提出", "", "", "虽"]
    cursor.feed(("很长的一句话" * 5).encode())
    assert len(cursor.sentence()) <= 24  # only its beginning is kept


def test_a_value_is_not_closed_short_of_its_floor_and_closed_once_past_it(tiny_gguf):
    """Random weights close a value after any sentence the grammar allows (one way on in three); with
    a floor of 6 characters after 2 sentences, no value closes shorter (unless the grammar's fourth
    sentence left no way on), and none goes on past a sentence end once it has both. The cursor
    counts characters (a CJK character is one) and sentences of the value being written."""
    from localdigest.llm.base import AnswerFormat
    from localdigest.llm.local import LocalModel
    from localdigest.llm.registry import ModelSpec
    from localdigest.llm.sampling import JsonCursor

    cursor = JsonCursor()
    counts = []
    for piece in ('{"main_work": "', "本文", "。", "ab", "！", '", "x": "', "c"):
        cursor.feed(piece.encode())
        counts.append((cursor.value_chars, cursor.value_sentences, cursor.at_sentence_end()))
    assert counts == [(0, 0, False), (2, 0, False), (3, 1, True), (5, 1, False), (6, 2, True), (0, 0, False),
                      (1, 0, False)]

    model = LocalModel(ModelSpec("tiny", {"path": str(tiny_gguf)}, n_ctx=2048, generation={"max_tokens": 200}),
                       tiny_gguf)
    grammar = r'root ::= "{\"main_work\": \"" s s? s? s? "\"}"' + '\ns ::= ("ab" | "cde") "。"'
    messages = [{"role": "user", "content": "write"}]

    def sentences(answer_format, seed):
        text = model.complete_many([messages], answer_format, seed=seed)[0].text
        return [s + "。" for s in re.fullmatch(r'\{"main_work": "(.*)"\}', text).group(1).split("。")[:-1]]

    free = [sentences(AnswerFormat(grammar), seed) for seed in range(40)]
    assert any(len("".join(value)) < 6 and len(value) < 4 for value in free)  # this test can fail
    assert any(len("".join(value[:end])) >= 6 for value in free for end in range(2, len(value)))  # and this
    kept = [sentences(AnswerFormat(grammar, floors=(("main_work", 6, 2),)), seed) for seed in range(40)]
    assert all(len("".join(value)) >= 6 or len(value) == 4 for value in kept), kept
    # Closed at the first sentence end where it had both 6 characters and 2 sentences.
    assert all(not any(len("".join(value[:end])) >= 6 for end in range(2, len(value))) for value in kept), kept


def test_no_sentence_of_a_value_opens_with_a_banned_word(tiny_gguf):
    """Random weights over a byte vocabulary open sentences with 然而 when the grammar offers it; with
    `main_work` in opening_keys none of its sentences does, while 然而 inside a sentence and in the
    other value stays. Each CJK character is three byte tokens: 而 is e8 80 8c and 耀 e8 80 80, so
    the word is turned away at its last byte and 然耀 is the way on."""
    from localdigest.llm.base import AnswerFormat
    from localdigest.llm.local import LocalModel
    from localdigest.llm.registry import ModelSpec

    model = LocalModel(ModelSpec("tiny", {"path": str(tiny_gguf)}, n_ctx=2048, generation={"max_tokens": 400}),
                       tiny_gguf)
    sentence = '("然而" | "然耀" | "本文"){1,3} "。"'
    grammar = rf'root ::= "{{\"main_work\": \"" ({sentence}){{6}} "\", \"en\": \"" ({sentence}){{6}} "\"}}"'
    messages = [{"role": "user", "content": "write"}]

    def opened(text: str) -> list[bool]:
        return [s.startswith("然而") for s in text.split("。") if s]

    def values(answer_format, seed):
        text = model.complete_many([messages], answer_format, seed=seed)[0].text
        return re.fullmatch(r'\{"main_work": "(.*)", "en": "(.*)"\}', text).groups()

    free = [values(AnswerFormat(grammar), seed) for seed in range(24)]
    assert any(any(opened(main_work)) for main_work, _en in free)  # this test can fail
    kept = [values(AnswerFormat(grammar, opening_keys=("main_work",), avoid_openings=("然而",)), seed)
            for seed in range(24)]
    assert not any(any(opened(main_work)) for main_work, _en in kept), kept
    assert any(any(opened(en)) for _main_work, en in kept)
    assert any("然而" in main_work for main_work, _en in kept)  # inside a sentence it may stay


def test_a_copied_run_is_found_as_the_text_grows():
    """The sampler reads a copy after each token (`past`: the length before it); it finds one exactly
    when the check, reading the whole text, would: at the first length where the text has one."""
    from localdigest.text import copied_run

    pool = "推荐给在小样本文本分类上微调bert的工程师\n能拿来用的是公开的whisper模型"
    text = "推荐给希望在小样本文本分类上微调大型语言模型的工程师，能拿来用的是公开的whisper模型"
    whole = [copied_run(text[:end], pool, "", 10) for end in range(len(text) + 1)]
    grown = [copied_run(text[:end], pool, "", 10, past=end - 1) for end in range(1, len(text) + 1)]
    first = next(end for end, found in enumerate(whole) if found)
    assert whole[first] == "在小样本文本分类上微" and grown[first - 1] == whole[first]
    assert all(found is None for found in grown[:first - 1])
    assert copied_run(text, pool, "在小样本文本分类上微调", 10) == "能拿来用的是公开的wh"  # the paper's own words may be copied
    assert copied_run("the whisper model is public", pool, "", 10) is None  # Latin weighs half: 20 letters


def test_a_value_copies_no_run_of_the_sources_and_is_otherwise_unchanged(tiny_gguf):
    """Random weights pick pieces that spell a source's sentence; with copy_keys the value never holds
    a run of it (ten characters), and every answer that held none is the same, token for token."""
    from localdigest.llm.base import AnswerFormat
    from localdigest.llm.local import LocalModel
    from localdigest.llm.registry import ModelSpec
    from localdigest.text import compact, copied_run

    model = LocalModel(ModelSpec("tiny", {"path": str(tiny_gguf)}, n_ctx=2048, generation={"max_tokens": 400}),
                       tiny_gguf)
    source = "在小样本文本分类上微调"
    # The tiny vocabulary is bytes, so the way around the copy's tenth character (微, e5 be ae) must
    # share its first two bytes: 德 (e5 be b7).
    grammar = r'root ::= "{\"main_work\": \"" ("在小样本文本分类上" ("微" | "德") "调。" | "本文。"){2,4} "\"}"'
    messages = [{"role": "user", "content": "write"}]

    def value(answer_format, seed):
        return re.fullmatch(r'\{"main_work": "(.*)"\}', model.complete_many([messages], answer_format, seed=seed)[0].text)[1]

    rule = AnswerFormat(grammar, copy_keys=("main_work",), copy_sources=(source,), copy_run=10)
    free = [value(AnswerFormat(grammar), seed) for seed in range(12)]
    kept = [value(rule, seed) for seed in range(12)]
    copied = [copied_run(compact(text), source, "", 10) is not None for text in free]
    assert any(copied) and not all(copied)  # this test can fail
    assert not any(copied_run(compact(text), source, "", 10) for text in kept), kept
    assert all(k == f for k, f, c in zip(kept, free, copied) if not c)
    allowed = [value(AnswerFormat(grammar, copy_keys=("main_work",), copy_sources=(source,), copy_run=10,
                                  copy_allowed=source), seed) for seed in range(12)]
    assert allowed == free  # the paper's own words


def test_repetition_penalty_spares_a_number_value(llama):
    """A review's scores come one after another: the penalty on tokens just written is for prose that
    loops, and must not push a score off the digit of the score before it (Qwen 1.5B's 5 / 4.5 / 3)."""
    import numpy as np

    grammar = r'root ::= "{\"a\": \"" [0-9] "\", \"b\": " [0-9] "}"'
    four, three = ord("4"), ord("3")  # token n of the tiny vocabulary is byte n
    logits = np.full(llama.n_vocab(), -10.0, dtype=np.float32)
    logits[four], logits[three] = 5.0, 4.5  # 5.0 / 1.5 < 4.5: the penalty turns 4 into 3
    recent = np.array([four] * 3)
    sampler = GrammarFirstSampler(llama, grammar, seed=0, temperature=0.0, top_p=1.0, repeat_penalty=1.5)
    try:
        for token in b'{"a": "':
            assert sampler.force(token)
        assert sampler.choose(recent, logits) == three  # inside a string the penalty holds
        for token in b'", "b": ':
            assert sampler.force(token)
        assert sampler.choose(recent, logits) == four  # a number value: the model's own pick
    finally:
        sampler.close()
