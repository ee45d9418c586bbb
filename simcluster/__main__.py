"""``python -m simcluster``: run stand-in kubelets for a generated cluster until interrupted.

Prints one JSON line, ``{"sim-node-1": "http://127.0.0.1:PORT", ...}``, on stdout once every node
listens, then serves until SIGINT or SIGTERM. Exit codes: 0 on a signal, 2 on bad flags.
"""

from __future__ import annotations

import argparse
import json
import signal
import ssl
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from simcluster.kubelet_payloads import PayloadOptions
from simcluster.kubelet_server import Fault, FleetError, KubeletFleet
from simcluster.model import ClusterSpec, ModelError, generate_cluster


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simcluster",
        description="Serve simulated kubelets (/stats/summary, /pods, /healthz) on 127.0.0.1.",
    )
    parser.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    parser.add_argument("--pods-per-node", type=int, default=10, help="pods per node (default 10)")
    parser.add_argument(
        "--containers-per-pod", type=int, default=None, help="containers per pod (default 1-3)"
    )
    parser.add_argument(
        "--namespaces", default="default,shop,batch", help="comma-separated namespaces"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--housekeeping-interval",
        type=int,
        default=10,
        help="seconds between kubelet stats refreshes (default 10)",
    )
    parser.add_argument("--windows-nodes", type=int, default=0, help="how many nodes are Windows")
    parser.add_argument(
        "--epoch", type=int, default=None, help="simulation start, Unix seconds (default: now)"
    )
    parser.add_argument("--base-port", type=int, default=0, help="first port (default: any free)")
    parser.add_argument("--tls-cert-file", type=Path, help="serve HTTPS with this certificate")
    parser.add_argument("--tls-private-key-file", type=Path, help="key for --tls-cert-file")
    parser.add_argument(
        "--kubelet-token-file", type=Path, help="require this bearer token on data endpoints"
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NODE=MODE",
        help=f"make a node misbehave; MODE is one of {', '.join(f.value for f in Fault)}",
    )
    parser.add_argument(
        "--slow-seconds", type=float, default=2.0, help="duration of a 'slow' answer (default 2)"
    )
    parser.add_argument(
        "--fresh-container-cpu",
        choices=("full", "no_rate", "absent"),
        default="full",
        help="CPU stats of containers younger than one housekeeping interval",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    problems: list[str] = []
    spec = ClusterSpec(
        nodes=args.nodes,
        pods_per_node=args.pods_per_node,
        namespaces=tuple(n for n in args.namespaces.split(",") if n),
        containers_per_pod=args.containers_per_pod,
        seed=args.seed,
        housekeeping_interval=args.housekeeping_interval,
        windows_nodes=args.windows_nodes,
    )
    problems += spec.problems()
    if (args.tls_cert_file is None) != (args.tls_private_key_file is None):
        problems.append("--tls-cert-file and --tls-private-key-file go together")
    faults: dict[str, Fault] = {}
    for item in args.fault:
        node, _, mode = item.partition("=")
        try:
            faults[node] = Fault(mode)
        except ValueError:
            problems.append(
                f"--fault {item!r}: expected NODE=MODE with MODE in {[f.value for f in Fault]}"
            )
    token = None
    if args.kubelet_token_file is not None:
        try:
            token = args.kubelet_token_file.read_text(encoding="utf-8").strip()
        except OSError as err:
            problems.append(f"--kubelet-token-file: {err}")
        if token == "":
            problems.append(f"--kubelet-token-file {args.kubelet_token_file} is empty")
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2

    ssl_context = None
    if args.tls_cert_file is not None:
        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            ssl_context.load_cert_chain(args.tls_cert_file, args.tls_private_key_file)
        except (OSError, ssl.SSLError) as err:
            print(f"error: --tls-cert-file/--tls-private-key-file: {err}", file=sys.stderr)
            return 2
    try:
        cluster = generate_cluster(spec, epoch=args.epoch or int(time.time()))
        ports = (
            {node.name: args.base_port + i for i, node in enumerate(cluster.nodes)}
            if args.base_port
            else None
        )
        fleet = KubeletFleet(
            cluster,
            ssl_context=ssl_context,
            token=token,
            faults=faults,
            slow_seconds=args.slow_seconds,
            payload_options=PayloadOptions(fresh_container_cpu=args.fresh_container_cpu),
            ports=ports,
        )
        fleet.start()
    except (ModelError, FleetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        print(json.dumps(fleet.urls), flush=True)
        while not stopping.wait(1.0):
            pass
    finally:
        fleet.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
