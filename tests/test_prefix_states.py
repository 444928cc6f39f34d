"""The shared prompt prefix's KV cells kept on disk between runs (llm.prefix_states), through real
llama.cpp on the tiny random-weight GGUF: the next run reads them back instead of evaluating the
instructions and examples again, and writes the same answers."""

from conftest import HF_FEED
from localdigest import paths
from localdigest.llm.local import LocalModel
from localdigest.llm.registry import ModelSpec
from localdigest.review.pipeline import Reviewer
from localdigest.review.prompts import load_prompt
from localdigest.sources.feeds import load_feeds


def answers(tiny_gguf, papers, **options):
    """One run: a new model (so a new llama.cpp context), the papers' first answers, one at a time."""
    model = LocalModel(ModelSpec("tiny", {"path": str(tiny_gguf)}, n_ctx=8192, generation={"max_tokens": 64}),
                       tiny_gguf)
    for name, value in options.items():
        setattr(model, name, value)
    prompt = load_prompt()
    answer_format = Reviewer(model, prompt, None).answer_format
    return model.complete_many([prompt.messages(paper) for paper in papers], answer_format, seed=42)


def test_the_next_run_reads_the_shared_prefix_back_and_answers_the_same(tiny_gguf):
    papers = load_feeds([str(HF_FEED)]).papers[:2]
    folder = paths.data_dir() / "prefix-states"
    first = answers(tiny_gguf, papers)
    saved = list(folder.iterdir())
    assert len(saved) == 1 and saved[0].suffix == ".state"  # whole: no partial file left
    second = answers(tiny_gguf, papers)  # another run
    assert [c.text for c in second] == [c.text for c in first]
    shared = first[0].evaluated_prompt_tokens - second[0].evaluated_prompt_tokens
    assert shared > 1000, shared  # the instructions and worked examples, not evaluated again
    assert second[1].evaluated_prompt_tokens == first[1].evaluated_prompt_tokens  # within a run, as before
    assert first[0].evaluated_prompt_tokens - first[1].evaluated_prompt_tokens >= shared

    # Without the store (how the benchmark compares), and as the first run: everything evaluated
    off = answers(tiny_gguf, papers, prefix_states=False)
    assert [c.text for c in off] == [c.text for c in first]
    assert off[0].evaluated_prompt_tokens == first[0].evaluated_prompt_tokens


def test_a_prefix_file_that_does_not_read_costs_only_the_time(tiny_gguf):
    papers = load_feeds([str(HF_FEED)]).papers[:2]
    folder = paths.data_dir() / "prefix-states"
    first = answers(tiny_gguf, papers)
    [saved] = folder.iterdir()
    whole = saved.read_bytes()
    for broken in (whole[:len(whole) // 2], b"\0" * 64, whole[:-8] + b"\xff" * 8):
        saved.write_bytes(broken)
        again = answers(tiny_gguf, papers)
        assert [c.text for c in again] == [c.text for c in first]
        assert again[0].evaluated_prompt_tokens >= first[0].evaluated_prompt_tokens - 1  # evaluated, not read
        assert [p.name for p in folder.iterdir()] == [saved.name] and saved.read_bytes() == whole  # written anew
    # Nowhere to write (a file where the folder would be; a read-only folder does not stop root): the run goes on
    saved.unlink()
    folder.rmdir()
    folder.write_text("not a folder")
    assert [c.text for c in answers(tiny_gguf, papers)] == [c.text for c in first]
    assert folder.read_text() == "not a folder"
