"""The whole pipeline on one machine: simulated cluster → exporter → Prometheus → adapter → kubectl.

:class:`Stack` starts, in order, the stand-in kubelets (``simcluster.KubeletFleet``), the
stand-in kube-apiserver and aggregator (``simcluster.apiserver``), the exporter (a real
``kubemetrics-exporter`` process), a real Prometheus with a generated configuration, and the
adapter (a real ``kubemetrics-adapter`` process with ``config/rules.yaml``), then points the
aggregator at the adapter. ``stop()`` ends everything in reverse order and waits for every
child process. ``python -m demo`` and the end-to-end tests both run this one implementation.

Child processes run in their own session (a terminal's Ctrl-C reaches only the demo, which
stops them in order) and, on Linux, get SIGTERM if the process that started them dies.

Exception tree::

    StackError(RuntimeError)   a part did not start or become ready; the message has its log tail
    └── StackInterruptedError       ``stopping`` was set while starting
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests
import trustme

from simcluster.apiserver import Credentials, SimApiserver
from simcluster.kubelet_server import KubeletFleet
from simcluster.model import Cluster, ClusterSpec, generate_cluster

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES = REPO_ROOT / "config" / "rules.yaml"
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
LOG_TAIL_LINES = 30
# Pod metrics of the default rules that the demo shows and the end-to-end tests request.
DISCOVERED_METRICS = frozenset(
    {"pods/container_cpu_usage_seconds_per_second", "pods/container_memory_working_set_bytes"}
)


class StackError(RuntimeError):
    """A part of the pipeline did not start or did not become ready."""


class StackInterruptedError(StackError):
    """Stopping was requested while the stack was starting."""


@dataclass(frozen=True)
class StackOptions:
    workdir: Path
    prometheus_binary: str
    nodes: int = 3
    pods_per_node: int = 8
    seed: int = 1
    # Fraction of deployments whose pods are replaced every few minutes (0: none).
    churn_fraction: float = 0.1
    # Short intervals so rates exist within seconds: the kubelets refresh their stats, the
    # exporter collects and Prometheus scrapes at the same pace.
    housekeeping_interval: int = 2
    scrape_interval_seconds: int = 2
    discovery_interval: str = "5s"
    rules_file: Path = DEFAULT_RULES
    python: str = sys.executable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@functools.cache
def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec function asking Linux to SIGTERM the child when its parent dies (even by
    SIGKILL). libc is loaded here, in the parent: the child between fork and exec must not
    take the dynamic loader's locks, which another thread may have held at fork time."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def set_parent_death_signal() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return set_parent_death_signal


@dataclass
class ManagedProcess:
    """One child process with its log file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        environment = {**os.environ, **self.env}
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(  # noqa: S603 - our own argv, no shell
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=REPO_ROOT,
                start_new_session=True,
                preexec_fn=_parent_death_signal(),  # noqa: PLW1509 - see its docstring
            )

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            # SIGKILL the whole session: a gunicorn master that hangs must not leave workers.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_SECONDS)


def prometheus_config(targets: Sequence[str], scrape_interval_seconds: int) -> str:
    """The generated prometheus.yml: one job scraping the exporter(s)."""
    listed = ", ".join(f"'{target}'" for target in targets)
    return (
        "global:\n"
        f"  scrape_interval: {scrape_interval_seconds}s\n"
        f"  scrape_timeout: {max(scrape_interval_seconds - 1, 1)}s\n"
        f"  evaluation_interval: {scrape_interval_seconds}s\n"
        "scrape_configs:\n"
        "- job_name: kubemetrics-exporter\n"
        # The exporter's node/namespace/pod labels are the data; keep them as they are.
        "  honor_labels: true\n"
        "  static_configs:\n"
        f"  - targets: [{listed}]\n"
    )


