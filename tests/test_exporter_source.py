"""Sources: the error reasons a kubelet read can end with (real servers on 127.0.0.1)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from pytest_httpserver import HTTPServer

from exporter.source import FetchError, FileSource, URLSource


@pytest.fixture
def tls_kubelet() -> Iterator[HTTPServer]:
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def test_untrusted_certificate_is_a_tls_error(tls_kubelet: HTTPServer) -> None:
    tls_kubelet.expect_request("/stats/summary").respond_with_json({"node": {}})
    source = URLSource(tls_kubelet.url_for("/stats/summary"), 5.0)
    with pytest.raises(FetchError) as caught:
        source.fetch_summary()
    assert caught.value.reason == "tls"
    assert "127.0.0.1" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "reason"),
    [(401, "unauthorized"), (403, "unauthorized"), (404, "http_status"), (503, "http_status")],
    ids=["401", "403", "404", "503"],
)
def test_status_codes(httpserver: HTTPServer, status: int, reason: str) -> None:
    httpserver.expect_request("/stats/summary").respond_with_data("no", status=status)
    with pytest.raises(FetchError) as caught:
        URLSource(httpserver.url_for("/stats/summary"), 5.0).fetch_summary()
    assert caught.value.reason == reason
    assert f"HTTP {status}" in str(caught.value)


def test_body_is_returned_unchanged(httpserver: HTTPServer) -> None:
    body = b'{"node": {"nodeName": "n1"}}'
    httpserver.expect_request("/stats/summary").respond_with_data(body)
    assert URLSource(httpserver.url_for("/stats/summary"), 5.0).fetch_summary() == body


@pytest.mark.parametrize(("size", "fails"), [(100, False), (101, True)], ids=["at-limit", "over"])
def test_body_size_limit(httpserver: HTTPServer, size: int, fails: bool) -> None:
    httpserver.expect_request("/stats/summary").respond_with_data(b"x" * size)
    source = URLSource(httpserver.url_for("/stats/summary"), 5.0, max_body_bytes=100)
    if fails:
        with pytest.raises(FetchError) as caught:
            source.fetch_summary()
        assert caught.value.reason == "too_large"
    else:
        assert len(source.fetch_summary()) == size


@pytest.mark.parametrize(("size", "fails"), [(10, False), (11, True)], ids=["at-limit", "over"])
def test_file_source(tmp_path: Path, size: int, fails: bool) -> None:
    path = tmp_path / "summary.json"
    path.write_bytes(b"y" * size)
    source = FileSource(path, max_body_bytes=10)
    if fails:
        with pytest.raises(FetchError) as caught:
            source.fetch_summary()
        assert caught.value.reason == "too_large"
    else:
        assert source.fetch_summary() == b"y" * size


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(FetchError) as caught:
        FileSource(tmp_path).fetch_summary()  # a directory
    assert caught.value.reason == "file"
    assert str(tmp_path) in str(caught.value)
