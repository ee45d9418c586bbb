"""Discovery at scale: RSS and refresh time with about 1 M series vs 1k (goal <= 100 MB RSS,
flat in the number of pods).

Same data shape and measurement as ``benchmarks/discovery_memory.py`` (10 metric names per pod,
prometheus-adapter's config-gen rules, a fresh child process per figure: best-of-3 refresh
time, tracemalloc peak and retained size, process peak RSS ``VmHWM``), but with 100 pods
(1,000 series) and 100,000 pods (1,000,000 series) backfilled into a real Prometheus with
``promtool tsdb create-blocks-from openmetrics``. Only kubemetrics' discovery is measured at
1 M: prometheus-adapter's series listing would hold every label set (about 0.4 KiB per series,
see "Discovery memory"), several hundred MiB.

Run: ``python -m benchmarks discovery_scale`` (``--pods 100,100000``). The backfill of 1 M
series takes a few minutes and about 2 GB of disk. Results: docs/benchmarks.md,
"Discovery at 1 M series".
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.discovery_memory import measure, openmetrics
from tests.prometheus_server import running_prometheus

SIZES = (100, 100_000)  # pods; x10 metric names = 1k and 1M series


def backfill_blocks(promtool: str, pods: int, directory: Path) -> None:
    """TSDB blocks for ``pods`` in ``directory/data`` (where running_prometheus keeps it); the
    tests' helper allows 60 s for promtool, too little for 1 M series."""
    blocks = directory / "data"
    blocks.mkdir(parents=True)
    source = directory / "backfill.om"
    source.write_text(openmetrics(pods, time.time()), encoding="utf-8")
    subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(source),
            str(blocks),
        ],
        check=True,
        capture_output=True,
        timeout=1800,
    )
    source.unlink()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="discovery_scale")
    parser.add_argument("--pods", default=",".join(str(s) for s in SIZES))
    args = parser.parse_args(argv)
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus is None or promtool is None:
        print("discovery_scale needs prometheus and promtool on PATH")
        return 1
    print(
        "| series | pods | backfill s | refresh s (best of 3) | traced peak KiB | "
        "traced retained KiB | process peak RSS MiB | registry entries |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="kubemetrics-discovery-scale-") as tmp:
        for pods in (int(p) for p in args.pods.split(",")):
            directory = Path(tmp) / f"pods-{pods}"
            began = time.perf_counter()
            backfill_blocks(promtool, pods, directory)
            backfill = time.perf_counter() - began
            with running_prometheus(prometheus, directory) as server:
                figures = measure(server.url, "label-metadata")
            print(
                f"| {pods * 10:,} | {pods:,} | {backfill:.0f} | {figures['refresh_seconds']:.3f} | "
                f"{figures['traced_peak_kib']:,.0f} | {figures['traced_retained_kib']:,.0f} | "
                f"**{figures['peak_rss_kib'] / 1024:,.1f}** | {int(figures['entries']):,} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
