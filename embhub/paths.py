"""Where embhub keeps user files: ``$EMBHUB_HOME`` (default ``~/.embhub``)."""

import os
from pathlib import Path


def embhub_home() -> Path:
    return Path(os.environ.get("EMBHUB_HOME", Path.home() / ".embhub")).expanduser()


def default_store_dir() -> Path:
    return embhub_home() / "stores"
