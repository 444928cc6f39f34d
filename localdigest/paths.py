"""Where localdigest keeps its files; each place can be moved by an environment variable."""

import os
from pathlib import Path

import platformdirs

APP = "localdigest"


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
