"""Where the project's reference tables and shipped models live.

``data/`` sits at the repository root beside the packages. ``CROPCREDIT_DATA`` overrides it
(a lender's own copy of the tables).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The reference-data folder: ``$CROPCREDIT_DATA`` or ``<repo>/data``."""
    return Path(os.environ.get("CROPCREDIT_DATA", REPO_ROOT / "data"))


def data_file(name: str) -> Path:
    """Path of a file in the reference-data folder (not checked for existence)."""
    return data_dir() / name
