"""KubeletClient against real loopback servers: TLS with a generated CA, tokens, and every fault.

TLS cases use pytest-httpserver with a trustme CA. Faults that need control below HTTP (hangs,
resets, truncated and oversized bodies) use a small raw-socket stand-in kubelet.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from exporter.kubelet_client import (
    KubeletAuth,
    KubeletClient,
    KubeletConfigError,
    apiserver_proxy_client,
    auth_from_kubernetes_configuration,
    load_kubernetes_configuration,
)
from exporter.source import FetchError, SummarySource
from tests.conftest import KUBELET_FIXTURES

TOKEN = "s3cr3t-token-value-4e1f"
SUMMARY_BODY = (KUBELET_FIXTURES / "summary-minikube-1.35.json").read_bytes()
PODS_BODY = (KUBELET_FIXTURES / "pods-minikube-1.35.json").read_bytes()


# --- TLS material and HTTPS stand-ins -------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: trustme.CA
    ca_file: Path
    other_ca_file: Path
    client_cert_file: Path
    client_key_file: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.crt"))
    trustme.CA().cert_pem.write_to_path(str(directory / "other-ca.crt"))
    client = ca.issue_cert("kubemetrics-exporter.monitoring")
    client.cert_chain_pems[0].write_to_path(str(directory / "client.crt"))
    client.private_key_pem.write_to_path(str(directory / "client.key"))
    return Pki(
        ca=ca,
        ca_file=directory / "ca.crt",
        other_ca_file=directory / "other-ca.crt",
        client_cert_file=directory / "client.crt",
        client_key_file=directory / "client.key",
    )


def server_context(pki: Pki, *names: str, require_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki.ca.issue_cert(*names).configure_cert(context)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        pki.ca.configure_trust(context)
    return context


@contextlib.contextmanager
def https_server(context: ssl.SSLContext) -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context, threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


@pytest.fixture(scope="module")
def shared_kubelet(pki: Pki) -> Iterator[HTTPServer]:
    with https_server(server_context(pki, "127.0.0.1")) as server:
        yield server


@pytest.fixture
def kubelet(shared_kubelet: HTTPServer) -> Iterator[HTTPServer]:
    """An HTTPS stand-in kubelet whose certificate has the IP SAN 127.0.0.1; fresh expectations."""
    shared_kubelet.clear()
    yield shared_kubelet
    shared_kubelet.clear()


def base_url(server: HTTPServer) -> str:
    return f"https://127.0.0.1:{server.port}"


def token_file(tmp_path: Path, token: str = TOKEN) -> Path:
    path = tmp_path / "token"
    path.write_text(token + "\n", encoding="utf-8")
    return path


def fetch_error(call: Callable[[], object]) -> FetchError:
    with pytest.raises(FetchError) as caught:
        call()
    return caught.value


# --- TLS ------------------------------------------------------------------------------------


def test_verified_tls_with_token_returns_body_unchanged(
    kubelet: HTTPServer, pki: Pki, tmp_path: Path
) -> None:
    kubelet.expect_request(
        "/stats/summary", method="GET", headers={"Authorization": f"Bearer {TOKEN}"}
    ).respond_with_data(SUMMARY_BODY, content_type="application/json")
    kubelet.expect_request("/pods", headers={"Authorization": f"Bearer {TOKEN}"}).respond_with_data(
        PODS_BODY, content_type="application/json"
    )
    auth = KubeletAuth(token_file=token_file(tmp_path), ca_file=pki.ca_file)
    with KubeletClient(base_url(kubelet), auth) as client:
        source: SummarySource = client
        assert source.fetch_summary() == SUMMARY_BODY
        assert client.fetch_pods() == PODS_BODY
        # A second round reuses the connection the first one opened.
        assert client.fetch_summary() == SUMMARY_BODY
    kubelet.check_assertions()
    assert [request.path for request, _ in kubelet.log] == [
        "/stats/summary",
        "/pods",
        "/stats/summary",
    ]


@pytest.mark.parametrize(
    ("server_names", "ca_choice", "expected_advice"),
    [
        pytest.param(
            ("127.0.0.1",),
            "other",
            "--kubelet-ca-file",
            id="certificate-signed-by-another-ca",
        ),
        pytest.param(
            ("kubelet.node-a.example",),
            "right",
            "--kubelet-preferred-address-types=Hostname",
            id="certificate-without-ip-san",
        ),
        pytest.param(("127.0.0.1",), "system", "--kubelet-ca-file", id="system-cas-only"),
    ],
)
def test_tls_failures_are_tls_errors_that_say_what_to_do(
    pki: Pki, server_names: tuple[str, ...], ca_choice: str, expected_advice: str
) -> None:
    ca_file = {"other": pki.other_ca_file, "right": pki.ca_file, "system": None}[ca_choice]
    with https_server(server_context(pki, *server_names)) as server:
        server.expect_request("/stats/summary").respond_with_data(b"{}")
        client = KubeletClient(base_url(server), KubeletAuth(ca_file=ca_file))
        error = fetch_error(client.fetch_summary)
        assert server.log == [], "the request must not be sent over an unverified connection"
    assert error.reason == "tls"
    assert expected_advice in str(error)
    assert "--kubelet-insecure-tls" in str(error)
    assert f"127.0.0.1:{server.port}" in str(error)


def test_insecure_flag_accepts_unverifiable_certificate_and_warns_once(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="exporter.kubelet_client")
    with https_server(server_context(pki, "kubelet.node-a.example")) as server:
        server.expect_request("/stats/summary").respond_with_data(SUMMARY_BODY)
        auth = KubeletAuth(insecure_skip_verify=True)
        with KubeletClient(base_url(server), auth) as client:
            # pytest turns warnings into errors: urllib3's per-request warning must not escape.
            for _ in range(3):
                assert client.fetch_summary() == SUMMARY_BODY
        with KubeletClient(base_url(server), auth) as second_client:
            assert second_client.fetch_summary() == SUMMARY_BODY
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "NOT verified" in warnings[0].getMessage()


def test_insecure_flag_and_ca_file_together_are_rejected(pki: Pki) -> None:
    with pytest.raises(KubeletConfigError, match="cannot be combined"):
        KubeletAuth(ca_file=pki.ca_file, insecure_skip_verify=True)


@pytest.mark.parametrize(
    ("present_certificate", "expect_success"),
    [
        pytest.param(True, True, id="client-certificate-presented"),
        pytest.param(False, False, id="client-certificate-missing"),
    ],
)
def test_client_certificate_is_presented_when_configured(
    pki: Pki, present_certificate: bool, expect_success: bool
) -> None:
    context = server_context(pki, "127.0.0.1", require_client_cert=True)
    with https_server(context) as server:
        server.expect_request("/stats/summary").respond_with_data(SUMMARY_BODY)
        auth = KubeletAuth(
            ca_file=pki.ca_file,
            client_cert_file=pki.client_cert_file if present_certificate else None,
            client_key_file=pki.client_key_file if present_certificate else None,
        )
        client = KubeletClient(base_url(server), auth)
        if expect_success:
            assert client.fetch_summary() == SUMMARY_BODY
        else:
            error = fetch_error(client.fetch_summary)
            # TLS 1.3 reports a missing client certificate after the handshake, as a reset.
            assert error.reason in {"tls", "connection"}
            assert server.log == []


def test_client_certificate_without_key_is_a_configuration_error(pki: Pki) -> None:
    with pytest.raises(KubeletConfigError, match="both a certificate file and a key file"):
        KubeletAuth(client_cert_file=pki.client_cert_file)


# --- Tokens ---------------------------------------------------------------------------------


def test_token_is_never_logged_nor_in_errors(
    kubelet: HTTPServer, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3's and requests' debug logs included
    # A kubelet (or a proxy in front of it) that echoes the token in its error body.
    kubelet.expect_request("/stats/summary").respond_with_data(
        f"Forbidden: token {TOKEN} may not get nodes/stats", status=403
    )
    kubelet.expect_request("/pods").respond_with_data(PODS_BODY)
    auth = KubeletAuth(token_file=token_file(tmp_path), ca_file=pki.ca_file)
    client = KubeletClient(base_url(kubelet), auth)
    error = fetch_error(client.fetch_summary)
    assert client.fetch_pods() == PODS_BODY
    assert error.reason == "unauthorized"
    assert "<redacted>" in str(error)
    for text in (str(error), repr(error), repr(auth), repr(client.__dict__), caplog.text):
        assert TOKEN not in text
    assert kubelet.log[0][0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_token_from_source_callable_is_sent(kubelet: HTTPServer, pki: Pki) -> None:
    kubelet.expect_request(
        "/stats/summary", headers={"Authorization": "Bearer from-callable"}
    ).respond_with_data(b"{}")
    auth = KubeletAuth(token_source=lambda: "from-callable", ca_file=pki.ca_file)
    assert KubeletClient(base_url(kubelet), auth).fetch_summary() == b"{}"
    assert "from-callable" not in repr(auth)


def record_authorization(seen: list[str]) -> Callable[[Request], Response]:
    def handler(request: Request) -> Response:
        seen.append(request.headers.get("Authorization", ""))
        return Response(b"{}")

    return handler


def rewrite_in_place(path: Path, token: str) -> None:
    path.write_text(token, encoding="utf-8")
    # Make the change visible even where mtimes are coarse.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def swap_symlink(path: Path, token: str) -> None:
    """How the kubelet rotates projected tokens: new file, then an atomic symlink swap."""
    directory = path.parent
    new_data = directory / f"data-{token}"
    new_data.mkdir()
    (new_data / "token").write_text(token, encoding="utf-8")
    temporary_link = directory / "link.tmp"
    temporary_link.symlink_to(new_data / "token")
    temporary_link.replace(path)


@pytest.mark.parametrize(
    "rotate",
    [
        pytest.param(rewrite_in_place, id="rewritten-in-place"),
        pytest.param(swap_symlink, id="projected-volume-symlink-swap"),
    ],
)
def test_rotated_token_file_is_picked_up(
    kubelet: HTTPServer, pki: Pki, tmp_path: Path, rotate: Callable[[Path, str], None]
) -> None:
    seen: list[str] = []
    kubelet.expect_request("/stats/summary").respond_with_handler(record_authorization(seen))
    path = tmp_path / "token"
    rotate(path, "token-one")
    client = KubeletClient(base_url(kubelet), KubeletAuth(token_file=path, ca_file=pki.ca_file))
    client.fetch_summary()
    rotate(path, "token-two-longer")
    client.fetch_summary()
    client.fetch_summary()
    assert seen == ["Bearer token-one", "Bearer token-two-longer", "Bearer token-two-longer"]


def test_token_file_is_reread_after_a_minute_even_if_it_looks_unchanged(
    kubelet: HTTPServer, pki: Pki, tmp_path: Path
) -> None:
    seen: list[str] = []
    kubelet.expect_request("/stats/summary").respond_with_handler(record_authorization(seen))
    path = token_file(tmp_path, "aaaa")
    stat = path.stat()
    now = [1000.0]
    auth = KubeletAuth(token_file=path, ca_file=pki.ca_file)
    client = KubeletClient(base_url(kubelet), auth, token_clock=lambda: now[0])
    client.fetch_summary()
    path.write_text("bbbb\n", encoding="utf-8")  # same size; restore the old mtime
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    client.fetch_summary()
    now[0] += 61
    client.fetch_summary()
    assert seen == ["Bearer aaaa", "Bearer aaaa", "Bearer bbbb"]


def test_missing_token_file_keeps_the_last_good_token_then_fails_when_never_read(
    kubelet: HTTPServer, pki: Pki, tmp_path: Path
) -> None:
    kubelet.expect_request("/stats/summary").respond_with_data(b"{}")
    path = token_file(tmp_path)
    client = KubeletClient(base_url(kubelet), KubeletAuth(token_file=path, ca_file=pki.ca_file))
    client.fetch_summary()
    path.unlink()
    assert client.fetch_summary() == b"{}"
    fresh = KubeletClient(base_url(kubelet), KubeletAuth(token_file=path, ca_file=pki.ca_file))
    error = fetch_error(fresh.fetch_summary)
    assert error.reason == "unauthorized"
    assert str(path) in str(error)


def test_in_cluster_defaults_are_used_only_when_present(tmp_path: Path, pki: Pki) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    outside = KubeletAuth.from_flags(service_account_dir=empty)
    assert (outside.token_file, outside.ca_file) == (None, None)
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(TOKEN, encoding="utf-8")
    (account / "ca.crt").write_bytes(pki.ca_file.read_bytes())
    inside = KubeletAuth.from_flags(service_account_dir=account)
    assert (inside.token_file, inside.ca_file) == (account / "token", account / "ca.crt")
    explicit = KubeletAuth.from_flags(ca_file=str(pki.ca_file), service_account_dir=account)
    assert explicit.ca_file == pki.ca_file
    with pytest.raises(KubeletConfigError, match="--kubelet-token-file"):
        KubeletAuth.from_flags(token_file=str(tmp_path / "absent"), service_account_dir=account)


# --- HTTP statuses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "send_token", "reason", "message_part"),
    [
        pytest.param(401, True, "unauthorized", "token was rejected", id="401-token-rejected"),
        pytest.param(401, False, "unauthorized", "no bearer token was sent", id="401-no-token"),
        pytest.param(403, True, "unauthorized", "nodes/stats", id="403-rbac"),
        pytest.param(500, True, "http_status", "HTTP 500", id="500"),
        pytest.param(404, True, "http_status", "HTTP 404", id="404"),
        pytest.param(503, True, "http_status", "HTTP 503", id="503"),
        pytest.param(302, True, "http_status", "HTTP 302", id="302-redirect-not-followed"),
    ],
)
def test_http_status_becomes_reason(
    kubelet: HTTPServer,
    pki: Pki,
    tmp_path: Path,
    status: int,
    send_token: bool,
    reason: str,
    message_part: str,
) -> None:
    kubelet.expect_request("/stats/summary").respond_with_data(
        "kubelet says no", status=status, headers={"Location": "https://attacker.example/"}
    )
    auth = KubeletAuth(token_file=token_file(tmp_path) if send_token else None, ca_file=pki.ca_file)
    error = fetch_error(KubeletClient(base_url(kubelet), auth).fetch_summary)
    assert error.reason == reason
    assert message_part in str(error)
    assert "kubelet says no" in str(error)
    assert len(kubelet.log) == 1


# --- Faults below HTTP ----------------------------------------------------------------------


class RawKubelet:
    """A plain-TCP stand-in kubelet whose behaviour after reading a request is a function."""

    def __init__(self, behaviour: Callable[[socket.socket, threading.Event], None]) -> None:
        self._behaviour = behaviour
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.bytes_sent = 0
        self.connections = 0
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(5)
            received = b""
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in received:
                    chunk = connection.recv(4096)
                    if not chunk:
                        return
                    received += chunk
                self._behaviour(connection, self._stop)

    def send(self, connection: socket.socket, data: bytes) -> None:
        connection.sendall(data)
        self.bytes_sent += len(data)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._acceptor.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)


@contextlib.contextmanager
def raw_kubelet(
    behaviour: Callable[[RawKubelet, socket.socket, threading.Event], None],
) -> Iterator[RawKubelet]:
    holder: list[RawKubelet] = []
    server = RawKubelet(lambda connection, stop: behaviour(holder[0], connection, stop))
    holder.append(server)
    try:
        yield server
    finally:
        server.close()


def hang_before_headers(
    server: RawKubelet, connection: socket.socket, stop: threading.Event
) -> None:
    stop.wait(10)


def hang_mid_body(server: RawKubelet, connection: socket.socket, stop: threading.Event) -> None:
    server.send(connection, b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{"node":')
    stop.wait(10)


def trickle_body(server: RawKubelet, connection: socket.socket, stop: threading.Event) -> None:
    server.send(connection, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
    while not stop.wait(0.05):
        server.send(connection, b" ")


def reset_after_request(
    server: RawKubelet, connection: socket.socket, stop: threading.Event
) -> None:
    # SO_LINGER with a zero timeout turns close() into a TCP reset.
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def reset_mid_body(server: RawKubelet, connection: socket.socket, stop: threading.Event) -> None:
    server.send(connection, b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
    time.sleep(0.05)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def close_mid_body(server: RawKubelet, connection: socket.socket, stop: threading.Event) -> None:
    server.send(connection, b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{"node": {')


def close_mid_chunked_body(
    server: RawKubelet, connection: socket.socket, stop: threading.Event
) -> None:
    server.send(
        connection, b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{"node": {'
    )


def close_without_answer(
    server: RawKubelet, connection: socket.socket, stop: threading.Event
) -> None:
    return


def garbage_status_line(
    server: RawKubelet, connection: socket.socket, stop: threading.Event
) -> None:
    server.send(connection, b"SSH-2.0-OpenSSH_9.6\r\n\r\n")


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        pytest.param(hang_before_headers, "timeout", id="hangs-before-headers"),
        pytest.param(hang_mid_body, "timeout", id="hangs-mid-body"),
        pytest.param(trickle_body, "timeout", id="trickles-body-forever"),
        pytest.param(reset_after_request, "connection", id="resets-connection"),
        pytest.param(reset_mid_body, "connection", id="resets-mid-body"),
        pytest.param(close_mid_body, "connection", id="closes-mid-body"),
        pytest.param(close_mid_chunked_body, "connection", id="closes-mid-chunked-body"),
        pytest.param(close_without_answer, "connection", id="closes-without-answer"),
        pytest.param(garbage_status_line, "connection", id="not-http"),
    ],
)
def test_faults_end_as_reasons_within_the_timeout(
    behaviour: Callable[[RawKubelet, socket.socket, threading.Event], None], reason: str
) -> None:
    timeout = 0.5
    with raw_kubelet(behaviour) as server:
        client = KubeletClient(server.url, KubeletAuth(), timeout_seconds=timeout)
        started = time.monotonic()
        error = fetch_error(client.fetch_summary)
        elapsed = time.monotonic() - started
    assert error.reason == reason, str(error)
    assert f"127.0.0.1:{server.port}/stats/summary" in str(error)
    assert elapsed < timeout + 0.5, f"took {elapsed:.2f}s with a {timeout}s timeout"


def keep_alive(server: RawKubelet, connection: socket.socket, stop: threading.Event) -> None:
    """Answer every request on the connection until the client closes it."""
    while True:
        server.send(connection, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = connection.recv(4096)
            if not chunk:
                return
            received += chunk


def test_connection_is_reused_across_requests() -> None:
    with raw_kubelet(keep_alive) as server:
        with KubeletClient(server.url, KubeletAuth()) as client:
            bodies = [client.fetch_summary(), client.fetch_pods(), client.fetch_summary()]
        assert bodies == [b"{}"] * 3
        assert server.connections == 1


def test_connection_refused_is_a_connection_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    error = fetch_error(KubeletClient(f"http://127.0.0.1:{port}", KubeletAuth()).fetch_summary)
    assert error.reason == "connection"
    assert "Connection refused" in str(error)


FIFTY_MEGABYTES = 50 * 1024 * 1024


def endless_body(
    status_line: str, extra_header: str
) -> Callable[[RawKubelet, socket.socket, threading.Event], None]:
    def behaviour(server: RawKubelet, connection: socket.socket, stop: threading.Event) -> None:
        head = f"{status_line}\r\n{extra_header}Connection: close\r\n\r\n"
        server.send(connection, head.encode())
        block = b"[" * 65536
        with contextlib.suppress(OSError):
            while server.bytes_sent < FIFTY_MEGABYTES and not stop.is_set():
                server.send(connection, block)

    return behaviour


@pytest.mark.parametrize(
    ("status_line", "extra_header", "reason"),
    [
        pytest.param("HTTP/1.1 200 OK", "", "too_large", id="streamed-without-length"),
        pytest.param(
            "HTTP/1.1 200 OK",
            f"Content-Length: {FIFTY_MEGABYTES}\r\n",
            "too_large",
            id="declared-content-length",
        ),
        pytest.param(
            "HTTP/1.1 302 Found",
            "Location: http://127.0.0.1:1/\r\n",
            "http_status",
            id="redirect-with-huge-body",
        ),
        pytest.param("HTTP/1.1 500 Oops", "", "http_status", id="error-with-huge-body"),
    ],
)
def test_fifty_megabyte_body_is_never_read_whole(
    status_line: str, extra_header: str, reason: str
) -> None:
    limit = 1024 * 1024
    with raw_kubelet(endless_body(status_line, extra_header)) as server:
        client = KubeletClient(server.url, KubeletAuth(), max_body_bytes=limit)
        started = time.monotonic()
        error = fetch_error(client.fetch_summary)
        elapsed = time.monotonic() - started
        time.sleep(0.1)  # let the server notice the closed connection
    assert error.reason == reason
    assert str(limit) in str(error) or reason != "too_large"
    assert elapsed < 2.0
    # Socket buffers hold a few MB at most: far less than the 50 MB on offer was ever read.
    assert server.bytes_sent < FIFTY_MEGABYTES // 2


def test_body_exactly_at_the_limit_is_accepted() -> None:
    body = b"x" * 4096

    def behaviour(server: RawKubelet, connection: socket.socket, stop: threading.Event) -> None:
        server.send(connection, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body)

    with raw_kubelet(behaviour) as server:
        assert KubeletClient(server.url, KubeletAuth(), max_body_bytes=4096).fetch_summary() == body
        error = fetch_error(
            KubeletClient(server.url, KubeletAuth(), max_body_bytes=4095).fetch_pods
        )
    assert error.reason == "too_large"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        pytest.param("10.0.0.1:10250", "https://HOST:PORT", id="no-scheme"),
        pytest.param("ftp://10.0.0.1", "https://HOST:PORT", id="wrong-scheme"),
        pytest.param("https://user:pw@10.0.0.1:10250", "credentials", id="credentials"),
        pytest.param("https://10.0.0.1:10250/?x=1", "query", id="query"),
    ],
)
def test_unusable_base_url_is_a_configuration_error(url: str, problem: str) -> None:
    with pytest.raises(KubeletConfigError, match=problem.replace("?", r"\?")):
        KubeletClient(url, KubeletAuth())


# --- API server proxy -----------------------------------------------------------------------


def write_kubeconfig(path: Path, server: str, ca_file: Path, token: str) -> Path:
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: standin
  cluster:
    server: {server}
    certificate-authority: {ca_file}
users:
- name: exporter
  user:
    token: {token}
contexts:
- name: standin
  context: {{cluster: standin, user: exporter}}
current-context: standin
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def apiserver(pki: Pki) -> Iterator[HTTPServer]:
    with https_server(server_context(pki, "127.0.0.1")) as server:
        server.expect_request(
            "/api/v1/nodes/node-a/proxy/stats/summary",
            headers={"Authorization": "Bearer proxy-token"},
        ).respond_with_data(SUMMARY_BODY, content_type="application/json")
        server.expect_request(
            "/api/v1/nodes/node-a/proxy/pods", headers={"Authorization": "Bearer proxy-token"}
        ).respond_with_data(PODS_BODY, content_type="application/json")
        yield server


def test_apiserver_proxy_client_from_kubeconfig(
    apiserver: HTTPServer, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    kubeconfig = write_kubeconfig(
        tmp_path / "kubeconfig", base_url(apiserver), pki.ca_file, "proxy-token"
    )
    configuration = load_kubernetes_configuration(str(kubeconfig))
    client = apiserver_proxy_client(configuration, "node-a", timeout_seconds=5)
    assert client.base_url == f"{base_url(apiserver)}/api/v1/nodes/node-a/proxy"
    assert client.fetch_summary() == SUMMARY_BODY
    assert client.fetch_pods() == PODS_BODY
    apiserver.check_assertions()
    assert [request.path for request, _ in apiserver.log] == [
        "/api/v1/nodes/node-a/proxy/stats/summary",
        "/api/v1/nodes/node-a/proxy/pods",
    ]
    assert "proxy-token" not in caplog.text


def test_apiserver_proxy_errors_name_the_proxy_and_rbac(
    apiserver: HTTPServer, pki: Pki, tmp_path: Path
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", base_url(apiserver), pki.ca_file, "x")
    auth = auth_from_kubernetes_configuration(load_kubernetes_configuration(str(kubeconfig)))
    apiserver.expect_request("/api/v1/nodes/node-b/proxy/stats/summary").respond_with_data(
        "forbidden", status=403
    )
    error = fetch_error(
        apiserver_proxy_client(
            load_kubernetes_configuration(str(kubeconfig)), "node-b", auth=auth
        ).fetch_summary
    )
    assert error.reason == "unauthorized"
    assert "nodes/proxy" in str(error)
    assert "API server" in str(error)


def test_apiserver_proxy_path_matches_kubectl_get_raw(
    apiserver: HTTPServer, pki: Pki, tmp_path: Path, kubectl_binary: str
) -> None:
    """kubectl, the reference client, reaches the same stand-in path with the same kubeconfig."""
    kubeconfig = write_kubeconfig(
        tmp_path / "kubeconfig", base_url(apiserver), pki.ca_file, "proxy-token"
    )
    completed = subprocess.run(
        [
            kubectl_binary,
            "--kubeconfig",
            str(kubeconfig),
            "get",
            "--raw",
            "/api/v1/nodes/node-a/proxy/stats/summary",
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    client = apiserver_proxy_client(load_kubernetes_configuration(str(kubeconfig)), "node-a")
    assert client.fetch_summary() == completed.stdout == SUMMARY_BODY


def test_unloadable_kubeconfig_is_a_configuration_error(tmp_path: Path) -> None:
    broken = tmp_path / "kubeconfig"
    broken.write_text("apiVersion: v1\nkind: Config\nclusters: []\n", encoding="utf-8")
    with pytest.raises(KubeletConfigError, match="cannot load kubeconfig"):
        load_kubernetes_configuration(str(broken))
