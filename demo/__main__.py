"""``python -m demo`` (``make demo``): the whole pipeline on a simulated cluster, live.

Checks that ``prometheus`` and ``kubectl`` are installed (and says how to install them), starts
the stack of :mod:`demo.stack` with progress lines, then prints every few seconds what
``kubectl top node``, ``kubectl top pod -A`` and an HPA's custom-metric request answer, until
Ctrl-C or SIGTERM. Then it stops every process it started.

Exit codes: 0 after Ctrl-C/SIGTERM or ``--duration``, 1 when a tool is missing or a part fails.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from demo.stack import Stack, StackError, StackInterruptedError, StackOptions

HPA_METRIC = "container_cpu_usage_seconds_per_second"
HPA_PATH = (
    f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/{HPA_METRIC}"
    "?labelSelector=app%3Dweb"
)
INSTALL_HINTS = {
    "prometheus": (
        "prometheus is not installed. On Debian or Ubuntu: sudo apt-get install -y prometheus\n"
        "  (the demo runs its own Prometheus on a free port; the package's service may be "
        "stopped with: sudo systemctl disable --now prometheus)"
    ),
    "kubectl": (
        "kubectl is not installed. Install it from the Kubernetes package repository, see\n"
        "  https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/ (tested with 1.32)"
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="Run kubelets (simulated) → exporter → Prometheus → adapter → kubectl, live.",
    )
    parser.add_argument("--nodes", type=int, default=3, help="simulated nodes (default 3)")
    parser.add_argument("--pods-per-node", type=int, default=8, help="pods per node (default 8)")
    parser.add_argument(
        "--refresh", type=float, default=5.0, help="seconds between live updates (default 5)"
    )
    parser.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (default: never)"
    )
    parser.add_argument(
        "--workdir", type=Path, help="where configs, logs and the kubeconfig go (default: temp)"
    )
    return parser


def missing_tools() -> list[str]:
    return [name for name in ("prometheus", "kubectl") if shutil.which(name) is None]


class Console:
    """Progress and frames on stdout; frames redraw the screen on a terminal."""

    def __init__(self) -> None:
        self.interactive = sys.stdout.isatty()

    def say(self, text: str) -> None:
        print(text, flush=True)

    def progress(self, text: str) -> None:
        self.say(f"  {text}")

    def frame(self, text: str) -> None:
        if self.interactive:
            sys.stdout.write("\033[H\033[2J")
        self.say(text)


def run_kubectl(stack: Stack, *args: str) -> str:
    kubectl = shutil.which("kubectl") or "kubectl"
    result = subprocess.run(  # noqa: S603 - fixed argv
        [
            kubectl,
            "--kubeconfig",
            str(stack.kubeconfig),
            "--cache-dir",
            str(stack.options.workdir / "kubectl-cache"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    if result.returncode != 0:
        return f"(kubectl {' '.join(args)} failed: {result.stderr.strip()[:300]})"
    return result.stdout.rstrip()


def hpa_view(stack: Stack) -> str:
    """What an HPA on the web deployment reads: per-pod CPU from custom.metrics.k8s.io."""
    response = stack.get(HPA_PATH)
    if response.status_code != 200:
        return f"(HTTP {response.status_code}: {response.text[:300]})"
    lines = []
    for item in response.json().get("items", []):
        lines.append(f"  {item['describedObject']['name']:<32} {item['value']:>14}")
    return "\n".join(lines) or "  (no pods)"


def next_steps(stack: Stack) -> str:
    kubeconfig = shlex.quote(str(stack.kubeconfig))
    explain = (
        f".venv/bin/kubemetrics-adapter explain --config config/rules.yaml "
        f"--prometheus-url {stack.prometheus_url} --kubeconfig {kubeconfig} \\\n"
        f"      '{HPA_PATH}'"
    )
    return "\n".join(
        [
            "Try next (in another terminal, while this runs):",
            f"  Prometheus UI:   {stack.prometheus_url}/graph",
            f"  kubectl --kubeconfig {kubeconfig} top pod -A",
            f"  kubectl --kubeconfig {kubeconfig} top node",
            f"  kubectl --kubeconfig {kubeconfig} get --raw '{HPA_PATH}'",
            f"  {explain}",
            f"Logs: {stack.options.workdir / 'logs'}    Stop: Ctrl-C",
        ]
    )


def live_frame(stack: Stack, number: int) -> str:
    nodes = run_kubectl(stack, "top", "node")
    pods = run_kubectl(stack, "top", "pod", "-A", "--sort-by=cpu").splitlines()
    shown = "\n".join(pods[:13])
    more = f"\n  ... and {len(pods) - 13} more pods" if len(pods) > 13 else ""
    return "\n".join(
        [
            f"== kubemetrics demo · update {number} · {time.strftime('%H:%M:%S')} "
            "(rates are over 1m, so CPU climbs during the first minute) ==",
            "",
            "$ kubectl top node",
            nodes,
            "",
            "$ kubectl top pod -A --sort-by=cpu",
            shown + more,
            "",
            f"$ kubectl get --raw '{HPA_PATH}'   # what an HPA on app=web reads (cores)",
            hpa_view(stack),
            "",
            next_steps(stack),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    missing = missing_tools()
    if missing:
        for name in missing:
            console.say(f"demo: {INSTALL_HINTS[name]}")
        return 1

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    temporary = args.workdir is None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kubemetrics-demo-"))
    options = StackOptions(
        workdir=workdir,
        prometheus_binary=shutil.which("prometheus") or "prometheus",
        nodes=args.nodes,
        pods_per_node=args.pods_per_node,
    )
    stack = Stack(options, progress=console.progress, stopping=stopping)
    console.say(
        f"Starting kubemetrics on a simulated cluster of {args.nodes} nodes "
        f"(work directory {workdir}):"
    )
    began = time.monotonic()
    try:
        stack.start()
        console.say(f"Everything is up after {time.monotonic() - began:.0f}s.\n")
        console.say(next_steps(stack))
        deadline = time.monotonic() + args.duration if args.duration else None
        number = 0
        while not stopping.is_set():
            number += 1
            console.frame(live_frame(stack, number))
            if deadline is not None and time.monotonic() >= deadline:
                break
            stopping.wait(args.refresh)
    except StackInterruptedError:
        pass
    except StackError as err:
        console.say(f"demo: {err}")
        return 1
    finally:
        console.say("\nStopping every process the demo started ...")
        stack.stop()
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
        console.say("Stopped. Nothing is left running.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
