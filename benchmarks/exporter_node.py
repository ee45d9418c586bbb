"""Per-node exporter cost: one collection of a full node next to a bare ``json.loads``.

A generated full node (simcluster: 110 pods, 3 containers each = 330 containers, with volumes,
interfaces, PSI and filesystems) gives a ``/stats/summary`` and a ``/pods`` body. A fresh child
process (so its peak RSS is the exporter's alone: modules, the two bodies, one collection's
objects and the rendered text) then alternates, ``--rounds`` times:

- floor: ``json.loads`` of the Summary body (what any Python consumer must pay);
- collection: ``parse_summary`` + ``collect`` + ``render_text`` of the same body, as the
  collector does it once per round;
- and the same pair with ``/pods`` added (``json.loads`` of both bodies vs parsing both).

Alternating keeps both sides under the same machine load. Reported: CPU time
(``time.process_time``) as the median and as the best of the rounds, and the median wall time.
The ratio to the floor is given for both: on a shared machine the best run of each side is the
steadier comparison, the median says what a typical round costs.

Run: ``python -m benchmarks exporter_node`` (or ``make bench``). Results: docs/benchmarks.md,
"Exporter: per node".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EPOCH = 1_750_000_000


def generate(directory: Path, pods: int, containers: int) -> tuple[Path, Path]:
    from simcluster.kubelet_payloads import pod_list, summary  # noqa: PLC0415
    from simcluster.model import ClusterSpec, generate_cluster  # noqa: PLC0415

    cluster = generate_cluster(
        ClusterSpec(nodes=1, pods_per_node=pods, containers_per_pod=containers), epoch=EPOCH
    )
    node = cluster.nodes[0].name
    now = EPOCH + 3600.0
    summary_path = directory / "summary.json"
    pods_path = directory / "pods.json"
    summary_path.write_text(json.dumps(summary(cluster, node, now)), encoding="utf-8")
    pods_path.write_text(json.dumps(pod_list(cluster, node, now)), encoding="utf-8")
    return summary_path, pods_path


def _timed(run: Callable[[], object]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return time.process_time() - cpu, time.perf_counter() - wall


def child(summary_path: Path, pods_path: Path, rounds: int) -> dict[str, object]:
    from exporter.collect import collect  # noqa: PLC0415
    from exporter.exposition import render_text  # noqa: PLC0415
    from exporter.model import NodeResult  # noqa: PLC0415
    from exporter.parse import parse_summary  # noqa: PLC0415
    from exporter.pods import parse_pod_list  # noqa: PLC0415

    summary_body = summary_path.read_bytes()
    pods_body = pods_path.read_bytes()
    output: list[int] = []

    def floor() -> None:
        json.loads(summary_body)

    def collection() -> None:
        summary = parse_summary(summary_body)
        text = render_text(collect([NodeResult(summary.node.name, summary, None, 0.1)], {}))
        output[:] = [len(text.encode())]

    def floor_with_pods() -> None:
        json.loads(summary_body)
        json.loads(pods_body)

    def collection_with_pods() -> None:
        summary = parse_summary(summary_body)
        pods = parse_pod_list(pods_body)
        result = NodeResult(summary.node.name, summary, None, 0.1, pods=pods)
        text = render_text(collect([result], {}))
        output[:] = [len(text.encode()), *output[:1]]

    parsed = json.loads(summary_body)
    samples: dict[str, list[tuple[float, float]]] = {
        name: [] for name in ("floor", "collection", "floor_pods", "collection_pods")
    }
    for _ in range(3):  # warm-up: imports, caches, allocator
        collection_with_pods()
    for _ in range(rounds):
        samples["floor"].append(_timed(floor))
        samples["collection"].append(_timed(collection))
        samples["floor_pods"].append(_timed(floor_with_pods))
        samples["collection_pods"].append(_timed(collection_with_pods))
    medians = {
        name: {
            "cpu_ms": statistics.median(cpu for cpu, _ in values) * 1e3,
            "best_cpu_ms": min(cpu for cpu, _ in values) * 1e3,
            "wall_ms": statistics.median(wall for _, wall in values) * 1e3,
        }
        for name, values in samples.items()
    }
    return {
        "pods": len(parsed["pods"]),
        "containers": sum(len(pod.get("containers") or []) for pod in parsed["pods"]),
        "summary_bytes": len(summary_body),
        "pods_bytes": len(pods_body),
        "output_bytes": output[1] if len(output) > 1 else output[0],
        "output_bytes_with_pods": output[0],
        "medians": medians,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def report(result: dict[str, object], rounds: int) -> None:
    medians: dict[str, dict[str, float]] = result["medians"]  # type: ignore[assignment]
    print(
        f"node: {result['pods']} pods, {result['containers']} containers; Summary "
        f"{result['summary_bytes']:,} bytes, /pods {result['pods_bytes']:,} bytes; "
        f"{rounds} alternating runs; {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(
        f"{'what':<34}{'CPU ms':>9}{'x floor':>9}{'best CPU':>10}{'x floor':>9}"
        f"{'wall ms':>9}   (CPU and wall: medians)"
    )
    for floor_name, name, label in (
        ("floor", "floor", "json.loads(summary)"),
        ("floor", "collection", "parse+collect+render (summary)"),
        ("floor_pods", "floor_pods", "json.loads(summary, pods)"),
        ("floor_pods", "collection_pods", "parse+collect+render (both)"),
    ):
        ratio = medians[name]["cpu_ms"] / medians[floor_name]["cpu_ms"]
        best_ratio = medians[name]["best_cpu_ms"] / medians[floor_name]["best_cpu_ms"]
        print(
            f"{label:<34}{medians[name]['cpu_ms']:>9.2f}{ratio:>9.2f}"
            f"{medians[name]['best_cpu_ms']:>10.2f}{best_ratio:>9.2f}"
            f"{medians[name]['wall_ms']:>9.2f}"
        )
    print(
        f"output: {result['output_bytes']:,} bytes (Summary only), "
        f"{result['output_bytes_with_pods']:,} bytes with /pods; "
        f"peak RSS of the measuring process: {result['peak_rss_mib']:.1f} MiB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks exporter_node")
    parser.add_argument("--pods", type=int, default=110)
    parser.add_argument("--containers-per-pod", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--child", nargs=2, metavar=("SUMMARY", "PODS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = child(Path(args.child[0]), Path(args.child[1]), args.rounds)
        print(json.dumps(result))
        return 0
    with tempfile.TemporaryDirectory() as directory:
        summary_path, pods_path = generate(Path(directory), args.pods, args.containers_per_pod)
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.exporter_node",
                "--rounds",
                str(args.rounds),
                "--child",
                str(summary_path),
                str(pods_path),
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
        )
    if completed.returncode != 0:
        print(completed.stderr)
        return 1
    report(json.loads(completed.stdout), args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
