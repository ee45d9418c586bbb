"""Prometheus HTTP API client: instant queries, series, label names and label values.

The shell is :class:`PrometheusClient` (requests); decoding a response is done by the pure
``decode_*`` functions so it can be tested without a server. Providers depend on the small
:class:`PrometheusAPI` protocol, so tests can hand them a fake.

How it talks to Prometheus (docs/promql-safety.md has the reasons):

- ``GET`` with URL parameters, switching to a ``POST`` form body when the encoded parameters
  are longer than ``post_threshold_bytes`` (or always, with ``verb="POST"``).
- Every query carries a positive ``timeout`` parameter equal to the client timeout, so
  Prometheus gives up when we do (prometheus-adapter sends a negative one).
- The bearer token file is re-read when its modification time or size changes (projected
  service-account tokens rotate); tokens are never logged or put in error messages.
- TLS is verified by default (system CAs or ``ca_file``); ``insecure_skip_tls_verify`` must be
  asked for. A client certificate and key may be given; extra headers (``X-Scope-OrgID``) are
  sent on every request.

Exception tree::

    PrometheusError                    any failure talking to Prometheus
    ├── PrometheusConfigError          settings or local files are unusable (URL, token file)
    ├── PrometheusUnavailableError     connection/TLS failure, timeout, HTTP 5xx (incl. 503)
    ├── PrometheusQueryError           HTTP 400/422: Prometheus rejected the query; keeps its
    │                                  ``error_type`` (bad_data, execution, ...) and ``error``
    └── PrometheusResponseError        a response we cannot use: not JSON, unexpected shape,
        │                              unexpected HTTP status (404 from a wrong URL path, 401)
        └── UnexpectedResultTypeError  an instant query returned a matrix or a string
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlencode, urlsplit

import requests

__all__ = [
    "DEFAULT_POST_THRESHOLD_BYTES",
    "PrometheusAPI",
    "PrometheusClient",
    "PrometheusConfigError",
    "PrometheusError",
    "PrometheusQueryError",
    "PrometheusResponseError",
    "PrometheusSettings",
    "PrometheusUnavailableError",
    "QueryResult",
    "Sample",
    "ScalarResult",
    "UnexpectedResultTypeError",
    "VectorResult",
    "decode_label_values_response",
    "decode_query_response",
    "decode_series_response",
    "format_timeout",
    "parse_header_flags",
]

log = logging.getLogger(__name__)

DEFAULT_POST_THRESHOLD_BYTES = 4096
"""Encoded parameters longer than this go in a POST body: URLs beyond a few KiB meet 414s."""


class PrometheusError(Exception):
    """Talking to Prometheus failed. ``str(err)`` is safe to log (never contains a token)."""


class PrometheusConfigError(PrometheusError):
    """The client settings or a file they name cannot be used."""


class PrometheusUnavailableError(PrometheusError):
    """Prometheus could not be reached or answered with a server error; retrying may help."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PrometheusQueryError(PrometheusError):
    """Prometheus rejected the query (HTTP 400/422); its own error type and text are kept."""

    def __init__(self, message: str, status: int, error_type: str, error: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.error = error


class PrometheusResponseError(PrometheusError):
    """Prometheus answered with something this client cannot use."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class UnexpectedResultTypeError(PrometheusResponseError):
    """An instant query returned a result type other than vector or scalar."""

    def __init__(self, message: str, result_type: str) -> None:
        super().__init__(message, 200)
        self.result_type = result_type


# --- settings ----------------------------------------------------------------------------------

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def parse_header_flags(values: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """``--prometheus-header k=v`` flags → header pairs, as prometheus-adapter parses them.

    Each flag is split on its first ``=``; a flag without ``=`` gives an empty value. Repeated
    names (compared case-insensitively) are joined with ``", "`` as HTTP allows. Unlike
    prometheus-adapter, a name that is not an HTTP token or a value holding CR/LF is an error.
    """
    merged: dict[str, tuple[str, list[str]]] = {}
    for flag in values:
        name, _, value = flag.partition("=")
        if not _HEADER_NAME.fullmatch(name):
            raise PrometheusConfigError(
                f"--prometheus-header {flag.partition('=')[0]!r}=...: the header name must be a"
                " non-empty HTTP token (letters, digits, and !#$%&'*+.^_`|~-)"
            )
        if "\r" in value or "\n" in value or "\0" in value:
            raise PrometheusConfigError(
                f"--prometheus-header {name}=...: the value must not contain CR, LF or NUL"
            )
        merged.setdefault(name.lower(), (name, []))[1].append(value)
    return tuple((name, ", ".join(vals)) for name, vals in merged.values())


@dataclass(frozen=True, slots=True)
class PrometheusSettings:
    """How to reach Prometheus. Built from the ``--prometheus-*`` flags by the CLI."""

    url: str
    timeout: float = 30.0
    """Seconds for connect + read, also sent to Prometheus as the query ``timeout``."""
    verb: Literal["GET", "POST"] = "GET"
    post_threshold_bytes: int = DEFAULT_POST_THRESHOLD_BYTES
    bearer_token_file: str | None = None
    ca_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    insecure_skip_tls_verify: bool = False
    headers: tuple[tuple[str, str], ...] = field(default=())

    def problems(self) -> list[str]:
        """Every problem with these settings (empty when usable), to report all at once."""
        found: list[str] = []
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            found.append(
                f"--prometheus-url {self.url!r} must be an http:// or https:// URL with a host"
            )
        if parts.query or parts.fragment:
            found.append(f"--prometheus-url {self.url!r} must not have a query or fragment")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            found.append(f"--prometheus-timeout must be a positive number, got {self.timeout}")
        if self.verb not in ("GET", "POST"):
            found.append(f"--prometheus-verb must be GET or POST, got {self.verb!r}")
        if self.post_threshold_bytes <= 0:
            found.append("the POST threshold must be a positive number of bytes")
        if (self.client_cert_file is None) != (self.client_key_file is None):
            found.append(
                "--prometheus-client-tls-cert-file and --prometheus-client-tls-key-file must be"
                " given together"
            )
        if self.insecure_skip_tls_verify and self.ca_file is not None:
            found.append("--prometheus-ca-file and insecure TLS cannot be used together")
        for flag, path in (
            ("--prometheus-ca-file", self.ca_file),
            ("--prometheus-client-tls-cert-file", self.client_cert_file),
            ("--prometheus-client-tls-key-file", self.client_key_file),
            ("--prometheus-token-file", self.bearer_token_file),
        ):
            if path is not None and not os.path.isfile(path):
                found.append(f"{flag} {path!r} is not a readable file")
        return found


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One element of an instant vector. ``value`` may be NaN or ±Inf."""

    labels: Mapping[str, str]
    value: float
    timestamp: float  # unix seconds


@dataclass(frozen=True, slots=True)
class VectorResult:
    samples: tuple[Sample, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ScalarResult:
    value: float
    timestamp: float
    warnings: tuple[str, ...] = ()


QueryResult = VectorResult | ScalarResult


class PrometheusAPI(Protocol):
    """What providers and discovery need from Prometheus."""

    def query(self, promql: str, at: float | None = None) -> QueryResult: ...

    def series(
        self, matchers: Sequence[str], start: float | None = None, end: float | None = None
    ) -> list[dict[str, str]]: ...

    def label_names(
        self, matchers: Sequence[str] = (), start: float | None = None, end: float | None = None
    ) -> list[str]: ...

    def label_values(
        self,
        label: str,
        matchers: Sequence[str] = (),
        start: float | None = None,
        end: float | None = None,
    ) -> list[str]: ...


# --- pure response decoding --------------------------------------------------------------------


def _snippet(body: bytes) -> str:
    text = body[:200].decode("utf-8", "replace")
    return text + ("..." if len(body) > 200 else "")


def _decode_envelope(status: int, body: bytes, what: str) -> tuple[Any, tuple[str, ...]]:
    """The ``data`` member of a successful API response, or the matching error."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict) and document.get("status") == "error":
        error_type = str(document.get("errorType", ""))
        error = str(document.get("error", ""))
        message = f"{what}: Prometheus returned HTTP {status} {error_type}: {error}"
        if status in (400, 422):
            raise PrometheusQueryError(message, status, error_type, error)
        if status >= 500:
            raise PrometheusUnavailableError(message, status)
        raise PrometheusResponseError(message, status)
    if status >= 500:
        raise PrometheusUnavailableError(
            f"{what}: Prometheus returned HTTP {status}: {_snippet(body)}", status
        )
    if status in (400, 422):
        raise PrometheusQueryError(
            f"{what}: Prometheus returned HTTP {status}: {_snippet(body)}",
            status,
            "",
            _snippet(body),
        )
    if not 200 <= status < 300:
        hint = {
            401: "; check the bearer token or headers",
            403: "; check the bearer token or headers",
            404: "; check the path in --prometheus-url",
            414: "; use --prometheus-verb=POST",
        }.get(status, "")
        raise PrometheusResponseError(
            f"{what}: unexpected HTTP status {status} from Prometheus{hint}", status
        )
    if document is None:
        raise PrometheusResponseError(
            f"{what}: response is not JSON (is --prometheus-url a Prometheus API?):"
            f" {_snippet(body)}",
            status,
        )
    if not isinstance(document, dict) or document.get("status") != "success":
        raise PrometheusResponseError(
            f'{what}: response has no status "success": {_snippet(body)}', status
        )
    warnings = document.get("warnings") or []
    if not isinstance(warnings, list):
        warnings = [warnings]
    return document.get("data"), tuple(str(w) for w in warnings)


def _bad_shape(what: str, detail: str) -> PrometheusResponseError:
    return PrometheusResponseError(f"{what}: unexpected response shape: {detail}", 200)


def _decode_point(point: object, what: str) -> tuple[float, float]:
    if not (isinstance(point, list) and len(point) == 2 and isinstance(point[1], str)):
        raise _bad_shape(what, f'a sample value must be [timestamp, "value"], got {point!r}')
    timestamp, text = point
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        raise _bad_shape(what, f"a sample timestamp must be a number, got {timestamp!r}")
    try:
        # Prometheus writes NaN, +Inf and -Inf, which float() reads.
        return float(timestamp), float(text)
    except ValueError:
        raise _bad_shape(what, f"sample value {text!r} is not a number") from None


def _decode_labels(labels: object, what: str) -> dict[str, str]:
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise _bad_shape(what, f"labels must be an object of strings, got {labels!r}")
    return dict(labels)


def decode_query_response(status: int, body: bytes, what: str = "query") -> QueryResult:
    """Decode an ``/api/v1/query`` response. Vector and scalar results are accepted."""
    data, warnings = _decode_envelope(status, body, what)
    if not isinstance(data, dict):
        raise _bad_shape(what, "data must be an object")
    result_type, result = data.get("resultType"), data.get("result")
    if result_type == "vector":
        if not isinstance(result, list):
            raise _bad_shape(what, "a vector result must be a list")
        samples = []
        for element in result:
            if not isinstance(element, dict):
                raise _bad_shape(what, f"a vector element must be an object, got {element!r}")
            labels = _decode_labels(element.get("metric", {}), what)
            if "value" not in element:
                kind = "native histogram" if "histogram" in element else "value-less"
                raise _bad_shape(what, f"{kind} sample for {labels} is not supported")
            timestamp, value = _decode_point(element["value"], what)
            samples.append(Sample(labels, value, timestamp))
        return VectorResult(tuple(samples), warnings)
    if result_type == "scalar":
        timestamp, value = _decode_point(result, what)
        return ScalarResult(value, timestamp, warnings)
    if result_type in ("matrix", "string"):
        raise UnexpectedResultTypeError(
            f"{what}: the query returned a {result_type}, but only instant vectors and scalars"
            " can be served; remove the range selector or wrap the expression (e.g. rate(...))",
            str(result_type),
        )
    raise _bad_shape(what, f"unknown resultType {result_type!r}")


def decode_series_response(status: int, body: bytes, what: str = "series") -> list[dict[str, str]]:
    """Decode an ``/api/v1/series`` response: one label set per series."""
    data, _ = _decode_envelope(status, body, what)
    if not isinstance(data, list):
        raise _bad_shape(what, "data must be a list of label sets")
    return [_decode_labels(item, what) for item in data]


def decode_label_values_response(status: int, body: bytes, what: str = "label values") -> list[str]:
    """Decode an ``/api/v1/label/<name>/values`` response."""
    data, _ = _decode_envelope(status, body, what)
    if not isinstance(data, list) or not all(isinstance(v, str) for v in data):
        raise _bad_shape(what, "data must be a list of strings")
    return list(data)


def format_timeout(seconds: float) -> str:
    """A Prometheus duration for a positive number of seconds (``30s``, ``2500ms``)."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {seconds}")
    millis = max(1, round(seconds * 1000))
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def _format_time(seconds: float) -> str:
    return f"{seconds:.3f}"


_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


# --- the IO shell ------------------------------------------------------------------------------


class _TokenFile:
    """A bearer token file, re-read when it changes on disk (rotated service-account tokens)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._token = ""

    def token(self) -> str:
        try:
            stat = os.stat(self._path)
            stamp = (stat.st_mtime_ns, stat.st_size)
            with self._lock:
                if stamp != self._stamp:
                    with open(self._path, encoding="utf-8") as handle:
                        self._token = handle.read().strip()
                    self._stamp = stamp
                token = self._token
        except (OSError, UnicodeDecodeError) as err:
            raise PrometheusConfigError(
                f"cannot read bearer token file {self._path!r}: {err.__class__.__name__}"
            ) from None
        if not token:
            raise PrometheusConfigError(f"bearer token file {self._path!r} is empty")
        return token


class PrometheusClient:
    """Blocking client for the Prometheus HTTP API (thread-safe for concurrent requests)."""

    def __init__(self, settings: PrometheusSettings, session: requests.Session | None = None):
        problems = settings.problems()
        if problems:
            raise PrometheusConfigError("; ".join(problems))
        self._settings = settings
        self._base = settings.url.rstrip("/")
        self._token = _TokenFile(settings.bearer_token_file) if settings.bearer_token_file else None
        self._session = session or requests.Session()
        self._session.trust_env = False  # no proxy or .netrc credentials from the environment
        if settings.insecure_skip_tls_verify:
            self._session.verify = False
        elif settings.ca_file is not None:
            self._session.verify = settings.ca_file
        if settings.client_cert_file and settings.client_key_file:
            self._session.cert = (settings.client_cert_file, settings.client_key_file)
        self._session.headers.update(dict(settings.headers))

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def query(self, promql: str, at: float | None = None) -> QueryResult:
        """Run an instant query at ``at`` (unix seconds; Prometheus' now when None)."""
        params: list[tuple[str, str]] = [("query", promql)]
        if at is not None:
            params.append(("time", _format_time(at)))
        params.append(("timeout", format_timeout(self._settings.timeout)))
        status, body = self._call("/api/v1/query", params, "query")
        return decode_query_response(status, body, "query")

    def series(
        self, matchers: Sequence[str], start: float | None = None, end: float | None = None
    ) -> list[dict[str, str]]:
        """Label sets of the series matching any of ``matchers`` (series selectors)."""
        if not matchers:
            raise ValueError("series() needs at least one series selector")
        params = [("match[]", m) for m in matchers]
        params += self._range(start, end)
        status, body = self._call("/api/v1/series", params, "series")
        return decode_series_response(status, body, "series")

    def label_names(
        self, matchers: Sequence[str] = (), start: float | None = None, end: float | None = None
    ) -> list[str]:
        """Label names of the series matching any of ``matchers`` (all series if empty)."""
        params = [("match[]", m) for m in matchers] + self._range(start, end)
        status, body = self._call("/api/v1/labels", params, "label names")
        return decode_label_values_response(status, body, "label names")

    def label_values(
        self,
        label: str,
        matchers: Sequence[str] = (),
        start: float | None = None,
        end: float | None = None,
    ) -> list[str]:
        """Values of ``label`` over the series matching ``matchers`` (all series if empty)."""
        if not _LABEL_NAME.fullmatch(label):
            raise ValueError(f"{label!r} is not a Prometheus label name")
        params = [("match[]", m) for m in matchers]
        params += self._range(start, end)
        what = f"values of label {label}"
        # label_values only reads; Prometheus 2.42 has no POST form for this endpoint.
        status, body = self._call(f"/api/v1/label/{label}/values", params, what, allow_post=False)
        return decode_label_values_response(status, body, what)

    @staticmethod
    def _range(start: float | None, end: float | None) -> list[tuple[str, str]]:
        params = []
        if start is not None:
            params.append(("start", _format_time(start)))
        if end is not None:
            params.append(("end", _format_time(end)))
        return params

    def _call(
        self, path: str, params: list[tuple[str, str]], what: str, allow_post: bool = True
    ) -> tuple[int, bytes]:
        settings = self._settings
        url = self._base + path
        encoded = urlencode(params)
        post = allow_post and (
            settings.verb == "POST" or len(encoded) > settings.post_threshold_bytes
        )
        headers = {}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.token()}"
        method = "POST" if post else "GET"
        try:
            if post:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                response = self._session.post(
                    url, data=encoded, headers=headers, timeout=settings.timeout
                )
            else:
                response = self._session.get(
                    url, params=encoded, headers=headers, timeout=settings.timeout
                )
            body = response.content
        except requests.exceptions.SSLError as err:
            raise PrometheusUnavailableError(
                f"{what}: TLS with {self._base} failed ({_reason(err)}); check"
                " --prometheus-ca-file and the server certificate"
            ) from None
        except requests.exceptions.Timeout:
            raise PrometheusUnavailableError(
                f"{what}: Prometheus at {self._base} did not answer within {settings.timeout}s"
            ) from None
        except requests.exceptions.RequestException as err:
            raise PrometheusUnavailableError(
                f"{what}: cannot reach Prometheus at {self._base}: {_reason(err)}"
            ) from None
        log.debug("%s %s -> %d (%d bytes)", method, url, response.status_code, len(body))
        return response.status_code, body


def _reason(err: BaseException) -> str:
    """The innermost cause's class and text, without request headers."""
    inner: BaseException = err
    for _ in range(8):  # exception chains are short; bound the walk anyway
        cause = inner.__cause__ or inner.__context__
        if cause is None:
            break
        inner = cause
    return f"{inner.__class__.__name__}: {inner}"[:300]