class Stack:
    """The running pipeline. ``start()`` then ``stop()`` (also a context manager)."""

    def __init__(
        self,
        options: StackOptions,
        *,
        progress: Callable[[str], None] = lambda _message: None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.options = options
        self.progress = progress
        self.stopping = stopping or threading.Event()
        self.cluster: Cluster = generate_cluster(
            ClusterSpec(
                nodes=options.nodes,
                pods_per_node=options.pods_per_node,
                seed=options.seed,
                churn_fraction=options.churn_fraction,
                housekeeping_interval=options.housekeeping_interval,
            ),
            epoch=int(time.time()),
        )
        # One CA signs the apiserver's, the kubelets' and the adapter's serving certificates.
        self.ca = trustme.CA()
        self.credentials = Credentials()
        kubelet_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(kubelet_tls)
        # The kubelets accept the exporter's service-account token, as webhook authn would.
        self.fleet = KubeletFleet(
            self.cluster, ssl_context=kubelet_tls, token=self.credentials.exporter_token
        )
        self.apiserver: SimApiserver | None = None
        self.exporters: list[ManagedProcess] = []
        self.exporter_urls: list[str] = []
        self.prometheus: ManagedProcess | None = None
        self.prometheus_port = free_port()
        self.adapter: ManagedProcess | None = None
        self.adapter_port = free_port()
        self.kubeconfig = options.workdir / "kubeconfig"
        self.started_at = 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        workdir = self.options.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._step(f"starting {len(self.cluster.nodes)} stand-in kubelets", self._start_fleet)
            self._step("starting the stand-in kube-apiserver and aggregator", self._start_api)
            self._step("starting kubemetrics-exporter", self._start_exporters)
            self._step("starting Prometheus", self.start_prometheus)
            self._step("starting kubemetrics-adapter", self._start_adapter)
            self._step("waiting for the first metrics through the aggregator", self._wait_metrics)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop everything that was started, newest first. Safe to call more than once."""
        if self.apiserver is not None:
            self.apiserver.set_adapter(None, None)
        for process in [self.adapter, self.prometheus, *reversed(self.exporters)]:
            if process is not None:
                process.stop()
        if self.apiserver is not None:
            self.apiserver.stop()
            self.apiserver = None
        self.fleet.stop()

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def child_pids(self) -> list[int]:
        processes = [self.adapter, self.prometheus, *self.exporters]
        return [p.pid for p in processes if p is not None and p.pid is not None]

    # -- URLs ----------------------------------------------------------------------------------

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def adapter_url(self) -> str:
        return f"https://127.0.0.1:{self.adapter_port}"

    @property
    def api(self) -> SimApiserver:
        if self.apiserver is None:
            raise StackError("the stand-in apiserver is not running")
        return self.apiserver

    def get(self, path: str, token: str | None = None, timeout: float = 10.0) -> requests.Response:
        """GET through the stand-in apiserver/aggregator (admin token unless another is given)."""
        api = self.api
        return requests.get(
            api.url + path,
            headers={"Authorization": f"Bearer {token or api.credentials.admin_token}"},
            verify=str(api.ca_file),
            timeout=timeout,
        )

    # -- steps ---------------------------------------------------------------------------------

    def _step(self, title: str, action: Callable[[], None]) -> None:
        if self.stopping.is_set():
            raise StackInterruptedError("stopped while starting")
        began = time.monotonic()
        self.progress(f"{title} ...")
        action()
        self.progress(f"{title}: done ({time.monotonic() - began:.1f}s)")

    def _start_fleet(self) -> None:
        self.fleet.start()

    def _start_api(self) -> None:
        endpoints = {
            name: ("127.0.0.1", urlsplit(url).port or 80) for name, url in self.fleet.urls.items()
        }
        self.apiserver = SimApiserver(
            self.cluster,
            endpoints,
            credentials=self.credentials,
            ca=self.ca,
            directory=self.options.workdir / "apiserver",
        ).start()
        credentials = self.apiserver.credentials
        self.apiserver.write_kubeconfig(self.kubeconfig, credentials.admin_token, "admin")
        self.apiserver.write_kubeconfig(
            self.options.workdir / "adapter.kubeconfig", credentials.adapter_token, "adapter"
        )
        self.apiserver.write_kubeconfig(
            self.options.workdir / "exporter.kubeconfig", credentials.exporter_token, "exporter"
        )

    def _start_exporters(self) -> None:
        # One exporter in cluster-wide mode: it lists the nodes from the stand-in apiserver and
        # reads every stand-in kubelet over verified TLS with its service-account token.
        token_file = self.options.workdir / "exporter.token"
        token_file.write_text(self.credentials.exporter_token, encoding="utf-8")
        token_file.chmod(0o600)
        port = free_port()
        process = ManagedProcess(
            "exporter",
            [
                self.options.python,
                "-m",
                "exporter.cli",
                "--all-nodes",
                "--kubeconfig",
                str(self.options.workdir / "exporter.kubeconfig"),
                "--kubelet-preferred-address-types",
                "InternalIP",
                "--kubelet-token-file",
                str(token_file),
                "--kubelet-ca-file",
                str(self.api.ca_file),
                "--collect-interval",
                f"{self.options.housekeeping_interval}s",
                "--kubelet-timeout",
                "5s",
                "--listen-address",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
            ],
            self.options.workdir / "logs" / "exporter.log",
        )
        process.start()
        self.exporters.append(process)
        self.exporter_urls.append(f"127.0.0.1:{port}")
        self._wait_http(process, f"http://127.0.0.1:{port}/healthz")

    def start_prometheus(self) -> None:
        """Start (or restart, same port and data) Prometheus and wait until it is ready."""
        directory = self.options.workdir / "prometheus"
        (directory / "data").mkdir(parents=True, exist_ok=True)
        config = directory / "prometheus.yml"
        config.write_text(
            prometheus_config(self.exporter_urls, self.options.scrape_interval_seconds),
            encoding="utf-8",
        )
        self.prometheus = ManagedProcess(
            "prometheus",
            [
                self.options.prometheus_binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ],
            self.options.workdir / "logs" / "prometheus.log",
        )
        self.prometheus.start()
        self._wait_http(self.prometheus, f"{self.prometheus_url}/-/ready")

    def stop_prometheus(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()

    def _start_adapter(self) -> None:
        api = self.api
        certs = self.options.workdir / "adapter-certs"
        certs.mkdir(parents=True, exist_ok=True)
        serving = api.ca.issue_cert("127.0.0.1", "localhost")
        cert_file, key_file = certs / "serving.crt", certs / "serving.key"
        serving.cert_chain_pems[0].write_to_path(str(cert_file))
        serving.private_key_pem.write_to_path(str(key_file))
        key_file.chmod(0o600)
        self.adapter = ManagedProcess(
            "adapter",
            [
                self.options.python,
                "-m",
                "adapter.cli",  # kubemetrics-adapter; no subcommand serves
                "--config",
                str(self.options.rules_file),
                "--prometheus-url",
                self.prometheus_url,
                "--prometheus-timeout",
                "5s",
                "--metrics-relist-interval",
                self.options.discovery_interval,
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                str(self.adapter_port),
                "--tls-cert-file",
                str(cert_file),
                "--tls-private-key-file",
                str(key_file),
                "--kubeconfig",
                str(self.options.workdir / "adapter.kubeconfig"),
                "--threads",
                "8",
            ],
            self.options.workdir / "logs" / "adapter.log",
        )
        self.adapter.start()
        self._wait_http(self.adapter, f"{self.adapter_url}/healthz", verify=str(api.ca_file))
        api.set_adapter(self.adapter_url, api.ca_file)

    def _wait_metrics(self) -> None:
        """Until ``kubectl top node``'s request answers with every node (rates need 2 scrapes)
        and metric discovery lists the pod metrics the demo and the HPA-shaped checks ask for
        (discovery relists on its own interval, after the series first appear)."""
        expected = {node.name for node in self.cluster.nodes}

        def nodes_ready(response: requests.Response) -> str | None:
            names = {item["metadata"]["name"] for item in response.json().get("items", [])}
            return None if names == expected else f"nodes with metrics so far: {sorted(names)}"

        def custom_ready(response: requests.Response) -> str | None:
            listed = {item["name"] for item in response.json().get("resources", [])}
            missing = sorted(DISCOVERED_METRICS - listed)
            return f"custom metrics not discovered yet: {missing}" if missing else None

        self._wait_until("/apis/metrics.k8s.io/v1beta1/nodes", nodes_ready)
        if self.options.rules_file == DEFAULT_RULES:
            self._wait_until("/apis/custom.metrics.k8s.io/v1beta2", custom_ready)
        self.started_at = time.time()

    def _wait_until(self, path: str, not_ready: Callable[[requests.Response], str | None]) -> None:
        """Poll ``path`` through the aggregator until ``not_ready`` finds nothing missing."""
        last = ""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            self._check_running()
            try:
                response = self.get(path, timeout=5.0)
                if response.status_code == 200:
                    missing = not_ready(response)
                    if missing is None:
                        return
                    last = missing
                else:
                    last = f"HTTP {response.status_code}: {response.text[:300]}"
            except requests.RequestException as err:
                last = str(err)
            if self.stopping.wait(0.5):
                raise StackInterruptedError("stopped while waiting for metrics")
        raise StackError(
            f"{path} not ready through the aggregator after {READY_TIMEOUT_SECONDS:.0f}s ({last})"
            f"\n--- adapter log ---\n{self.adapter.log_tail() if self.adapter else ''}"
        )

    def _check_running(self) -> None:
        for process in [self.adapter, self.prometheus, *self.exporters]:
            if process is not None and process.process is not None and not process.running():
                raise StackError(
                    f"{process.name} exited with code {process.process.returncode}:\n"
                    f"{process.log_tail()}"
                )

    def _wait_http(self, process: ManagedProcess, url: str, verify: str | bool = True) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        last = ""
        while time.monotonic() < deadline:
            if not process.running():
                code = process.process.returncode if process.process else None
                raise StackError(f"{process.name} exited with code {code}:\n{process.log_tail()}")
            try:
                response = requests.get(url, timeout=2.0, verify=verify)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except requests.RequestException as err:
                last = type(err).__name__
            if self.stopping.wait(0.1):
                raise StackInterruptedError(f"stopped while waiting for {process.name}")
        raise StackError(
            f"{process.name} not ready at {url} after {READY_TIMEOUT_SECONDS:.0f}s ({last}):\n"
            f"{process.log_tail()}"
        )
