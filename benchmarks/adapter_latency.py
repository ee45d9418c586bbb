"""HPA request latency through the adapter divided by the same PromQL sent straight to Prometheus.

For 10, 100, 1,000 and 5,000 matching pods (``default/web``, label ``app=web``, plus 500 other
pods), one lean stack each (``tests.scale_stack``: the real adapter process with gunicorn and
TLS, a real Prometheus scraping a synthetic exporter, the stand-in API server). The request is
the HPA's ``custom.metrics.k8s.io/v1beta2 .../pods/%2A/container_cpu_usage_seconds_per_second
?labelSelector=app=web``, sent as the aggregator does (front-proxy certificate, keep-alive).
The baseline is the exact PromQL the adapter runs for it (taken from ``/debug/explain``), sent
to the same Prometheus with the same HTTP client (GET, or POST when long), all queries of the
request in sequence. Adapter and baseline alternate, in the same run, so drift hits both.

Run: ``python -m benchmarks adapter_latency`` (``--sizes 10,100`` for fewer). Results:
docs/benchmarks.md, "HPA request latency".
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.scale_stack import ScaleOptions, ScaleStack

SIZES = (10, 100, 1_000, 5_000)
OTHER_PODS = 500
WARMUP = 5
GET_LIMIT_BYTES = 8_000  # longer queries go as a POST form, as the adapter's client does


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def repeats_for(pods: int) -> int:
    return 200 if pods <= 100 else 100 if pods <= 1000 else 40


def direct(session: requests.Session, url: str, queries: list[str]) -> float:
    began = time.perf_counter()
    for query in queries:
        if len(query) > GET_LIMIT_BYTES:
            response = session.post(f"{url}/api/v1/query", data={"query": query}, timeout=60)
        else:
            response = session.get(f"{url}/api/v1/query", params={"query": query}, timeout=60)
        response.raise_for_status()
        response.json()
    return time.perf_counter() - began


def through_adapter(session: requests.Session, url: str, expected: int) -> float:
    began = time.perf_counter()
    response = session.get(url, timeout=60)
    response.raise_for_status()
    items = response.json()["items"]
    elapsed = time.perf_counter() - began
    if len(items) != expected:
        raise RuntimeError(f"expected {expected} items, got {len(items)}")
    return elapsed


def measure(pods: int, prometheus: str, workdir: Path) -> str:
    options = ScaleOptions(
        workdir=workdir / f"pods-{pods}",
        prometheus_binary=prometheus,
        web_replicas=pods,
        other_pods=OTHER_PODS,
        scrape_interval=10,
        prometheus_timeout="30s",
        relist_interval="30s",
        fault_proxy=False,
        workers=1,
        threads=8,
    )
    with ScaleStack(options) as stack:
        adapter = stack.client()
        plain = requests.Session()
        plain.trust_env = False
        explained = adapter.get(
            stack.adapter_url + "/debug/explain", params={"path": stack.hpa_path()}, timeout=60
        ).json()
        queries = [step["query"] for step in explained["queries"]]
        hpa_url = stack.adapter_url + stack.hpa_path()
        matching = stack.web_pods()
        for _ in range(WARMUP):
            through_adapter(adapter, hpa_url, matching)
            direct(plain, stack.prometheus_url, queries)
        adapter_times, direct_times = [], []
        for _ in range(repeats_for(pods)):
            adapter_times.append(through_adapter(adapter, hpa_url, matching))
            direct_times.append(direct(plain, stack.prometheus_url, queries))
    a50, a99 = statistics.median(adapter_times), quantile(adapter_times, 0.99)
    d50, d99 = statistics.median(direct_times), quantile(direct_times, 0.99)
    return (
        f"| {pods:,} | {len(queries)} | {max(len(q) for q in queries):,} | "
        f"{a50 * 1000:.1f} | {d50 * 1000:.1f} | **{a50 / d50:.2f}x** | "
        f"{a99 * 1000:.1f} | {d99 * 1000:.1f} | **{a99 / d99:.2f}x** | {len(adapter_times)} |"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="adapter_latency")
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    args = parser.parse_args(argv)
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        print("adapter_latency needs prometheus on PATH")
        return 1
    print(
        "| matching pods | queries | largest query bytes | adapter median ms | "
        "Prometheus median ms | median ratio | adapter p99 ms | Prometheus p99 ms | "
        "p99 ratio | samples |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="kubemetrics-latency-") as tmp:
        for pods in (int(s) for s in args.sizes.split(",")):
            print(measure(pods, prometheus, Path(tmp)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
