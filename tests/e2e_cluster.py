"""Shared pieces of the end-to-end tests: one running pipeline per module, kubectl, the truth.

The pipeline is ``demo.stack.Stack`` (the same code ``make demo`` runs): stand-in kubelets and
kube-apiserver/aggregator from ``simcluster``, and real processes for the exporter (cluster-wide
mode), Prometheus (Debian package, generated config, 2 s scrape interval) and the adapter
(default rules). kubectl is the real binary. Use the ``e2e_stack`` fixture (module scope) and
the helpers below; ``truth`` functions compute what the simulated cluster really did.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from adapter.quantity import parse_quantity
from demo.stack import Stack, StackError, StackOptions
from simcluster.model import Cluster, Pod

# The default rules take rates over 1m; Prometheus divides by the whole window, so rates are
# only comparable with the truth once a full window of samples exists (plus two scrapes).
RATE_WINDOW_SECONDS = 60.0
FULL_WINDOW_SECONDS = RATE_WINDOW_SECONDS + 6.0
# CPU tolerance: the kubelet, the exporter and Prometheus each sample every 2 s, so a 60 s
# rate window is shifted by up to ~6 s against the adapter's timestamp; on a slowly moving
# load that stays within a few percent. 10 % relative or 3 millicores, whichever is larger.
CPU_RELATIVE_TOLERANCE = 0.10
CPU_ABSOLUTE_TOLERANCE_CORES = 0.003


@pytest.fixture(scope="module")
def e2e_stack(
    prometheus_binary: str, kubectl_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The whole pipeline, started once per module and stopped (every process) afterwards."""
    options = StackOptions(
        workdir=tmp_path_factory.mktemp("e2e"),
        prometheus_binary=prometheus_binary,
        nodes=3,
        pods_per_node=6,
        # Pods replaced mid-test would make "exactly these pods" race with the watch; churn is
        # covered by the apiserver's watch tests, restarts stay on.
        churn_fraction=0.0,
    )
    stack = Stack(options)
    try:
        stack.start()
    except StackError as err:
        pytest.fail(f"the end-to-end pipeline did not start: {err}")
    try:
        yield stack
    finally:
        stack.stop()


def kubectl(stack: Stack, binary: str, *args: str) -> str:
    """Run the real kubectl against the stand-in apiserver; fail the test on a non-zero exit."""
    workdir = stack.options.workdir
    result = subprocess.run(
        [binary, "--kubeconfig", str(stack.kubeconfig), "--cache-dir", str(workdir / "kc"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"HOME": str(workdir), "PATH": "/usr/bin:/bin"},
    )
    if result.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result.stdout


def kubectl_json(stack: Stack, binary: str, path: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(kubectl(stack, binary, "get", "--raw", path))
    return document


def table_rows(text: str) -> list[list[str]]:
    """Whitespace-split rows of kubectl's table output, without the header."""
    return [line.split() for line in text.strip().splitlines()[1:]]


def wait_for_full_window(stack: Stack) -> None:
    """Sleep until Prometheus holds a full rate window of samples (bounded)."""
    remaining = stack.started_at + FULL_WINDOW_SECONDS - time.time()
    if remaining > 0:
        time.sleep(min(remaining, FULL_WINDOW_SECONDS))


def timestamp_seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def quantity_value(text: str) -> float:
    return float(parse_quantity(text).as_fraction())


# -- truth ------------------------------------------------------------------------------------


def pods_now(cluster: Cluster) -> set[tuple[str, str]]:
    """(namespace, name) of the pods alive now."""
    return {(pod.namespace, pod.name) for pod in cluster.pods(time.time())}


def sample_instants(cluster: Cluster, node: str, until: float, span: float) -> list[float]:
    """The kubelet housekeeping instants of ``node`` in ``[until - span, until]``."""
    instants = []
    t = cluster.sample_time(node, until)
    while t >= until - span:
        instants.append(t)
        t = cluster.sample_time(node, t - 0.001)
    return instants


def memory_candidates(cluster: Cluster, pod: Pod, container: str, at: float) -> set[int]:
    """Working sets the pipeline may legitimately show at ``at``: the kubelet's values at the
    housekeeping instants within the last collection + scrape + query delay."""
    return {
        cluster.container_state(pod, container, t).working_set_bytes
        for t in sample_instants(cluster, pod.node_name, at, span=10.0)
    }


def pod_memory_candidates(cluster: Cluster, pod: Pod, at: float) -> set[int]:
    """Like ``memory_candidates`` for the sum over the pod's containers."""
    return {
        sum(cluster.container_state(pod, c, t).working_set_bytes for c in pod.containers)
        for t in sample_instants(cluster, pod.node_name, at, span=10.0)
    }


def node_memory_candidates(cluster: Cluster, node: str, at: float) -> set[int]:
    return {
        cluster.node_memory_working_set(node, t)
        for t in sample_instants(cluster, node, at, span=10.0)
    }


def cpu_close(measured: float, expected: float) -> bool:
    return abs(measured - expected) <= max(
        CPU_RELATIVE_TOLERANCE * expected, CPU_ABSOLUTE_TOLERANCE_CORES
    )
