"""Where the project's reference tables and shipped models live.

In the repository, ``data/`` sits at the root beside the packages. A wheel installs the same
folder as the package ``cropcredit_data`` (``package-dir`` in ``pyproject.toml``), found with
:mod:`importlib.util` when there is no repository copy, so an installed cropcredit needs no
checkout. ``CROPCREDIT_DATA`` overrides the folder of :func:`data_file` (a lender's own copy of
the tables); :func:`shipped_file` always names the copy that came with the code.
"""

from __future__ import annotations

import importlib.util
import os
from functools import cache
from pathlib import Path
from typing import Final

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The installed package that carries ``data/`` inside a wheel.
DATA_PACKAGE: Final[str] = "cropcredit_data"


@cache
def shipped_dir() -> Path:
    """The data folder that came with the code: ``<repo>/data`` in a checkout (an editable
    install included), else the installed :data:`DATA_PACKAGE`.

    Falls back to ``<repo>/data`` when neither exists, so a missing file's error names a path.
    """
    repo_copy = REPO_ROOT / "data"
    if (REPO_ROOT / "pyproject.toml").is_file() and repo_copy.is_dir():
        return repo_copy
    # data/ has no __init__.py: cropcredit_data is a namespace package, found by its locations.
    spec = importlib.util.find_spec(DATA_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        if Path(location).is_dir():
            return Path(location)
    return repo_copy


def shipped_file(name: str) -> Path:
    """Path of a file shipped with the code (tables, ``models/...``); ignores
    ``$CROPCREDIT_DATA``; not checked for existence."""
    return shipped_dir() / name


def data_dir() -> Path:
    """The reference-data folder: ``$CROPCREDIT_DATA``, else :func:`shipped_dir`."""
    override = os.environ.get("CROPCREDIT_DATA")
    return Path(override) if override else shipped_dir()


def data_file(name: str) -> Path:
    """Path of a file in the reference-data folder (not checked for existence)."""
    return data_dir() / name
