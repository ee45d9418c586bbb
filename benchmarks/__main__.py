"""Run every benchmark: each module ``benchmarks/<name>.py`` with a ``main()`` function.

``python -m benchmarks`` runs them all in name order; ``python -m benchmarks NAME...`` runs the
named ones; ``python -m benchmarks NAME --option ...`` passes the options to that one benchmark's
``main(argv)``. ``main()`` (or ``main(argv)``) returns an exit status; 0 or None is success.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from pathlib import Path


def benchmark_names() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(
        info.name
        for info in pkgutil.iter_modules([str(here)])
        if not info.name.startswith("_") and not info.ispkg
    )


def main(argv: list[str]) -> int:
    available = benchmark_names()
    split = next((i for i, arg in enumerate(argv) if arg.startswith("-")), len(argv))
    names, options = argv[:split], argv[split:]
    if options and len(names) != 1:
        print("options go to one benchmark: python -m benchmarks NAME --option ...")
        return 2
    wanted = names or available
    unknown = [name for name in wanted if name not in available]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}")
        return 2
    failed = []
    for name in wanted:
        module = importlib.import_module(f"benchmarks.{name}")
        run = getattr(module, "main", None)
        if not callable(run):
            continue
        print(f"== {name}", flush=True)
        # main() or main(argv): both forms are accepted.
        if inspect.signature(run).parameters:
            status = run(options)
        elif options:
            print(f"{name} takes no options")
            return 2
        else:
            status = run()
        if status:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
