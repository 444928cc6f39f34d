import pytest

from localdigest.errors import PromptError
from localdigest.sources.papers import Paper
from localdigest.review.checks import announces_release
from localdigest.review.prompts import PROMPTS_DIR, load_prompt, shipped_prompt_names

OPENED = [name for name in shipped_prompt_names() if load_prompt(name).openings]  # default, concise
WITH_EXAMPLES = [name for name in shipped_prompt_names() if load_prompt(name).examples]

PAPERS = [Paper(arxiv_id="2309.1", title="A", abstract="First.", authors=("X",)),
          Paper(arxiv_id="2309.2", title="B", abstract="Second $5 and $10 ${not_a_variable}.")]


@pytest.mark.parametrize("name", sorted(p.stem for p in PROMPTS_DIR.glob("*.toml")))
def test_shipped_prompts_render_a_shared_prefix(name):
    template = load_prompt(name)
    first, second = (template.messages(p) for p in PAPERS)
    assert first[:-1] == second[:-1]  # byte-identical prefix: llama.cpp evaluates it once per run
    # Dollars in a paper are the paper's text, never template variables.
    assert "First." in first[-1]["content"] and "Second $5 and $10 ${not_a_variable}." in second[-1]["content"]


@pytest.mark.parametrize("abstract, shown", [
    ("a $360^\\circ$ view", "a 360° view"),  # garbled by the model when shown as LaTeX
    ("up to 2.8$\\times$ faster", "up to 2.8× faster"),
    ("tasks, \\eg ASR, \\ie speech", "tasks, e.g. ASR, i.e. speech"),
    ("$\\alpha$-blending at $O(n^{2})$ for $x_{i}$ and $k$", "α-blending at O(n^2) for xi and k"),
    ("\\textbf{\\emph{Fast}}LLM uses 5\\textmu s", "FastLLM uses 5µ s"),
    # BibTeX-style groups (MetaMath's abstract: the model copied the braces), not escaped braces or a script
    ("a dataset called {MetaMathQA}, beats {GPT-3.5-Turbo}.", "a dataset called MetaMathQA, beats GPT-3.5-Turbo."),
    ("the set \\{a, b\\} and x^{2}", "the set {a, b} and x^{2}"),
    # Not LaTeX, left as written: money, a per cent sign, a tilde, an unknown command, a lone dollar.
    ("costs $5 and $10, 20% of it, ~10x, C:\\Users, a $ b $ c", "costs $5 and $10, 20% of it, ~10x, C:\\Users, a $ b $ c"),
])
def test_the_prompt_shows_latex_as_text(abstract, shown):
    messages = load_prompt("default").messages(Paper(arxiv_id="2309.3", title="T $\\times$ 2", abstract=abstract))
    assert f"摘要：{shown}" in messages[-1]["content"] and "标题：T × 2" in messages[-1]["content"]


def test_prompt_by_path_and_unknown_variable(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('system = "Review."\nuser = "$title $abstrct"\n', encoding="utf-8")
    with pytest.raises(PromptError) as caught:
        load_prompt(str(path))
    assert caught.value.message == f"{path}: field 'user' uses unknown variable $abstrct"
    assert "$abstract" in caught.value.fix


@pytest.mark.parametrize(
    "text, message",
    [
        ('system = "x"\nuser = "unterminated\n', "not valid TOML"),
        ('system = "x"\n', "'user' is missing or empty"),
        ('system = "x"\nuser = "y"\ntemperature = 1\n', "unknown key(s) ['temperature']"),
        ('system = "x"\nuser = "y"\n[[examples]]\nuser = "q"\n', "examples[0] must have exactly"),
        ('system = "100$"\nuser = "y"\n', "field 'system'"),
        ('system = "x"\nuser = "y"\nopenings = { novelty = "新" }\n', "openings.novelty: not main_work or a score"),
        ('system = "x"\nuser = "y"\nopenings = { innovation = "新。" }\n', "openings.innovation: '新。' cannot open"),
        ('system = "x"\nuser = "y"\nopenings = { innovation = 3 }\n', "openings.innovation: 3 cannot open"),
        ('system = "x"\nuser = "y"\nopenings = "推荐给"\n', "'openings' must be a table"),
        ('system = "x"\nuser = "y"\nopenings_without_release = { practicality = "可借鉴。" }\n',
         "openings_without_release.practicality: '可借鉴。' cannot open"),
        ('system = "x"\nuser = "y"\nopenings_without_release = 5\n', "'openings_without_release' must be a table"),
    ],
)
def test_broken_templates_name_the_file_and_problem(tmp_path, text, message):
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PromptError) as caught:
        load_prompt(str(path))
    assert str(path) in caught.value.message and message in caught.value.message


