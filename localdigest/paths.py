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
