"""Stand-in kubelets: one loopback listener per simulated node, all in one event-loop thread.

Each node answers ``GET /stats/summary`` (also ``?only_cpu_and_memory=true``), ``GET /pods`` and
``GET /healthz`` on its own port of 127.0.0.1, over HTTP or HTTPS (a caller-built
``ssl.SSLContext``), optionally requiring ``Authorization: Bearer <token>`` on the data endpoints
like a kubelet with webhook authentication. One asyncio loop serves every listener, so 500 nodes
cost 500 sockets, not 500 threads. A node's payload is built once per housekeeping interval and
cached as bytes, which is also what makes repeated fetches identical.

Per-node faults (:class:`Fault`) make a node misbehave on its data endpoints; they can be changed
while the fleet runs. ``/healthz`` is never faulted and never needs the token.

Exception tree::

    FleetError(RuntimeError)    the fleet cannot start (port in use...) or is used wrongly
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hmac
import json
import logging
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from simcluster.kubelet_payloads import PayloadOptions, only_cpu_and_memory, pod_list, summary
from simcluster.model import Cluster

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
GARBAGE_BODY = b"<html><body>502 Bad Gateway</body></html>\x00\xff not json {"


class FleetError(RuntimeError):
    """The stand-in kubelets cannot start or were used wrongly."""


class Fault(enum.StrEnum):
    """How a node misbehaves on ``/stats/summary`` and ``/pods``."""

    NONE = "none"
    HANG = "hang"  # read the request, never answer (until the client or the fleet goes away)
    ERROR = "500"  # HTTP 500 with a short text body
    GARBAGE = "garbage"  # HTTP 200, application/json, a body that is not JSON
    TRUNCATED = "truncated"  # full Content-Length, half the body, then close
    SLOW = "slow"  # correct answer, dribbled out over ``slow_seconds``
    RESET = "reset"  # close the connection with a TCP reset, no answer


class KubeletFleet:
    """N stand-in kubelets for a simulated cluster. Use as a context manager, or start/stop.

    ``clock`` gives wall time (Unix seconds); inject a fake one to step time in tests.
    ``ports`` optionally fixes each node's port (default: any free port).
    """

    def __init__(
        self,
        cluster: Cluster,
        *,
        clock: Callable[[], float] = time.time,
        ssl_context: ssl.SSLContext | None = None,
        token: str | None = None,
        faults: Mapping[str, Fault] | None = None,
        slow_seconds: float = 2.0,
        payload_options: PayloadOptions | None = None,
        ports: Mapping[str, int] | None = None,
    ) -> None:
        unknown = sorted((set(faults or {}) | set(ports or {})) - {n.name for n in cluster.nodes})
        if unknown:
            raise FleetError(f"faults/ports name nodes not in the cluster: {unknown}")
        if token is not None and not token:
            raise FleetError("token must be a non-empty string or None")
        self.cluster = cluster
        self._clock = clock
        self._ssl = ssl_context
        self._token = token.encode() if token is not None else None
        self._faults: dict[str, Fault] = dict(faults or {})
        self._slow_seconds = slow_seconds
        self._options = payload_options or PayloadOptions()
        self._ports = dict(ports or {})
        self._cache: dict[tuple[str, str], tuple[float, bytes]] = {}
        self._urls: dict[str, str] = {}
        self._requests: Counter[tuple[str, str]] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise FleetError("the fleet is already running")
        sockets = self._bind_all()
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name="simcluster-kubelets", daemon=True
        )
        self._thread.start()
        try:
            self._run(self._start_servers(sockets), timeout=30.0)
        except BaseException:
            self.stop()
            raise
        scheme = "https" if self._ssl else "http"
        self._urls = {
            name: f"{scheme}://127.0.0.1:{sock.getsockname()[1]}" for name, sock in sockets.items()
        }

    def stop(self) -> None:
        """Close every listener and connection and end the loop thread. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            with contextlib.suppress(Exception):
                self._run(self._shutdown(), timeout=10.0)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10.0)
        if thread.is_alive():
            raise FleetError("the kubelet loop thread did not stop within 10 s")
        loop.close()
        self._loop = self._thread = None
        self._servers = []
        self._urls = {}

    def __enter__(self) -> KubeletFleet:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- queries and controls ----------------------------------------------------------------

    @property
    def urls(self) -> dict[str, str]:
        """Node name → base URL (``http(s)://127.0.0.1:PORT``), once started."""
        return dict(self._urls)

    def set_fault(self, node_name: str, fault: Fault) -> None:
        self.cluster.node(node_name)
        self._faults[node_name] = fault  # a dict store is atomic; the loop reads it per request

    def request_count(self, node_name: str, path: str) -> int:
        """How many requests for ``path`` (without query) the node has received."""
        return self._requests[(node_name, path)]

    # -- internals -----------------------------------------------------------------------------

    def _run(self, coroutine: Coroutine[Any, Any, None], timeout: float) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _bind_all(self) -> dict[str, socket.socket]:
        sockets: dict[str, socket.socket] = {}
        try:
            for node in self.cluster.nodes:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets[node.name] = sock
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                port = self._ports.get(node.name, 0)
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError as err:
                    raise FleetError(
                        f"node {node.name}: cannot bind 127.0.0.1:{port}: {err}"
                    ) from err
                sock.listen(128)
                sock.setblocking(False)
        except BaseException:
            for sock in sockets.values():
                sock.close()
            raise
        return sockets

    async def _start_servers(self, sockets: dict[str, socket.socket]) -> None:
        for name, sock in sockets.items():

            def handler(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, node: str = name
            ) -> Coroutine[Any, Any, None]:
                return self._serve_connection(node, reader, writer)

            server = await asyncio.start_server(
                self._track(handler), sock=sock, limit=MAX_HEADER_BYTES
            )
            self._servers.append(server)

    def _track(
        self,
        handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]],
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]:
        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Only the fleet cancels connections, when stopping. Ending normally matters:
            # Python 3.11's stream callback logs a traceback for a cancelled handler task.
            with contextlib.suppress(asyncio.CancelledError):
                await handler(reader, writer)

        return tracked

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        this = asyncio.current_task()
        for _ in range(3):
            # Let connections accepted just now start their handler (which ends quietly when
            # cancelled), then cancel every handler, including ones not yet tracked.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            pending = [task for task in asyncio.all_tasks() if task is not this]
            if not pending:
                break
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=5.0)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), timeout=1.0)

    async def _serve_connection(
        self, node: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        graceful = False
        try:
            if self._ssl is not None:
                # TLS inside the handler (not in start_server) so that a handshake in progress
                # belongs to this task and is cleaned up when the fleet stops.
                await writer.start_tls(self._ssl, ssl_handshake_timeout=10.0)
            while await self._serve_request(node, reader, writer):
                pass
            graceful = True
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except asyncio.LimitOverrunError:
            log.debug("node %s: request head larger than %d bytes", node, MAX_HEADER_BYTES)
        except ssl.SSLError as err:
            log.debug("node %s: TLS error from client: %s", node, err)
        finally:
            if graceful:
                writer.close()
                try:
                    await writer.wait_closed()
                except asyncio.CancelledError:
                    writer.transport.abort()
                    raise
                except (ConnectionError, ssl.SSLError):
                    pass
            else:
                writer.transport.abort()

    async def _serve_request(
        self, node: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False when the connection should close."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            await _respond(writer, 400, b"malformed request line\n", keep_alive=False)
            return False
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                key, value = line.split(":", 1)
                headers[key.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length:
            await reader.readexactly(length)
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        url = urlsplit(target)
        self._requests[(node, url.path)] += 1
        if method != "GET":
            await _respond(writer, 405, b"405 method not allowed\n", keep_alive=keep_alive)
            return keep_alive
        if url.path == "/healthz":
            await _respond(writer, 200, b"ok", keep_alive=keep_alive, content_type="text/plain")
            return keep_alive
        if url.path not in ("/stats/summary", "/stats/summary/", "/pods", "/pods/"):
            await _respond(writer, 404, b"404 page not found\n", keep_alive=keep_alive)
            return keep_alive
        if not self._authorized(headers.get("authorization", "")):
            await _respond(writer, 401, b"Unauthorized", keep_alive=keep_alive)
            return keep_alive
        reduced = parse_qs(url.query).get("only_cpu_and_memory", [""])[0] == "true"
        return await self._answer_data(
            node=node,
            path=url.path.rstrip("/"),
            reduced=reduced,
            reader=reader,
            writer=writer,
            keep_alive=keep_alive,
        )

    def _authorized(self, header: str) -> bool:
        if self._token is None:
            return True
        scheme, _, credential = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credential.strip().encode(), self._token
        )

    async def _answer_data(
        self,
        *,
        node: str,
        path: str,
        reduced: bool,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
    ) -> bool:
        fault = self._faults.get(node, Fault.NONE)
        if fault is Fault.HANG:
            await reader.read()  # returns at EOF: the client gave up
            return False
        if fault is Fault.RESET:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if fault is Fault.ERROR:
            await _respond(
                writer, 500, b"Internal Error: simulated failure\n", keep_alive=keep_alive
            )
            return keep_alive
        if fault is Fault.GARBAGE:
            await _respond(
                writer, 200, GARBAGE_BODY, keep_alive=keep_alive, content_type="application/json"
            )
            return keep_alive
        body = self._payload(node, path, reduced)
        if fault is Fault.TRUNCATED:
            writer.write(_head(200, len(body), "application/json", keep_alive=True))
            writer.write(body[: len(body) // 2])
            await writer.drain()
            return False
        if fault is Fault.SLOW:
            writer.write(_head(200, len(body), "application/json", keep_alive=keep_alive))
            chunks = 10
            step = max(1, -(-len(body) // chunks))
            for start in range(0, len(body), step):
                writer.write(body[start : start + step])
                await writer.drain()
                await asyncio.sleep(self._slow_seconds / chunks)
            return keep_alive
        await _respond(writer, 200, body, keep_alive=keep_alive, content_type="application/json")
        return keep_alive

    def _payload(self, node: str, path: str, reduced: bool) -> bytes:
        now = self._clock()
        sample = self.cluster.sample_time(node, now)
        key = (node, f"{path}?reduced" if reduced else path)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == sample:
            return cached[1]
        if path == "/pods":
            document = pod_list(self.cluster, node, now)
        else:
            document = summary(self.cluster, node, now, self._options)
            if reduced:
                document = only_cpu_and_memory(document)
        body = json.dumps(document, separators=(",", ":")).encode()
        self._cache[key] = (sample, body)
        return body


REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
}


def _head(status: int, length: int, content_type: str, *, keep_alive: bool) -> bytes:
    connection = "keep-alive" if keep_alive else "close"
    return (
        f"HTTP/1.1 {status} {REASONS[status]}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n"
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}\r\n"
        f"Connection: {connection}\r\n\r\n"
    ).encode()


async def _respond(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    *,
    keep_alive: bool,
    content_type: str = "text/plain; charset=utf-8",
) -> None:
    writer.write(_head(status, len(body), content_type, keep_alive=keep_alive) + body)
    await writer.drain()