def test_unknown_prompt_name_lists_the_available_ones():
    with pytest.raises(PromptError) as caught:
        load_prompt("nonexistent")
    assert "default" in caught.value.fix


@pytest.mark.parametrize("name", OPENED)
def test_the_examples_open_their_reasons_as_the_instructions_say(name):
    """A small model copies the examples' shape over the instructions': an example reason that
    opened differently would teach the model to ignore the openings (README, Prompts)."""
    import json

    prompt = load_prompt(name)
    openings = dict(prompt.openings)
    assert set(openings) - {"main_work"} == {"practicality", "innovation", "recommendation"}
    positions = [prompt.system.find(f"“{words}”") for words in openings.values()]
    assert -1 not in positions and positions == sorted(positions)  # the instructions name them, in order
    assert all(f"“{words}”" in prompt.system for words in dict(prompt.openings_without_release).values())
    for user, answer in prompt.examples:  # each with the openings of its own paper: a release or none
        example = json.loads(answer)
        own = openings if announces_release(user) else {**openings, **dict(prompt.openings_without_release)}
        assert example["main_work"].startswith(own.get("main_work", ""))
        for score_name, score in example["scores"].items():
            assert score["reason"].startswith(own[score_name]), (score_name, score["reason"])


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_the_examples_are_answers_the_grammar_allows(name):
    """An example the grammar could not write (a sentence over its cap, an opening it does not force)
    shows the model a shape it is then forced out of, mid-answer. Left out: 主要工作's least number of
    sentences. default's examples keep theirs in one sentence, as measured: split into two with the
    same words (stop 34, seed 42), English / Chinese keyword F1 fell 0.44 / 0.34 -> 0.41 / 0.31, length
    1.04 -> 0.88, answers asked again 1 -> 3 of 26, and Languini Kitchen was summed up as BERT
    fine-tuning, the learning-rate example's subject (README, Benchmarks)."""
    import re
    from dataclasses import replace

    from localdigest.review.schema import Review, prose_shape

    prompt = load_prompt(name)
    for user, answer in prompt.examples:
        # the patterns the grammar and the servers are given for the example's paper: a release or none
        fields = prompt.schema(announces_release(user))["properties"]
        scores = fields["scores"]["properties"]
        review = Review.from_json(answer)
        main_work = replace(prose_shape(fields["main_work"]["pattern"]), least=1)  # with its opening, if any
        assert re.fullmatch(main_work.pattern, review.main_work), review.main_work
        assert re.fullmatch(fields["highlights"]["pattern"], review.highlights), review.highlights
        for score_name, score in review.scores().items():
            assert re.fullmatch(scores[score_name]["properties"]["reason"]["pattern"], score.reason), score.reason


def test_openings_are_part_of_the_prompt_and_its_schema(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('system = "x"\nuser = "$title $schema"\n', encoding="utf-8")
    plain = load_prompt(str(path))
    path.write_text('system = "x"\nuser = "$title $schema"\nopenings = { recommendation = "推荐给" }\n', encoding="utf-8")
    opened = load_prompt(str(path))
    assert opened.fingerprint() != plain.fingerprint()  # cached reviews of one are not the other's
    paper = Paper("2309.1", "T", "A")
    assert "^推荐给" in opened.messages(paper)[-1]["content"] and "^推荐给" not in plain.messages(paper)[-1]["content"]
    path.write_text('system = "x"\nuser = "$title $schema"\nopenings = { recommendation = "推荐给" }\n'
                    'openings_without_release = { recommendation = "值得读的是" }\n', encoding="utf-8")
    both = load_prompt(str(path))
    assert both.fingerprint() != opened.fingerprint()
    assert both.messages(paper) == opened.messages(paper)  # a paper with a release: as before
    assert "^值得读的是" in both.messages(paper, released=False)[-1]["content"]
