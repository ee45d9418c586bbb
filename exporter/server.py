"""HTTP shell of the exporter: ``/metrics``, ``/healthz``, ``/readyz``.

``/metrics`` serves the last complete collection round (``exporter.collector.Snapshot``) as
rendered bytes: a scrape never waits for a kubelet and never renders the metrics again. Before the
first round finished it answers 503, and ``/readyz`` says the same, so a Service sends no scrapes
to an exporter with nothing to say. ``create_app`` builds the Flask application from anything that
hands out snapshots; ``make_server_for`` serves it from one process with a thread per request.

Exceptions: none of its own; kubelet failures were turned into data by the collector.
"""

from __future__ import annotations

import logging
import socket
from socketserver import TCPServer, ThreadingMixIn
from typing import Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from flask import Flask, Response, request

from exporter.collector import Snapshot
from exporter.exposition import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, wants_openmetrics

__all__ = ["SnapshotSource", "create_app", "make_server_for"]

logger = logging.getLogger(__name__)

_NOT_READY = "no collection round has finished yet\n"


class SnapshotSource(Protocol):
    """Anything that hands out the last complete round (``exporter.collector.Collector``)."""

    def snapshot(self) -> Snapshot | None: ...


def create_app(metrics: SnapshotSource) -> Flask:
    app = Flask("kubemetrics-exporter")

    @app.get("/metrics")
    def serve_metrics() -> Response:
        snapshot = metrics.snapshot()
        if snapshot is None:
            return Response(_NOT_READY, status=503, content_type="text/plain; charset=utf-8")
        openmetrics = wants_openmetrics(request.headers.get("Accept"))
        body, gzipped = snapshot.body(
            openmetrics=openmetrics,
            gzip_accepted="gzip" in request.headers.get("Accept-Encoding", ""),
        )
        content_type = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
        response = Response(body, content_type=content_type)
        if gzipped:
            response.headers["Content-Encoding"] = "gzip"
        response.vary.add("Accept")
        response.vary.add("Accept-Encoding")
        return response

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", content_type="text/plain; charset=utf-8")

    @app.get("/readyz")
    def readyz() -> Response:
        if metrics.snapshot() is None:
            return Response(_NOT_READY, status=503, content_type="text/plain; charset=utf-8")
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
