"""The command line shared by the eval modules that score a segmenter: ``--weights PATH``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path


def main(doc: str, run: Callable[[Path | None], str], argv: list[str] | None = None) -> int:
    """Parse ``--weights`` (default: the shipped segmenter), print ``run(weights)``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sys.stdout.write(run(args.weights) + "\n")
    return 0
