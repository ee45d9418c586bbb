"""Discovery memory and refresh time, 1k vs 120k series, against a real Prometheus.

The series are the same 10 metric names on more pods (container metrics with namespace/pod/
container, application metrics with namespace/pod/service), discovered with config-gen's
default rules. For each size a fresh child process measures, so the numbers do not mix:

- ``label-metadata``: kubemetrics' discovery (MetricDiscovery.refresh: label names and names
  per resource label); refresh time, tracemalloc peak during the refresh, tracemalloc size of
  the registry kept afterwards, and the process' peak RSS (VmHWM);
- ``series-list``: what prometheus-adapter does, ``/api/v1/series`` for each seriesQuery and the
  decoded label sets kept, measured the same way, for comparison.

Run: ``python -m benchmarks discovery_memory`` (or ``make bench``); needs ``prometheus`` and
``promtool`` on PATH. Results are in docs/benchmarks.md, "Discovery memory".
"""

from __future__ import annotations

import gc
import json
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

from adapter.config import load_config_file
from adapter.discovery import DiscoverySettings, MetricDiscovery
from adapter.prometheus import PrometheusClient, PrometheusSettings
from adapter.resources import BuiltinResourceCatalog
from adapter.rules import compile_config
from tests.prometheus_server import running_prometheus  # the tests' launcher, reused

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "tests" / "fixtures" / "prometheus-adapter" / "config-gen-1m.yaml"
CONTAINER_METRICS = (
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "container_network_receive_bytes_total",
    "container_fs_reads_total",
    "container_spec_memory_limit_bytes",
)
APP_METRICS = (
    "http_requests_total",
    "http_request_duration_seconds_total",
    "grpc_server_handled_total",
    "queue_length",
    "worker_busy_ratio",
)
SIZES = (100, 12_000)  # pods; x10 metric names = 1k and 120k series
NAMESPACES = 50
REPEATS = 3


def openmetrics(pods: int, now: float) -> str:
    lines = []
    stamp = f"{now - 30:.0f}"
    for metric in (*CONTAINER_METRICS, *APP_METRICS):
        container = metric.startswith("container_")
        for index in range(pods):
            namespace = f"ns-{index % NAMESPACES}"
            pod = f"app-{index // 10}-{index:06d}"
            if container:
                labels = f'container="main",namespace="{namespace}",pod="{pod}"'
            else:
                labels = f'namespace="{namespace}",pod="{pod}",service="svc-{index // 10}"'
            lines.append(f"{metric}{{{labels}}} 1 {stamp}")
    return "\n".join(lines) + "\n# EOF\n"


def peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return -1


def child(url: str, mode: str) -> dict[str, float]:
    """One measurement in this (fresh) process; returns the figures."""
    config = compile_config(load_config_file(RULES), BuiltinResourceCatalog())
    client = PrometheusClient(PrometheusSettings(url=url, timeout=120.0))
    settings = DiscoverySettings(timedelta(minutes=1), timedelta(hours=1))
    queries = sorted({rule.series_query for rule in config.rules})

    def discover() -> tuple[object, int]:
        if mode == "label-metadata":
            discovery = MetricDiscovery(client, config, settings)
            registry = discovery.refresh()
            if discovery.errors():
                raise RuntimeError(f"discovery failed: {discovery.errors()}")
            return discovery, len(registry.custom)
        # prometheus-adapter's relist: every series of every seriesQuery, with all labels.
        now = time.time()
        label_sets = [client.series([q], start=now - 3600) for q in queries]
        return label_sets, sum(len(sets) for sets in label_sets)

    times = []
    for _ in range(REPEATS):  # untraced: tracemalloc slows allocation-heavy code down
        began = time.perf_counter()
        discover()
        times.append(time.perf_counter() - began)
    gc.collect()
    tracemalloc.start()
    kept, entries = discover()
    gc.collect()
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return {
        "refresh_seconds": min(times),
        "traced_peak_kib": peak / 1024,
        "traced_retained_kib": retained / 1024,
        "peak_rss_kib": peak_rss_kib(),
        "entries": entries,
    }


def measure(url: str, mode: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.discovery_memory", "--child", url, mode],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        timeout=600,
    )
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def run_size(pods: int, prometheus: str, promtool: str, workdir: Path) -> list[str]:
    rows = []
    text = openmetrics(pods, time.time())
    with running_prometheus(
        prometheus, workdir / f"pods-{pods}", openmetrics=text, promtool=promtool
    ) as server:
        for mode in ("label-metadata", "series-list"):
            figures = measure(server.url, mode)
            rows.append(
                f"| {pods * 10:,} | {pods:,} | {mode} | {figures['refresh_seconds']:.3f} | "
                f"{figures['traced_peak_kib']:,.0f} | {figures['traced_retained_kib']:,.0f} | "
                f"{figures['peak_rss_kib'] / 1024:,.1f} | {int(figures['entries']):,} |"
            )
            print(rows[-1], flush=True)
    return rows


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        print(json.dumps(child(argv[1], argv[2])))
        return 0
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus is None or promtool is None:
        print("discovery_memory needs prometheus and promtool on PATH")
        return 1
    print(
        "| series | pods | discovery | refresh s (best of 3) | traced peak KiB | "
        "traced retained KiB | process peak RSS MiB | registry entries / series kept |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="kubemetrics-bench-") as tmp:
        for pods in SIZES:
            run_size(pods, prometheus, promtool, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
