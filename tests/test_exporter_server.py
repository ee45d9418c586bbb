"""The exporter served over real HTTP against a stand-in kubelet (pytest-httpserver).

Each ``samples()`` runs one collection round synchronously, then scrapes ``/metrics``: the same
path the background thread takes, without waiting for it."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from exporter.collector import Collector, Target
from exporter.server import create_app, make_server_for
from exporter.source import FileSource, SummarySource, URLSource
from exporter.targets import StaticTargets
from tests.conftest import kubelet_fixture_paths

PAYLOAD = next(p for p in kubelet_fixture_paths("summary") if p.stem == "summary-minikube-1.35")
NODE = "datagen-1-35"


class Exporter:
    """A real exporter HTTP server on 127.0.0.1, reading a stand-in kubelet."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.server = make_server_for(create_app(collector), "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def get(self, path: str, **headers: str) -> requests.Response:
        return requests.get(self.url + path, headers=headers, timeout=10)

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        self.collector.collect_round()
        response = self.get("/metrics")
        assert response.status_code == 200
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in parse_text(response.text)
            for sample in family.samples
        }

    def close(self) -> None:
        self.collector.stop()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def collector_for(
    source: SummarySource, node_name: str | None, target_name: str, timeout: float = 5.0
) -> Collector:
    target = Target(node_name or target_name, source, None, name_from_summary=node_name is None)
    return Collector(
        StaticTargets(target),
        interval_seconds=60.0,
        timeout_seconds=timeout,
        max_concurrent_scrapes=2,
    )


@pytest.fixture
def exporter_for(httpserver: HTTPServer) -> Iterator[object]:
    started: list[Exporter] = []

    def start(timeout: float = 2.0, node_name: str | None = None) -> Exporter:
        source = URLSource(httpserver.url_for("/stats/summary"), timeout, max_body_bytes=1 << 20)
        exporter = Exporter(collector_for(source, node_name, "127.0.0.1", timeout))
        started.append(exporter)
        return exporter

    yield start
    for exporter in started:
        exporter.close()


