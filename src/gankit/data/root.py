"""Where datasets live: --data-root, else $GANKIT_DATA_ROOT, else ../shared/data, else a cache."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "GANKIT_DATA_ROOT"
# The repository sits beside shared/ in the development checkout: src/gankit/data/root.py
_REPO_ROOT = Path(__file__).resolve().parents[3]


def cache_root() -> Path:
    """The per-user folder where datasets are downloaded when online."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gankit" / "data"


def resolve_data_root(explicit: str | Path | None = None) -> Path:
    """The data root to read datasets from.

    Args:
        explicit: the `--data-root` value, which wins when given.

    Returns:
        `explicit`, else $GANKIT_DATA_ROOT, else the first `../shared/data` that exists (beside
        the working directory or beside the repository), else `cache_root()`.
    """
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    for shared in (Path.cwd().parent / "shared" / "data", _REPO_ROOT.parent / "shared" / "data"):
        if shared.is_dir():
            return shared
    return cache_root()
