"""Serve a WSGI app over HTTPS with gunicorn, telling the app who the TLS peer is.

Gunicorn already puts the connection into the environ as ``gunicorn.socket`` (an
``ssl.SSLSocket`` under TLS, for the sync and gthread workers alike), so the verified client
certificate is read from there. What the environ loses is header multiplicity: repeated
headers are joined with commas, and the aggregator sends one ``X-Remote-Group`` line per group
whose names may themselves contain commas. The worker classes here therefore publish the
request's raw header lines for the duration of the request, and ``expose_tls_peer`` copies both
facts into the environ keys ``adapter.auth`` reads.

No exceptions of its own: configuration errors surface as gunicorn's, TLS file problems as
``adapter.tls.TLSConfigError`` before the server starts.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

from adapter.auth import ENVIRON_HEADER_LINES, ENVIRON_PEER_CERTIFICATE
from adapter.tls import ServerContextFactory, ServingCertificate

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

HeaderLines = tuple[tuple[str, str], ...]

# Set by the workers around each request; per thread, so gthread's pool threads do not mix.
_REQUEST_HEADER_LINES: ContextVar[HeaderLines | None] = ContextVar(
    "kubemetrics_request_header_lines", default=None
)


def _header_lines(request: Any) -> HeaderLines:
    return tuple((str(name), str(value)) for name, value in request.headers)


class HeaderLinesSyncWorker(SyncWorker):  # type: ignore[misc]
    """gunicorn's sync worker, publishing each request's raw header lines."""

    def handle_request(self, listener: Any, req: Any, client: Any, addr: Any) -> Any:
        token = _REQUEST_HEADER_LINES.set(_header_lines(req))
        try:
            return super().handle_request(listener, req, client, addr)
        finally:
            _REQUEST_HEADER_LINES.reset(token)


class HeaderLinesThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker, publishing each request's raw header lines."""

    def handle_request(self, req: Any, conn: Any) -> Any:
        token = _REQUEST_HEADER_LINES.set(_header_lines(req))
        try:
            return super().handle_request(req, conn)
        finally:
            _REQUEST_HEADER_LINES.reset(token)


def verified_peer_certificate(connection: object) -> bytes | None:
    """DER of the client certificate, only if this TLS connection asked for and verified one."""
    if not isinstance(connection, ssl.SSLSocket):
        return None
    if connection.context.verify_mode == ssl.CERT_NONE:
        return None
    return connection.getpeercert(binary_form=True)


def expose_tls_peer(app: WSGIApplication) -> WSGIApplication:
    """Wrap ``app`` so its environ carries the verified peer certificate and raw header lines."""

    def with_tls_peer(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ[ENVIRON_PEER_CERTIFICATE] = verified_peer_certificate(
            environ.get("gunicorn.socket")
        )
        lines = _REQUEST_HEADER_LINES.get()
        if lines is None:
            environ.pop(ENVIRON_HEADER_LINES, None)
        else:
            environ[ENVIRON_HEADER_LINES] = lines
        return app(environ, start_response)

    return with_tls_peer


@dataclass(frozen=True)
class ServerOptions:
    """gunicorn settings the adapter exposes; everything else keeps gunicorn's default."""

    bind: str = "0.0.0.0:6443"
    workers: int = 1
    threads: int = 4
    timeout_seconds: int = 30
    graceful_timeout_seconds: int = 10
    keepalive_seconds: int = 5
    log_level: str = "info"
    access_log: bool = False
    proc_name: str = "kubemetrics-adapter"


class AdapterServer(BaseApplication):  # type: ignore[misc]
    """A gunicorn application serving ``app_factory()`` over HTTPS only.

    ``app_factory`` runs in each worker after the fork, so clients and caches are per worker.
    ``client_ca`` returns the request-header CA bundle (PEM, may be empty) and is consulted for
    every new connection; see ``adapter.tls.ServerContextFactory``.
    """

    def __init__(
        self,
        app_factory: Callable[[], WSGIApplication],
        serving: ServingCertificate,
        client_ca: Callable[[], str],
        options: ServerOptions = ServerOptions(),
    ) -> None:
        self._app_factory = app_factory
        self._serving = serving
        self._contexts = ServerContextFactory(serving, client_ca)
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        options = self._options
        contexts = self._contexts
        worker = HeaderLinesThreadWorker if options.threads > 1 else HeaderLinesSyncWorker
        settings: dict[str, object] = {
            "bind": [options.bind],
            "workers": options.workers,
            "threads": options.threads,
            "worker_class": worker,
            "timeout": options.timeout_seconds,
            "graceful_timeout": options.graceful_timeout_seconds,
            "keepalive": options.keepalive_seconds,
            "loglevel": options.log_level,
            "errorlog": "-",
            "accesslog": "-" if options.access_log else None,
            "proc_name": options.proc_name,
            "certfile": str(self._serving.cert_file),
            "keyfile": str(self._serving.key_file),
            "ssl_context": lambda _config, _default_factory: contexts(),
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> WSGIApplication:
        return expose_tls_peer(self._app_factory())