def series(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (name, frozenset(labels.items()))


@pytest.mark.parametrize("path", kubelet_fixture_paths("summary"), ids=lambda p: p.stem)
def test_serves_real_payloads(httpserver: HTTPServer, exporter_for: object, path: Path) -> None:
    httpserver.expect_request("/stats/summary").respond_with_data(
        path.read_bytes(), content_type="application/json"
    )
    exporter = exporter_for()  # type: ignore[operator]
    samples = exporter.samples()
    node = next(
        labels for name, labels in samples if name == "kubestats_node_cpu_usage_seconds_total"
    )
    node_name = dict(node)["node"]
    assert samples[series("kubestats_exporter_scrape_success", node=node_name)] == 1
    assert 0 <= samples[series("kubestats_exporter_scrape_duration_seconds", node=node_name)] < 10
    assert not any(name == "kubestats_exporter_scrape_errors_total" for name, _ in samples)


# (id, how the stand-in kubelet answers, expected reason)
FAILURES = [
    ("http-500", lambda s: s.respond_with_data("boom", status=500), "http_status"),
    ("http-403", lambda s: s.respond_with_data("forbidden", status=403), "unauthorized"),
    ("garbage", lambda s: s.respond_with_data(b"\x00not json{{"), "invalid_json"),
    ("wrong-shape", lambda s: s.respond_with_json({"node": {"nodeName": 5}}), "invalid_data"),
    ("too-large", lambda s: s.respond_with_data(b" " * (2 << 20)), "too_large"),
]


@pytest.mark.parametrize(
    ("answer", "reason"), [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES]
)
def test_failed_scrape_is_data_and_the_exporter_recovers(
    httpserver: HTTPServer, exporter_for: object, answer: object, reason: str
) -> None:
    answer(httpserver.expect_ordered_request("/stats/summary"))  # type: ignore[operator]
    httpserver.expect_ordered_request("/stats/summary").respond_with_data(PAYLOAD.read_bytes())
    exporter = exporter_for(node_name=NODE)  # type: ignore[operator]

    failed = exporter.samples()
    assert failed[series("kubestats_exporter_scrape_success", node=NODE)] == 0
    assert failed[series("kubestats_exporter_scrape_errors_total", node=NODE, reason=reason)] == 1
    assert not any(name.startswith("kubestats_node_") for name, _ in failed)

    recovered = exporter.samples()
    assert recovered[series("kubestats_exporter_scrape_success", node=NODE)] == 1
    assert (
        recovered[series("kubestats_exporter_scrape_errors_total", node=NODE, reason=reason)] == 1
    )
    assert series("kubestats_node_cpu_usage_seconds_total", node=NODE) in recovered
    assert exporter.get("/healthz").status_code == 200


def test_slow_kubelet_times_out_and_the_exporter_keeps_serving(
    httpserver: HTTPServer, exporter_for: object
) -> None:
    def slow(request: Request) -> Response:
        time.sleep(1.0)
        return Response(PAYLOAD.read_bytes())

    httpserver.expect_ordered_request("/stats/summary").respond_with_handler(slow)
    httpserver.expect_ordered_request("/stats/summary").respond_with_data(PAYLOAD.read_bytes())
    exporter = exporter_for(timeout=0.3)  # type: ignore[operator]

    started = time.monotonic()
    failed = exporter.samples()
    assert time.monotonic() - started < 1.0 + 0.9
    # No NODE_NAME and no Summary seen yet: the self metrics name the kubelet's host.
    assert failed[series("kubestats_exporter_scrape_success", node="127.0.0.1")] == 0
    assert (
        failed[series("kubestats_exporter_scrape_errors_total", node="127.0.0.1", reason="timeout")]
        == 1
    )
    time.sleep(0.8)  # let the stand-in finish the slow answer before the next request
    recovered = exporter.samples()
    assert recovered[series("kubestats_exporter_scrape_success", node=NODE)] == 1


def test_kubelet_down_is_a_connection_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    source = URLSource(f"http://127.0.0.1:{closed_port}/stats/summary", 2.0)
    exporter = Exporter(collector_for(source, NODE, "127.0.0.1"))
    try:
        samples = exporter.samples()
    finally:
        exporter.close()
    assert samples[series("kubestats_exporter_scrape_success", node=NODE)] == 0
    assert (
        samples[series("kubestats_exporter_scrape_errors_total", node=NODE, reason="connection")]
        == 1
    )


@pytest.fixture
def file_exporter(tmp_path: Path) -> Iterator[Exporter]:
    exporter = Exporter(collector_for(FileSource(PAYLOAD), None, "x"))
    exporter.collector.collect_round()
    yield exporter
    exporter.close()


def test_openmetrics_when_asked(file_exporter: Exporter) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    response = file_exporter.get("/metrics", Accept=accept)
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert any(
        f.name == "kubestats_node_cpu_usage_seconds" for f in parse_openmetrics(response.text)
    )


def test_text_format_by_default_and_gzip(file_exporter: Exporter) -> None:
    plain = file_exporter.get("/metrics", **{"Accept-Encoding": "identity"})
    assert plain.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    raw = requests.get(
        file_exporter.url + "/metrics", headers={"Accept-Encoding": "gzip"}, stream=True, timeout=10
    )
    assert raw.headers["Content-Encoding"] == "gzip"
    unzipped = gzip.decompress(raw.raw.read()).decode()

    # Both requests are served from the same round, rendered once.
    assert unzipped == plain.text


@pytest.mark.parametrize(("path", "status"), [("/healthz", 200), ("/readyz", 200), ("/nope", 404)])
def test_health_endpoints(file_exporter: Exporter, path: str, status: int) -> None:
    assert file_exporter.get(path).status_code == status


def test_missing_file_is_reported(tmp_path: Path) -> None:
    collector = collector_for(FileSource(tmp_path / "absent.json"), None, "f")
    collector.collect_round()
    snapshot = collector.snapshot()
    assert snapshot is not None
    text = snapshot.body(openmetrics=False, gzip_accepted=False)[0].decode()
    assert 'kubestats_exporter_scrape_errors_total{node="f",reason="file"} 1' in text
    collector.stop()


def test_not_ready_until_the_first_round(tmp_path: Path) -> None:
    exporter = Exporter(collector_for(FileSource(PAYLOAD), None, "x"))
    try:
        assert exporter.get("/readyz").status_code == 503
        assert exporter.get("/metrics").status_code == 503
        assert exporter.get("/healthz").status_code == 200
        exporter.collector.collect_round()
        assert exporter.get("/readyz").status_code == 200
        assert exporter.get("/metrics").status_code == 200
    finally:
        exporter.close()
