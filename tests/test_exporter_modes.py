"""The real kubemetrics-exporter process in per-node mode (DaemonSet), over TLS with a token.

Cluster-wide mode (--all-nodes with a kubeconfig) runs as a real process in the end-to-end
tests (tests/test_e2e.py, through demo.stack); collector-level behaviour of both modes is in
tests/test_exporter_collector.py.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import trustme
from prometheus_client.parser import text_string_to_metric_families

from simcluster.kubelet_server import KubeletFleet
from simcluster.model import ClusterSpec, generate_cluster

TOKEN = "per-node-token-0123456789"
EPOCH = 1_700_000_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def kubelet(tmp_path: Path) -> Iterator[tuple[KubeletFleet, Path, Path]]:
    ca = trustme.CA()
    ca_file, token_file = tmp_path / "ca.crt", tmp_path / "token"
    ca.cert_pem.write_to_path(str(ca_file))
    token_file.write_text(TOKEN, encoding="utf-8")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    cluster = generate_cluster(ClusterSpec(nodes=2, pods_per_node=3, seed=7), epoch=EPOCH)
    with KubeletFleet(
        cluster, clock=lambda: EPOCH + 600.0, ssl_context=context, token=TOKEN
    ) as fleet:
        yield fleet, ca_file, token_file


def scrape_until_ready(url: str, process: subprocess.Popen[str], deadline: float) -> str:
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            response = requests.get(url, timeout=2)
        except requests.ConnectionError:
            time.sleep(0.1)
            continue
        if response.status_code == 200:
            return response.text
        time.sleep(0.1)
    pytest.fail(f"exporter at {url} did not become ready")


def test_per_node_mode_reads_its_own_kubelet_over_tls_with_a_token(
    kubelet: tuple[KubeletFleet, Path, Path],
) -> None:
    fleet, ca_file, token_file = kubelet
    node = sorted(fleet.urls)[0]
    kubelet_port = int(fleet.urls[node].rsplit(":", 1)[1])
    listen = free_port()
    env = {**os.environ, "NODE_NAME": node, "NODE_IP": "127.0.0.1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter.cli",
            f"--kubelet-port={kubelet_port}",
            f"--kubelet-ca-file={ca_file}",
            f"--kubelet-token-file={token_file}",
            f"--listen-address=127.0.0.1:{listen}",
            "--collect-interval=1s",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        text = scrape_until_ready(
            f"http://127.0.0.1:{listen}/metrics", process, time.monotonic() + 20
        )
    finally:
        process.terminate()
        _, log = process.communicate(timeout=10)
    assert process.returncode == 0, log
    assert TOKEN not in log
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("kubestats_exporter_scrape_success", (("node", node),))] == 1
    nodes = {dict(labels)["node"] for _, labels in samples if "node" in dict(labels)}
    assert nodes == {node}, "per-node mode must read only its own kubelet"
    pods = {
        dict(labels)["pod"]
        for name, labels in samples
        if name == "kubestats_pod_cpu_usage_seconds_total"
    }
    assert len(pods) == 3
    # /pods was read with the same credentials: requests come from the pod spec.
    assert any(name == "kubestats_container_cpu_request_cores" for name, _ in samples)
    assert fleet.request_count(node, "/stats/summary") >= 1
    other = sorted(fleet.urls)[1]
    assert fleet.request_count(other, "/stats/summary") == 0
