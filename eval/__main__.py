"""Run every module of a package (eval or bench) with a ``run() -> str``, or those named on the
command line, and print their tables."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path


def main(names: list[str], package: str = "eval") -> int:
    here = Path(__file__).parents[1] / package
    modules = names or sorted(
        m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_")
    )
    failed = 0
    for name in modules:
        module = importlib.import_module(f"{package}.{name}")
        if not hasattr(module, "run"):
            continue
        print(f"\n=== {package}.{name} ===", flush=True)
        started = time.perf_counter()
        try:
            print(module.run(), flush=True)
        except Exception:  # report and go on: one broken section must not hide the others
            failed += 1
            traceback.print_exc()
        print(f"({time.perf_counter() - started:.0f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
