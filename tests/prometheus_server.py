"""A real Prometheus for tests: started on 127.0.0.1 with a temporary TSDB, stopped afterwards.

Use the ``prometheus_server`` fixture (one empty server per test session) or, for a server with
data, :func:`running_prometheus` with ``openmetrics=`` text that is backfilled with
``promtool tsdb create-blocks-from openmetrics`` before start::

    from tests.prometheus_server import running_prometheus

    def test_x(prometheus_binary, promtool, tmp_path):
        with running_prometheus(prometheus_binary, tmp_path, openmetrics=TEXT,
                                promtool=promtool) as server:
            ...  # server.url is http://127.0.0.1:<port>

Import the fixture into a test module with ``from tests.prometheus_server import
prometheus_server`` (or register it in conftest.py).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class PrometheusServer:
    url: str  # http://127.0.0.1:<port>, no trailing slash
    storage: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _backfill(promtool: str, openmetrics: str, directory: Path, storage: Path) -> None:
    source = directory / "backfill.om"
    text = openmetrics if openmetrics.rstrip().endswith("# EOF") else openmetrics + "# EOF\n"
    source.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(storage)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"promtool backfill failed:\n{result.stdout}\n{result.stderr}")


def _wait_ready(server: PrometheusServer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"prometheus exited with {server.process.returncode}:\n{server.log()}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    pytest.fail(f"prometheus not ready after {READY_TIMEOUT_SECONDS}s:\n{server.log()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


@contextlib.contextmanager
def running_prometheus(
    binary: str,
    directory: Path,
    config: str = "",
    openmetrics: str | None = None,
    promtool: str | None = None,
    extra_args: tuple[str, ...] = (),
) -> Iterator[PrometheusServer]:
    """Run Prometheus from ``directory`` until the block exits; fails the test if it cannot.

    ``config`` is the prometheus.yml text (empty: no scrape jobs). ``openmetrics`` data (needs
    ``promtool``) is written into the TSDB before start; use timestamps within the last 15 days
    so that retention keeps them.
    """
    directory.mkdir(parents=True, exist_ok=True)
    storage = directory / "data"
    storage.mkdir(exist_ok=True)
    config_path = directory / "prometheus.yml"
    config_path.write_text(config, encoding="utf-8")
    if openmetrics is not None:
        if promtool is None:
            pytest.fail("running_prometheus(openmetrics=...) needs the promtool fixture")
        _backfill(promtool, openmetrics, directory, storage)
    port = _free_port()
    log_path = directory / "prometheus.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={storage}",
                f"--web.listen-address=127.0.0.1:{port}",
                *extra_args,
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=directory,
        )
    server = PrometheusServer(f"http://127.0.0.1:{port}", storage, process, log_path)
    try:
        _wait_ready(server)
        yield server
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def prometheus_server(
    prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """An empty Prometheus (no scrape jobs, no data) shared by the test session."""
    with running_prometheus(prometheus_binary, tmp_path_factory.mktemp("prometheus")) as server:
        yield server
