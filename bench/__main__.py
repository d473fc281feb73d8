"""Run every benchmark (or those named): `python -m bench [name ...]`."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path

SKIP = {"common", "__main__"}


def names() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name not in SKIP)


def main(argv: list[str]) -> int:
    chosen = argv or names()
    unknown = set(chosen) - set(names())
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(names())}")
        return 2
    for name in chosen:
        module = importlib.import_module(f"bench.{name}")
        print(f"\n== {name}: {(module.__doc__ or '').strip().splitlines()[0]}")
        started = time.perf_counter()
        module.main()
        print(f"   ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
