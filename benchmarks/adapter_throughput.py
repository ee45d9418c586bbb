"""Throughput: requests/s the adapter sustains with gunicorn (2 workers x 8 threads), and where
it saturates.

One lean stack (``tests.scale_stack``, 100 pods in ``default/web`` and 400 others). Closed-loop
clients (each sends its next request when the previous answer is in) with the load test's mix
(HPA ``pods/*`` request 3, ``kubectl top pod -A`` 1, discovery 1), at 1, 2, 4, 8, 16 and 32
concurrent clients for ``--seconds`` each. Saturation is the first concurrency where doubling
the clients adds less than 10 % throughput. The clients, Prometheus and the stand-ins share the
machine's cores with the adapter, so the figure is a floor for a dedicated 2-core adapter.

Run: ``python -m benchmarks adapter_throughput``. Results: docs/benchmarks.md, "Throughput".
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from tests.scale_stack import ScaleOptions, ScaleStack, closed_loop, request_mix

CONCURRENCY = (1, 2, 4, 8, 16, 32)
SATURATION_GAIN = 0.10


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="adapter_throughput")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        print("adapter_throughput needs prometheus on PATH")
        return 1
    print(f"machine: {os.cpu_count()} CPUs; adapter: gunicorn {args.workers} workers x 8 threads")
    print("| clients | requests/s | median ms | p99 ms | errors | HPA / top / discovery |")
    print("|---:|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory(prefix="kubemetrics-throughput-") as tmp:
        options = ScaleOptions(
            workdir=Path(tmp),
            prometheus_binary=prometheus,
            web_replicas=100,
            other_pods=400,
            scrape_interval=10,
            prometheus_timeout="30s",
            relist_interval="30s",
            fault_proxy=False,
            workers=args.workers,
            threads=8,
        )
        with ScaleStack(options) as stack:
            paths = request_mix(stack)
            closed_loop(stack, paths, workers=2, seconds=2.0)  # warm-up
            previous = 0.0
            saturated = None
            for clients in CONCURRENCY:
                result = closed_loop(stack, paths, workers=clients, seconds=args.seconds)
                mix = " / ".join(str(result.by_kind.get(k, 0)) for k in ("hpa", "top", "discovery"))
                print(
                    f"| {clients} | {result.rate:.1f} | {result.quantile(0.5) * 1000:.1f} | "
                    f"{result.quantile(0.99) * 1000:.1f} | {len(result.errors)} | {mix} |",
                    flush=True,
                )
                if (
                    saturated is None
                    and previous
                    and result.rate < previous * (1 + SATURATION_GAIN)
                ):
                    saturated = (clients, previous)
                previous = max(previous, result.rate)
    if saturated:
        print(f"saturates at about {saturated[1]:.0f} requests/s ({saturated[0]} clients add <10%)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
