"""Where localdigest keeps its files; each place can be moved by an environment variable.

Reading the environment is fine at any level; only the CLI ever writes it.
"""

import os
from pathlib import Path

import platformdirs

APP = "localdigest"
_PACKAGE = Path(__file__).resolve().parent


def shipped(name: str) -> Path:
    """A file or folder shipped with localdigest (models.toml, prompts/): inside an installed wheel it
    is under localdigest/data/ (pyproject's force-include puts it there); in a checkout it is at the
    top of the repository, where people edit it."""
    installed = _PACKAGE / "data" / name
    return installed if installed.exists() else _PACKAGE.parent / name


def hub_endpoint() -> str:
    """HF_ENDPOINT as set now (huggingface-hub reads it once, at import), else its default."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def cache_dir() -> Path:
    """Cached reviews (LOCALDIGEST_CACHE_DIR)."""
    return Path(os.environ.get("LOCALDIGEST_CACHE_DIR") or platformdirs.user_cache_dir(APP))


def data_dir() -> Path:
    """Model files localdigest writes itself, e.g. a GGUF assembled from a pip package (LOCALDIGEST_DATA_DIR)."""
    return Path(os.environ.get("LOCALDIGEST_DATA_DIR") or platformdirs.user_data_dir(APP))


def config_dir() -> Path:
    """User configuration, e.g. models.toml with the user's own models (LOCALDIGEST_CONFIG_DIR)."""
    return Path(os.environ.get("LOCALDIGEST_CONFIG_DIR") or platformdirs.user_config_dir(APP))


def user_models_file() -> Path:
    """The user's model registry: LOCALDIGEST_MODELS_FILE, else models.toml in the config folder."""
    return Path(os.environ.get("LOCALDIGEST_MODELS_FILE") or config_dir() / "models.toml")
