"""``kubectl top pod -A`` with 5,000 pods, end to end (goal <= 1 s).

One lean stack (``tests.scale_stack``) with 5,000 pods; the stand-in aggregator proxies
``metrics.k8s.io`` to the real adapter process. The real ``kubectl`` 1.32 runs
``top pod -A`` against the stand-in API server, so the time includes kubectl's start, its
discovery (cached after the first run, as on a workstation), the aggregator hop, the adapter's
two Prometheus queries (CPU and memory over every pod) and kubectl's table. Also timed: the
same ``/apis/metrics.k8s.io/v1beta1/pods`` request straight to the adapter, and the adapter's
queries sent straight to Prometheus, to show where the time goes.

Run: ``python -m benchmarks adapter_top`` (``--pods N`` for another size). Results:
docs/benchmarks.md, "kubectl top pod -A".
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.scale_stack import ScaleOptions, ScaleStack

PODS = 5_000
REPEATS = 10
TOP_PATH = "/apis/metrics.k8s.io/v1beta1/pods"


def process_tree_rss_mib(pid: int) -> float:
    """VmRSS of a process and its children (the gunicorn master and its workers)."""
    total_kib = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        status = Path(f"/proc/{current}/status").read_text(encoding="utf-8")
        total_kib += next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
        )
        children = Path(f"/proc/{current}/task/{current}/children").read_text(encoding="utf-8")
        pending += [int(child) for child in children.split()]
    return total_kib / 1024


def kubectl_top(kubectl: str, stack: ScaleStack, kubeconfig: Path, home: Path) -> float:
    began = time.perf_counter()
    result = subprocess.run(
        [
            kubectl,
            "--kubeconfig",
            str(kubeconfig),
            "--cache-dir",
            str(home / "kc"),
            "top",
            "pod",
            "-A",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    elapsed = time.perf_counter() - began
    if result.returncode != 0:
        raise RuntimeError(f"kubectl top pod -A failed: {result.stderr[:500]}")
    rows = len(result.stdout.strip().splitlines()) - 1
    if rows < stack.options.web_replicas * 0.99:
        raise RuntimeError(f"kubectl printed {rows} pods for {stack.options.web_replicas}")
    return elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="adapter_top")
    parser.add_argument("--pods", type=int, default=PODS)
    args = parser.parse_args(argv)
    prometheus, kubectl = shutil.which("prometheus"), shutil.which("kubectl")
    if prometheus is None or kubectl is None:
        print("adapter_top needs prometheus and kubectl on PATH")
        return 1
    with tempfile.TemporaryDirectory(prefix="kubemetrics-top-") as tmp:
        workdir = Path(tmp)
        options = ScaleOptions(
            workdir=workdir / "stack",
            prometheus_binary=prometheus,
            web_replicas=args.pods,
            other_pods=0,
            scrape_interval=10,
            prometheus_timeout="30s",
            relist_interval="30s",
            fault_proxy=False,
        )
        with ScaleStack(options) as stack:
            api = stack.api
            api.set_adapter(stack.adapter_url, api.ca_file)
            kubeconfig = api.write_kubeconfig(
                workdir / "kubeconfig", api.credentials.admin_token, "admin"
            )
            kubectl_top(kubectl, stack, kubeconfig, workdir)  # fills kubectl's discovery cache
            adapter = stack.client()
            plain = requests.Session()
            plain.trust_env = False
            explained = adapter.get(
                stack.adapter_url + "/debug/explain", params={"path": TOP_PATH}, timeout=60
            ).json()
            queries = [step["query"] for step in explained["queries"]]
            top_times, adapter_times, prometheus_times = [], [], []
            for _ in range(REPEATS):
                top_times.append(kubectl_top(kubectl, stack, kubeconfig, workdir))
                began = time.perf_counter()
                response = adapter.get(stack.adapter_url + TOP_PATH, timeout=60)
                items = len(response.json()["items"])
                adapter_times.append(time.perf_counter() - began)
                began = time.perf_counter()
                for query in queries:
                    plain.post(
                        f"{stack.prometheus_url}/api/v1/query", data={"query": query}, timeout=60
                    ).json()
                prometheus_times.append(time.perf_counter() - began)
            assert stack.adapter is not None
            assert stack.adapter.pid is not None
            rss = process_tree_rss_mib(stack.adapter.pid)
    print(
        "| pods | kubectl top pod -A median s (max) | adapter request median s | "
        "its Prometheus queries median s | items | queries | adapter RSS MiB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {args.pods:,} | **{statistics.median(top_times):.2f}** ({max(top_times):.2f}) | "
        f"{statistics.median(adapter_times):.2f} | {statistics.median(prometheus_times):.2f} | "
        f"{items:,} | {len(queries)} | {rss:.0f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
