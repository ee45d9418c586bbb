"""Where kubelet bytes come from.

A source fetches the raw body of a kubelet endpoint (``/stats/summary``, ``/pods``). Sources do
IO and nothing else: parsing lives in ``exporter.parse``.

Exception tree::

    FetchError                 a kubelet could not be read; ``reason`` is a short label value
                               used in kubestats_exporter_scrape_errors_total{reason=...}

Reasons (stable label values, documented in the README):
    timeout        connect or read took longer than the timeout
    connection     refused, reset, DNS failure, closed mid-body
    tls            certificate verification or handshake failed
    unauthorized   HTTP 401 or 403
    http_status    any other non-2xx status
    too_large      body exceeded the configured maximum size
    invalid_json   body is not JSON (set by the parse step)
    invalid_data   JSON whose structure does not match the kubelet's types (parse step)
    file           a file:// source could not be read

Sources here: ``FileSource`` (a saved payload, for tests and demos) and ``URLSource`` (a plain
http(s) URL, no credentials; TLS is verified against the system CAs). The kubelet client with
service-account tokens and the kubelet CA lives in ``exporter.kubelet_client``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import requests
import urllib3.exceptions

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024


class FetchError(Exception):
    """A kubelet endpoint could not be read. ``str(err)`` is a human message (never a token)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SummarySource(Protocol):
    """Something that returns the raw bytes of one kubelet's ``/stats/summary``."""

    def fetch_summary(self) -> bytes: ...


class FileSource:
    """Reads a saved ``/stats/summary`` body from a file on every fetch."""

    def __init__(self, path: Path, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.path = path
        self.max_body_bytes = max_body_bytes

    def __repr__(self) -> str:
        return f"FileSource({str(self.path)!r})"

    def fetch_summary(self) -> bytes:
        try:
            with self.path.open("rb") as file:
                body = file.read(self.max_body_bytes + 1)
        except OSError as err:
            raise FetchError("file", f"cannot read {self.path}: {err.strerror or err}") from err
        if len(body) > self.max_body_bytes:
            raise FetchError("too_large", f"{self.path} is larger than {self.max_body_bytes} bytes")
        return body


class URLSource:
    """GETs a plain http(s) URL. The whole request, body included, is bounded by ``timeout``
    seconds, and the body by ``max_body_bytes``; a slow or endless kubelet cannot hold a scrape."""

    def __init__(
        self,
        url: str,
        timeout_seconds: float,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.timeout_seconds = timeout_seconds
        self.max_body_bytes = max_body_bytes
        self._session = session if session is not None else requests.Session()
        self._clock = clock

    def __repr__(self) -> str:
        return f"URLSource({self.url!r})"

    def fetch_summary(self) -> bytes:
        deadline = self._clock() + self.timeout_seconds
        try:
            with self._session.get(
                self.url,
                timeout=self.timeout_seconds,
                stream=True,
                headers={"Accept": "application/json"},
            ) as response:
                _check_status(response, self.url)
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > self.max_body_bytes:
                    raise self._too_large()
                return self._read_body(response, deadline)
        except requests.exceptions.SSLError as err:
            raise FetchError("tls", f"TLS with {self.url} failed: {err}") from err
        except requests.exceptions.Timeout as err:
            raise self._timed_out() from err
        except requests.exceptions.ConnectionError as err:
            if _caused_by_timeout(err):
                raise self._timed_out() from err
            raise FetchError("connection", f"cannot connect to {self.url}: {err}") from err
        except requests.exceptions.RequestException as err:
            raise FetchError("connection", f"request to {self.url} failed: {err}") from err

    def _read_body(self, response: requests.Response, deadline: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(_CHUNK_BYTES):
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large()
            if self._clock() > deadline:
                raise self._timed_out()
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> FetchError:
        return FetchError("too_large", f"{self.url} sent more than {self.max_body_bytes} bytes")

    def _timed_out(self) -> FetchError:
        return FetchError("timeout", f"{self.url} did not answer within {self.timeout_seconds}s")


def _check_status(response: requests.Response, url: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if status in (401, 403):
        raise FetchError("unauthorized", f"{url} answered HTTP {status} {response.reason}")
    raise FetchError("http_status", f"{url} answered HTTP {status} {response.reason}")


def _caused_by_timeout(err: BaseException) -> bool:
    """requests reports a read timeout during a streamed body as a ConnectionError."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        # NewConnectionError (refused, unreachable) subclasses urllib3's ConnectTimeoutError,
        # so only a read timeout or the socket's own TimeoutError count.
        if isinstance(current, urllib3.exceptions.ReadTimeoutError | TimeoutError):
            return True
        nested = [arg for arg in current.args if isinstance(arg, BaseException)]
        current = nested[0] if nested else current.__cause__ or current.__context__
    return False
