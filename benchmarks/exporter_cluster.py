"""Cluster-wide exporter cost: 500 stand-in kubelets (30 pods each) on loopback.

The parent process runs the stand-in kubelets (simcluster ``KubeletFleet``: HTTPS with a
generated CA, bearer token required, payloads built once and cached). A fresh child process is
the exporter: ``ClusterTargets`` over a static node list (what the API server would return),
``KubeletClient`` per node with the token and CA, and the ``Collector`` with its default pool
(64). It runs one warm-up round (TLS handshakes, first imports), then ``--rounds`` measured
rounds, and reports time per round, the exporter's CPU per round and per node (and, spread over
the default 15 s interval, in millicores per node), and its RSS (peak and after the rounds) per
node, next to metrics-server's published 1 mCPU and 2 MB per node.

Run: ``python -m benchmarks exporter_cluster`` (or ``make bench``). Results: docs/benchmarks.md,
"Exporter: cluster-wide".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EPOCH = 1_750_000_000
TOKEN = "benchmark-token"
INTERVAL_SECONDS = 15.0


def _rss_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(spec_path: Path, rounds: int) -> dict[str, Any]:
    from exporter.collector import Collector  # noqa: PLC0415
    from exporter.kubelet_client import KubeletAuth, KubeletClient  # noqa: PLC0415
    from exporter.nodes import KubeletTarget, kubelet_targets  # noqa: PLC0415
    from exporter.targets import ClusterTargets  # noqa: PLC0415

    spec = json.loads(spec_path.read_text())
    nodes = spec["nodes"]

    class StaticLister:
        def list_nodes(self) -> list[dict[str, Any]]:
            return nodes

    auth = KubeletAuth(token_file=Path(spec["token_file"]), ca_file=Path(spec["ca_file"]))

    def connect(target: KubeletTarget) -> KubeletClient:
        return KubeletClient(target.url, auth, timeout_seconds=10.0)

    targets = ClusterTargets(StaticLister(), kubelet_targets, connect)
    collector = Collector(
        targets, interval_seconds=INTERVAL_SECONDS, timeout_seconds=10.0, max_concurrent_scrapes=64
    )
    rss_before = _rss_mib("VmRSS")
    collector.collect_round()  # warm-up: TLS handshakes, connection pools
    walls, cpus = [], []
    size = 0
    for _ in range(rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        snapshot = collector.collect_round()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
        size = len(snapshot.body(openmetrics=False, gzip_accepted=False)[0])
    text = snapshot.body(openmetrics=False, gzip_accepted=False)[0].decode()
    ok = sum(
        1
        for line in text.splitlines()
        if line.startswith("kubestats_exporter_scrape_success{") and line.endswith(" 1")
    )
    collector.stop()
    targets.close()
    return {
        "nodes": len(nodes),
        "nodes_ok": ok,
        "round_seconds": sorted(walls)[len(walls) // 2],
        "round_cpu_seconds": sorted(cpus)[len(cpus) // 2],
        "output_bytes": size,
        "rss_before_mib": rss_before,
        "rss_after_mib": _rss_mib("VmRSS"),
        "rss_peak_mib": _rss_mib("VmHWM"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks exporter_cluster")
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--pods-per-node", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(Path(args.child), args.rounds)))
        return 0

    import trustme  # noqa: PLC0415 - a test dependency, only needed here

    from simcluster.kubelet_server import KubeletFleet  # noqa: PLC0415
    from simcluster.model import ClusterSpec, generate_cluster  # noqa: PLC0415

    cluster = generate_cluster(
        ClusterSpec(nodes=args.nodes, pods_per_node=args.pods_per_node), epoch=EPOCH
    )
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    with tempfile.TemporaryDirectory() as directory:
        ca_file = Path(directory) / "ca.crt"
        authority.cert_pem.write_to_path(str(ca_file))
        token_file = Path(directory) / "token"
        token_file.write_text(TOKEN)
        started = time.perf_counter()
        with KubeletFleet(
            cluster, clock=lambda: EPOCH + 3600.0, ssl_context=context, token=TOKEN
        ) as fleet:
            nodes = [
                {
                    "metadata": {"name": name},
                    "status": {
                        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                        "daemonEndpoints": {
                            "kubeletEndpoint": {"Port": int(url.rsplit(":", 1)[1])}
                        },
                    },
                }
                for name, url in fleet.urls.items()
            ]
            spec_path = Path(directory) / "spec.json"
            spec_path.write_text(
                json.dumps({"nodes": nodes, "ca_file": str(ca_file), "token_file": str(token_file)})
            )
            print(f"{len(nodes)} stand-in kubelets up in {time.perf_counter() - started:.1f}s")
            completed = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.exporter_cluster",
                    "--rounds",
                    str(args.rounds),
                    "--child",
                    str(spec_path),
                ],
                capture_output=True,
                text=True,
                check=False,
                cwd=REPO,
            )
    if completed.returncode != 0:
        print(completed.stderr)
        return 1
    result = json.loads(completed.stdout)
    nodes_count = result["nodes"]
    cpu_per_node_ms = result["round_cpu_seconds"] / nodes_count * 1e3
    print(
        f"{nodes_count} nodes x {args.pods_per_node} pods, HTTPS + token, pool 64, median of "
        f"{args.rounds} rounds; {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(f"nodes read successfully: {result['nodes_ok']} of {nodes_count}")
    print(
        f"round: {result['round_seconds']:.2f} s wall, {result['round_cpu_seconds']:.2f} s CPU; "
        f"output {result['output_bytes']:,} bytes"
    )
    print(
        f"CPU per node per round: {cpu_per_node_ms:.2f} ms = "
        f"{cpu_per_node_ms / INTERVAL_SECONDS:.2f} mCPU at a {INTERVAL_SECONDS:g}s interval "
        "(metrics-server: ~1 mCPU per node)"
    )
    print(
        f"RSS: {result['rss_after_mib']:.0f} MiB after the rounds, peak "
        f"{result['rss_peak_mib']:.0f} MiB (before the first round "
        f"{result['rss_before_mib']:.0f} MiB) = {result['rss_peak_mib'] / nodes_count:.2f} MiB "
        "per node at peak (metrics-server: ~2 MB per node)"
    )
    return 0 if result["nodes_ok"] == nodes_count else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
