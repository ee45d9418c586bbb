"""Query size: the largest PromQL the adapter sends for a 5,000-pod selector (goal <= 16 KB).

Pure: the planner with the default rules (config/rules.yaml) and a registry as discovery
builds it, for an HPA ``pods/*`` request whose selector matches N pods with simcluster-style
names (``web-<hash>-<suffix>``, 24 characters), and for ``kubectl top pod`` in one namespace.
For each it prints the number of queries and the largest one in bytes, with the default
``--max-query-bytes`` (16 KiB) under both split strategies, and what one unsplit query would be
(prometheus-adapter's behaviour: one ``pod=~"a|b|..."`` regex with every name).

Run: ``python -m benchmarks adapter_query_size``. Results: docs/benchmarks.md, "Query size".
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

from adapter.config import load_config_file
from adapter.planner import ObjectRef, plan_request
from adapter.promql import DEFAULT_MAX_QUERY_BYTES, SplitStrategy
from adapter.registry import SeriesQueryResult, build_registry
from adapter.request_paths import parse_request
from adapter.resources import BuiltinResourceCatalog
from adapter.rules import compile_config

REPO = Path(__file__).resolve().parent.parent
SIZES = (10, 100, 1_000, 5_000)
UNLIMITED = 1 << 30
HPA = (
    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/"
    "container_cpu_usage_seconds_per_second"
)
TOP = "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods"


def pod_name(index: int) -> str:
    digest = hashlib.sha256(str(index).encode()).hexdigest()
    return f"web-{digest[:10]}-{digest[10:15]}"  # the shape of a Deployment's pod names


def main() -> int:
    catalog = BuiltinResourceCatalog()
    compiled = compile_config(load_config_file(REPO / "config" / "rules.yaml"), catalog)
    registry = build_registry(
        compiled,
        {
            query: SeriesQueryResult(
                query,
                {"kubestats_container_cpu_usage_seconds_total": frozenset({"namespace", "pod"})},
                time.time(),
            )
            for query in compiled.custom_series_queries
        },
    )
    print(
        "| request | pods | strategy | budget | queries | largest query bytes | "
        "total bytes | planning ms |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for path, what in ((HPA, "HPA pods/*"), (TOP, "top pods (namespace)")):
        request = parse_request(path, "labelSelector=app%3Dweb" if path == HPA else "")
        for pods in SIZES:
            objects = [ObjectRef("default", pod_name(i)) for i in range(pods)]
            for strategy, budget in (
                (SplitStrategy.CHUNK, DEFAULT_MAX_QUERY_BYTES),
                (SplitStrategy.NAMESPACE, DEFAULT_MAX_QUERY_BYTES),
                (SplitStrategy.CHUNK, UNLIMITED),
            ):
                began = time.perf_counter()
                plan = plan_request(
                    request,
                    registry=registry,
                    catalog=catalog,
                    objects=objects,
                    max_query_bytes=budget,
                    strategy=strategy,
                )
                elapsed = (time.perf_counter() - began) * 1000
                sizes = [len(q.encode()) for q in plan.queries]
                label = "none (one query)" if budget == UNLIMITED else f"{budget:,}"
                name = "unsplit" if budget == UNLIMITED else strategy.value
                print(
                    f"| {what} | {pods:,} | {name} | {label} | {len(sizes)} | {max(sizes):,} | "
                    f"{sum(sizes):,} | {elapsed:.1f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
