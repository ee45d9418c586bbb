"""HTTP shell of the exporter: ``/metrics``, ``/healthz``, ``/readyz``.

``NodeScraper`` fetches and parses one kubelet's Summary on every ``/metrics`` request and keeps
the only state the exporter has, the failure counts by reason. A failed fetch or parse is
reported in the metrics (``kubestats_exporter_scrape_success`` 0, an error count), never as an
HTTP error. ``create_app`` builds the Flask application from anything that yields metric
families; ``make_server`` serves it from one process with a thread per request.

Exceptions: none of its own. ``FetchError`` and ``SummaryParseError`` are caught here, at the
edge, and turned into data.
"""

from __future__ import annotations

import gzip
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from socketserver import TCPServer, ThreadingMixIn
from typing import Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from flask import Flask, Response, request

from exporter.collect import collect
from exporter.exposition import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    MetricFamily,
    render_openmetrics,
    render_text,
    wants_openmetrics,
)
from exporter.model import NodeResult, ScrapeFailure
from exporter.parse import SummaryParseError, parse_summary
from exporter.source import FetchError, SummarySource

__all__ = ["FamilySource", "NodeScraper", "create_app", "make_server_for"]

logger = logging.getLogger(__name__)

# Below this size gzip costs more than it saves.
_GZIP_MIN_BYTES = 1024


class FamilySource(Protocol):
    """Anything that produces the metric families for one ``/metrics`` response."""

    def families(self) -> Sequence[MetricFamily]: ...


class NodeScraper:
    """Scrapes one kubelet per call to ``families``; counts failures by reason."""

    def __init__(
        self,
        source: SummarySource,
        *,
        node_name: str | None,
        target_name: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._node_name = node_name
        self._last_seen_node: str | None = None
        self._target_name = target_name
        self._clock = clock
        self._lock = threading.Lock()
        self._errors: Counter[tuple[str, str]] = Counter()

    def scrape(self) -> NodeResult:
        started = self._clock()
        failure: ScrapeFailure | None = None
        summary = None
        try:
            summary = parse_summary(self._source.fetch_summary())
        except FetchError as err:
            failure = ScrapeFailure(err.reason, str(err))
        except SummaryParseError as err:
            failure = ScrapeFailure(err.reason, str(err))
        duration = self._clock() - started
        with self._lock:
            if summary is not None:
                self._last_seen_node = summary.node.name
            node = self._node_name or self._last_seen_node or self._target_name
            if failure is not None:
                self._errors[(node, failure.reason)] += 1
        if failure is not None:
            logger.warning(
                "scraping kubelet of node %s failed (%s): %s", node, failure.reason, failure.message
            )
        return NodeResult(node, summary, failure, duration)

    def families(self) -> Sequence[MetricFamily]:
        result = self.scrape()
        with self._lock:
            errors = dict(self._errors)
        return collect([result], errors)


def create_app(metrics: FamilySource) -> Flask:
    app = Flask("kubemetrics-exporter")

    @app.get("/metrics")
    def serve_metrics() -> Response:
        families = metrics.families()
        if wants_openmetrics(request.headers.get("Accept")):
            body, content_type = render_openmetrics(families), OPENMETRICS_CONTENT_TYPE
        else:
            body, content_type = render_text(families), TEXT_CONTENT_TYPE
        data = body.encode("utf-8")
        response = Response(data, content_type=content_type)
        if len(data) >= _GZIP_MIN_BYTES and "gzip" in request.headers.get("Accept-Encoding", ""):
            response.set_data(gzip.compress(data, compresslevel=1))
            response.headers["Content-Encoding"] = "gzip"
        response.vary.add("Accept")
        response.vary.add("Accept-Encoding")
        return response

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", content_type="text/plain; charset=utf-8")

    @app.get("/readyz")
    def readyz() -> Response:
        # Every scrape fetches afresh, so the exporter is ready as soon as it serves.
        return Response("ok\n", content_type="text/plain; charset=utf-8")

    @app.get("/")
    def index() -> Response:
        return Response(
            "kubemetrics exporter: see /metrics, /healthz, /readyz\n",
            content_type="text/plain; charset=utf-8",
        )

    return app


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a DNS lookup we do not need.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)
        self.setup_environ()


class _IPv6ThreadingServer(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


def make_server_for(app: Flask, host: str, port: int) -> WSGIServer:
    """A threaded WSGI server bound to host:port ("" = every IPv4 address; port 0 = any)."""
    server_class = _IPv6ThreadingServer if ":" in host else _ThreadingServer
    return make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
