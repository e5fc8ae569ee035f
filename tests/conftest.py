"""Session fixtures shared by every test package: the repository root and the real data set.

``shared_data`` is ``<repo>/../shared/data`` (see ``../shared/data/README.md``); tests that use
it are marked ``shared_data`` and skip where the directory is absent, as on a user's machine.
The helpers beside the imagery source tests (``tests/geo/loopback.py``,
``tests/geo/fixtures_imagery.py``) are importable from every test package.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# pytest puts tests/geo on sys.path only once it collects a module there; say it up front, so
# tests/flows can start the loopback server whatever is collected.
if str(REPO_ROOT / "tests" / "geo") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "tests" / "geo"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (the directory holding pyproject.toml)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository; skips the test where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real reference data not found at {SHARED_DATA}")
    return SHARED_DATA
