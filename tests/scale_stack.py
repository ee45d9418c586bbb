"""A lean adapter stack for load, fault and benchmark runs: many pods, little else.

``ScaleStack`` starts, all on 127.0.0.1:

- the stand-in kube-apiserver and aggregator (``simcluster.apiserver``) over a generated cluster
  whose first deployment, ``default/web`` (label ``app=web``), has ``web_replicas`` pods;
- a synthetic exporter: one HTTP endpoint serving the ``kubestats_`` series the default rules
  read, for every container and node of the cluster (counters grow at a fixed rate per
  container, so rates are known). Far cheaper than stand-in kubelets plus the real exporter, so
  5,000 pods leave the CPU to what is measured;
- a real Prometheus scraping it every ``scrape_interval`` seconds;
- a :class:`FaultProxy` in front of Prometheus, which passes requests through or misbehaves on
  demand (slow, 5xx, malformed JSON, a matrix instead of a vector, connection dropped);
- the real adapter process (``python -m adapter.serve``, gunicorn, TLS, default rules) pointed at
  the proxy, authenticated by the stand-in's front-proxy client certificate.

``client()`` returns a ``requests.Session`` that talks to the adapter directly with the
front-proxy certificate and an admin identity (``X-Remote-User``), as the aggregator does.
Benchmarks import this module too (``benchmarks/adapter_*.py``). No exceptions of its own:
``demo.stack.StackError`` when a part does not start.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from demo.stack import REPO_ROOT, ManagedProcess, StackError, free_port
from simcluster.apiserver import ADMIN_USER, SimApiserver
from simcluster.model import Cluster, ClusterSpec, generate_cluster

DEFAULT_RULES = REPO_ROOT / "config" / "rules.yaml"
READY_TIMEOUT_SECONDS = 90.0
CUSTOM_CPU = "container_cpu_usage_seconds_per_second"
HPA_NAMESPACE = "default"


# --- synthetic exporter --------------------------------------------------------------------------


class SyntheticExporter:
    """Serves ``/metrics`` for every container and node of ``cluster`` (pods fixed at start)."""

    def __init__(self, cluster: Cluster) -> None:
        self.started = time.time() - 3600.0
        now = time.time()
        self._containers: list[tuple[str, float, int]] = []
        for pod in cluster.pods(now):
            for container in pod.containers:
                labels = (
                    f'namespace="{pod.namespace}",pod="{pod.name}",'
                    f'container="{container.name}",node="{pod.node_name}"'
                )
                seed = zlib.crc32(labels.encode())
                self._containers.append(
                    (labels, 0.001 + (seed % 500) / 1000.0, (1 << 20) * (1 + seed % 64))
                )
        self._nodes = [
            (f'node="{node.name}"', 0.5 + i % 4, node.memory_bytes // 2)
            for i, node in enumerate(cluster.nodes)
        ]
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = exporter.render(time.time()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def render(self, now: float) -> str:
        elapsed = now - self.started
        lines = ["# TYPE kubestats_container_cpu_usage_seconds_total counter"]
        lines += [
            f"kubestats_container_cpu_usage_seconds_total{{{labels}}} {rate * elapsed:.6f}"
            for labels, rate, _ in self._containers
        ]
        lines.append("# TYPE kubestats_container_memory_working_set_bytes gauge")
        lines += [
            f"kubestats_container_memory_working_set_bytes{{{labels}}} {memory}"
            for labels, _, memory in self._containers
        ]
        lines.append("# TYPE kubestats_node_cpu_usage_seconds_total counter")
        lines += [
            f"kubestats_node_cpu_usage_seconds_total{{{labels}}} {rate * elapsed:.6f}"
            for labels, rate, _ in self._nodes
        ]
        lines.append("# TYPE kubestats_node_memory_working_set_bytes gauge")
        lines += [
            f"kubestats_node_memory_working_set_bytes{{{labels}}} {memory}"
            for labels, _, memory in self._nodes
        ]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- fault proxy ---------------------------------------------------------------------------------

MATRIX_BODY = json.dumps(
    {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": {"pod": "web-0"}, "values": [[1.0, "1"], [2.0, "2"]]}],
        },
    }
).encode()
MALFORMED_BODY = b'{"status":"success","data":{"resultType":"vector","result":[{"metric":'
ERROR_BODY = json.dumps(
    {"status": "error", "errorType": "internal", "error": "stand-in: storage unavailable"}
).encode()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a slow answer is part of the experiment


@dataclass
class FaultProxy:
    """HTTP proxy to Prometheus that misbehaves on demand.

    ``mode``: ``pass``; ``slow`` (sleep ``delay`` seconds first); ``error`` (HTTP 503 with a
    Prometheus error body); ``malformed`` (200 with truncated JSON); ``matrix`` (200 with a
    matrix result on /api/v1/query); ``drop`` (close the connection without an answer). When
    the upstream Prometheus cannot be reached the client connection is dropped too, so a
    stopped Prometheus looks to the adapter as it would without the proxy: no answer.
    """

    upstream: str  # host:port
    mode: str = "pass"
    delay: float = 0.0
    requests_seen: int = 0
    _server: _QuietServer | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def set(self, mode: str, delay: float = 0.0) -> None:
        self.mode, self.delay = mode, delay

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # Headers and body go out as separate writes; without TCP_NODELAY the body
                # waits for the client's delayed ACK (40 ms on Linux) on every answer.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _answer(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _drop(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def _handle(self) -> None:
                proxy.requests_seen += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                mode, delay = proxy.mode, proxy.delay
                if mode == "slow":
                    time.sleep(delay)
                elif mode == "drop":
                    return self._drop()
                elif mode == "error":
                    return self._answer(503, ERROR_BODY)
                elif mode == "malformed":
                    return self._answer(200, MALFORMED_BODY)
                elif mode == "matrix" and self.path.startswith("/api/v1/query"):
                    return self._answer(200, MATRIX_BODY)
                host, _, port = proxy.upstream.partition(":")
                connection = HTTPConnection(host, int(port), timeout=60)
                try:
                    headers = {
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() not in ("host", "accept-encoding")
                    }
                    connection.request(self.command, self.path, body or None, headers)
                    answer = connection.getresponse()
                    data = answer.read()
                except OSError:
                    return self._drop()
                finally:
                    connection.close()
                self._answer(answer.status, data)
                return None

            do_GET = _handle  # noqa: N815 - http.server's naming
            do_POST = _handle  # noqa: N815

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


# --- TCP relay to the API server ----------------------------------------------------------------


class TcpRelay:
    """Relays TCP connections (TLS passes through untouched) to ``upstream``.

    ``drop()`` closes every relayed connection and refuses new ones, as when the network or
    the API server goes away; ``restore(upstream)`` accepts again, possibly towards another
    server. The stand-in apiserver's own ``stop()`` keeps established keep-alive connections
    served, so this is how the adapter's watches are really cut.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.refusing = False
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            self.connections += 1
            with self._lock:
                self._sockets |= {client, server}
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        for end in (source, target):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()
            with self._lock:
                self._sockets.discard(end)

    def drop(self) -> None:
        self.refusing = True
        with self._lock:
            live = list(self._sockets)
        for end in live:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def restore(self, upstream: tuple[str, int] | None = None) -> None:
        if upstream is not None:
            self.upstream = upstream
        self.refusing = False

    def close(self) -> None:
        self.drop()
        self._listener.close()


