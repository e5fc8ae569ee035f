"""The command line shared by the eval modules that score a segmenter: ``--weights PATH``, and
for those scoring fresh generated regions ``--regions N --size PX``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def main(doc: str, run: Callable[[Path | None], str], argv: list[str] | None = None) -> int:
    """Parse ``--weights`` (default: the shipped segmenter), print ``run(weights)``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sys.stdout.write(run(args.weights) + "\n")
    return 0


def regions_main(doc: str, run: Callable[..., Any], argv: list[str] | None = None) -> int:
    """Parse ``--regions`` (3), ``--size`` (160 px) and ``--weights``, print
    ``run(regions, size, weights)``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--regions", type=int, default=3)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--weights", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sys.stdout.write(str(run(args.regions, args.size, args.weights)) + "\n")
    return 0
