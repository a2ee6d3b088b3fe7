"""The seeds' comparisons, each reproduced by one command: `gankit study NAME`.

A study module has a one-line `DESCRIPTION` and `run(out, data_root=None, progress=True) -> Path`
that writes its figure(s), `report.md` (with its table) and `results.json` into the folder `out`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from gankit.errors import GankitError

# study name -> module under gankit.studies
STUDIES: dict[str, str] = {"mixture": "mixture", "losses": "losses", "multimodal": "multimodal",
                           "semisupervised": "semisupervised"}


def run_study(name: str, out: str | Path | None = None, data_root: str | Path | None = None,
              progress: bool = True) -> Path:
    """Run one study into `out` (default runs/study-NAME) and return that folder."""
    if name not in STUDIES:
        raise GankitError(f"unknown study {name!r}; choose from {', '.join(sorted(STUDIES))}")
    module = importlib.import_module(f"gankit.studies.{STUDIES[name]}")
    folder = Path(out) if out is not None else Path("runs") / f"study-{name}"
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return module.run(folder, data_root=data_root, progress=progress)
    except BaseException:
        # A study refused at its start (missing data, say) leaves no empty folder behind.
        if created and not any(folder.iterdir()):
            folder.rmdir()
        raise


def study_descriptions() -> dict[str, str]:
    return {name: importlib.import_module(f"gankit.studies.{module}").DESCRIPTION
            for name, module in sorted(STUDIES.items())}