# --- the stack ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleOptions:
    workdir: Path
    prometheus_binary: str
    web_replicas: int = 10
    other_pods: int = 90
    pods_per_node: int = 100
    scrape_interval: int = 5
    workers: int = 1
    threads: int = 8
    prometheus_timeout: str = "2s"
    relist_interval: str = "5s"
    rules_file: Path = DEFAULT_RULES
    extra_adapter_args: tuple[str, ...] = ()
    # False: the adapter talks to Prometheus directly (benchmarks); the fault proxy is unused.
    fault_proxy: bool = True


class ScaleStack:
    """The running stack; ``start()`` / ``stop()`` or a context manager."""

    def __init__(self, options: ScaleOptions) -> None:
        self.options = options
        self.epoch = int(time.time()) - 7200
        self.cluster = self.make_cluster(options.web_replicas)
        self.exporter = SyntheticExporter(self.cluster)
        self.apiserver: SimApiserver | None = None
        self.prometheus: ManagedProcess | None = None
        self.prometheus_port = free_port()
        self.proxy = FaultProxy(f"127.0.0.1:{self.prometheus_port}")
        self.adapter: ManagedProcess | None = None
        self.adapter_port = free_port()
        self.rules_file = options.workdir / "rules.yaml"
        self.relay: TcpRelay | None = None
        self._retired: list[SimApiserver] = []

    def make_cluster(self, web_replicas: int) -> Cluster:
        """The cluster for these options, with ``web_replicas`` pods in ``default/web``."""
        options = self.options
        total = web_replicas + options.other_pods
        nodes = max(1, -(-total // options.pods_per_node))
        return generate_cluster(
            ClusterSpec(
                nodes=nodes,
                pods_per_node=-(-total // nodes),
                web_replicas=web_replicas,
                churn_fraction=0.0,
                restart_fraction=0.0,
                housekeeping_interval=options.scrape_interval,
            ),
            epoch=self.epoch,
        )

    # -- lifecycle

    def start(self) -> ScaleStack:
        workdir = self.options.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            self.exporter.start()
            self.apiserver = SimApiserver(
                self.cluster, {}, directory=workdir / "apiserver", refresh_seconds=5.0
            ).start()
            self.relay = TcpRelay(("127.0.0.1", self._api_port(self.apiserver)))
            self.proxy.start()
            self.start_prometheus()
            self.rules_file.write_text(
                self.options.rules_file.read_text(encoding="utf-8"), encoding="utf-8"
            )
            self.start_adapter()
            self.wait_for_metrics()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in (self.adapter, self.prometheus):
            if process is not None:
                process.stop()
        self.proxy.stop()
        if self.relay is not None:
            self.relay.close()
        for server in [*self._retired, self.apiserver]:
            if server is not None:
                server.stop()
        self.apiserver = None
        with contextlib.suppress(OSError):
            self.exporter.stop()

    def __enter__(self) -> ScaleStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def api(self) -> SimApiserver:
        if self.apiserver is None:
            raise StackError("the stand-in apiserver is not running")
        return self.apiserver

    @staticmethod
    def _api_port(server: SimApiserver) -> int:
        return int(server.url.rsplit(":", 1)[1])

    def drop_apiserver(self) -> None:
        """Cut the adapter's connections to the API server (watches drop, lists fail)."""
        assert self.relay is not None
        self.relay.drop()

    def restore_apiserver(self, cluster: Cluster | None = None) -> None:
        """Let the adapter reach the API server again; with ``cluster``, a restored server
        holding that cluster (same CAs and tokens) whose history begins after everything the
        adapter saw, so its resumed watches get 410 Gone and relist, as after a compaction."""
        assert self.relay is not None
        if cluster is None:
            self.relay.restore()
            return
        old = self.api
        restored = SimApiserver(
            cluster,
            {},
            credentials=old.credentials,
            ca=old.ca,
            front_proxy_ca=old.front_proxy_ca,
            directory=old.directory,
            refresh_seconds=5.0,
        )
        with restored.store._changed:
            restored.store._revision = old.store.revision + 1000
            restored.store._oldest_kept = restored.store._revision
        self._retired.append(old)
        self.apiserver = restored.start()
        self.relay.restore(("127.0.0.1", self._api_port(restored)))

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def adapter_url(self) -> str:
        return f"https://127.0.0.1:{self.adapter_port}"

    def start_prometheus(self) -> None:
        """Start (or restart on the same port and data) the real Prometheus; wait until ready."""
        directory = self.options.workdir / "prometheus"
        (directory / "data").mkdir(parents=True, exist_ok=True)
        config = directory / "prometheus.yml"
        interval = self.options.scrape_interval
        config.write_text(
            f"global: {{scrape_interval: {interval}s, scrape_timeout: {interval}s}}\n"
            "scrape_configs:\n"
            "- job_name: synthetic\n"
            "  honor_labels: true\n"
            f"  static_configs: [{{targets: ['{self.exporter.target}']}}]\n",
            encoding="utf-8",
        )
        self.prometheus = ManagedProcess(
            "prometheus",
            [
                self.options.prometheus_binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
                "--log.level=warn",
            ],
            self.options.workdir / "logs" / "prometheus.log",
        )
        self.prometheus.start()
        wait_http(self.prometheus, f"{self.prometheus_url}/-/ready")

    def stop_prometheus(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()

    def start_adapter(self) -> None:
        api = self.api
        certs = self.options.workdir / "adapter-certs"
        certs.mkdir(parents=True, exist_ok=True)
        serving = api.ca.issue_cert("127.0.0.1", "localhost")
        cert_file, key_file = certs / "serving.crt", certs / "serving.key"
        serving.cert_chain_pems[0].write_to_path(str(cert_file))
        serving.private_key_pem.write_to_path(str(key_file))
        key_file.chmod(0o600)
        kubeconfig = api.write_kubeconfig(
            self.options.workdir / "adapter.kubeconfig", api.credentials.adapter_token, "adapter"
        )
        if self.relay is not None:  # the adapter reaches the API server through the relay
            kubeconfig.write_text(
                kubeconfig.read_text(encoding="utf-8").replace(api.url, self.relay.url),
                encoding="utf-8",
            )
        self.adapter = ManagedProcess(
            "adapter",
            [
                sys.executable,
                "-m",
                "adapter.serve",
                "--config",
                str(self.rules_file),
                "--prometheus-url",
                self.proxy.url if self.options.fault_proxy else self.prometheus_url,
                "--prometheus-timeout",
                self.options.prometheus_timeout,
                "--metrics-relist-interval",
                self.options.relist_interval,
                "--config-reload-interval",
                "1s",
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                str(self.adapter_port),
                "--tls-cert-file",
                str(cert_file),
                "--tls-private-key-file",
                str(key_file),
                "--kubeconfig",
                str(kubeconfig),
                "--workers",
                str(self.options.workers),
                "--threads",
                str(self.options.threads),
                "--log-level",
                "warning",
                *self.options.extra_adapter_args,
            ],
            self.options.workdir / "logs" / "adapter.log",
        )
        self.adapter.start()
        wait_http(self.adapter, f"{self.adapter_url}/healthz", verify=str(api.ca_file))

    def client(self) -> requests.Session:
        """A session that reaches the adapter as the aggregator does (front-proxy identity)."""
        api = self.api
        session = requests.Session()
        # Environment CA bundles (REQUESTS_CA_BUNDLE) would override session.verify; proxies
        # from the environment have no business on loopback either.
        session.trust_env = False
        directory = self.options.workdir / "apiserver"
        session.cert = (
            str(directory / "front-proxy-client.crt"),
            str(directory / "front-proxy-client.key"),
        )
        session.verify = str(api.ca_file)
        session.headers.update({"X-Remote-User": ADMIN_USER, "X-Remote-Group": "system:masters"})
        return session

    def web_pods(self) -> int:
        """How many pods the HPA selector matches, as the API server lists them now."""
        api = self.api
        session = requests.Session()
        session.trust_env = False
        response = session.get(
            f"{api.url}/api/v1/namespaces/{HPA_NAMESPACE}/pods",
            params={"labelSelector": "app=web"},
            headers={"Authorization": f"Bearer {api.credentials.admin_token}"},
            verify=str(api.ca_file),
            timeout=60,
        )
        response.raise_for_status()
        return len(response.json()["items"])

    def hpa_path(self, metric: str = CUSTOM_CPU) -> str:
        return (
            f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/{HPA_NAMESPACE}/pods/%2A/{metric}"
            "?labelSelector=app%3Dweb"
        )

    def wait_for_metrics(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Until the HPA request answers with every web pod (rates need two scrapes)."""
        session = self.client()
        expected = self.web_pods()
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self.check_running()
            with contextlib.suppress(requests.RequestException):
                response = session.get(self.adapter_url + self.hpa_path(), timeout=30)
                items = response.json().get("items", []) if response.ok else []
                if len(items) == expected:
                    return
                last = f"HTTP {response.status_code}, {len(items)} of {expected} pods"
            time.sleep(1.0)
        raise StackError(
            f"the adapter did not answer for {expected} pods within {timeout:.0f}s ({last}):\n"
            f"{self.adapter.log_tail() if self.adapter else ''}"
        )

    def check_running(self) -> None:
        for process in (self.adapter, self.prometheus):
            if process is not None and process.process is not None and not process.running():
                raise StackError(
                    f"{process.name} exited with {process.process.returncode}:\n"
                    f"{process.log_tail()}"
                )


def wait_http(process: ManagedProcess, url: str, verify: str | bool = True) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    last = ""
    while time.monotonic() < deadline:
        if not process.running():
            raise StackError(f"{process.name} exited:\n{process.log_tail()}")
        try:
            if requests.get(url, timeout=2.0, verify=verify).status_code == 200:
                return
        except requests.RequestException as err:
            last = type(err).__name__
        time.sleep(0.1)
    raise StackError(f"{process.name} not ready at {url} ({last}):\n{process.log_tail()}")


@contextlib.contextmanager
def running_scale_stack(options: ScaleOptions) -> Iterator[ScaleStack]:
    stack = ScaleStack(options)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


# --- load ---------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """Outcome of a load run: latencies in seconds (from the scheduled send time), errors."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return len(self.latencies) + len(self.errors)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> str:
        return (
            f"{self.requests} requests in {self.seconds:.1f}s ({self.rate:.1f}/s ok), "
            f"errors {len(self.errors)}, median {self.quantile(0.5) * 1000:.1f} ms, "
            f"p99 {self.quantile(0.99) * 1000:.1f} ms, mix {self.by_kind}"
        )


def request_mix(stack: ScaleStack) -> list[tuple[str, str]]:
    """(kind, path) in the proportions of the load: HPA 3, kubectl top 1, discovery 1."""
    hpa = ("hpa", stack.hpa_path())
    top = ("top", "/apis/metrics.k8s.io/v1beta1/pods")
    discovery = ("discovery", "/apis/custom.metrics.k8s.io/v1beta2")
    return [hpa, top, hpa, discovery, hpa]


def _send(session: requests.Session, url: str) -> str | None:
    """None when the answer is a 200 with JSON, else what went wrong."""
    try:
        response = session.get(url, timeout=30)
    except requests.RequestException as err:
        return f"{type(err).__name__}: {err}"
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    return None


def closed_loop(
    stack: ScaleStack, paths: list[tuple[str, str]], workers: int, seconds: float
) -> LoadResult:
    """``workers`` clients sending back to back for ``seconds``: the saturation throughput."""
    result = LoadResult(seconds)
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(offset: int) -> None:
        session = stack.client()
        index = offset
        while time.monotonic() < deadline:
            kind, path = paths[index % len(paths)]
            index += 1
            began = time.monotonic()
            problem = _send(session, stack.adapter_url + path)
            with lock:
                result.by_kind[kind] = result.by_kind.get(kind, 0) + 1
                if problem is None:
                    result.latencies.append(time.monotonic() - began)
                else:
                    result.errors.append(f"{kind}: {problem}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    return result


def open_loop(
    stack: ScaleStack, paths: list[tuple[str, str]], rate: float, seconds: float, workers: int = 16
) -> LoadResult:
    """Requests sent at a steady ``rate`` for ``seconds``; latency counts from the scheduled
    send time, so a server that falls behind shows it (no coordinated omission)."""
    result = LoadResult(seconds)
    lock = threading.Lock()
    total = int(rate * seconds)
    start = time.monotonic() + 0.2
    next_index = 0
    sessions = threading.local()

    def take() -> int | None:
        nonlocal next_index
        with lock:
            if next_index >= total:
                return None
            next_index += 1
            return next_index - 1

    def worker() -> None:
        sessions.session = stack.client()
        while (index := take()) is not None:
            scheduled = start + index / rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            kind, path = paths[index % len(paths)]
            problem = _send(sessions.session, stack.adapter_url + path)
            with lock:
                result.by_kind[kind] = result.by_kind.get(kind, 0) + 1
                if problem is None:
                    result.latencies.append(time.monotonic() - scheduled)
                else:
                    result.errors.append(f"{kind}: {problem}")

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    return result
