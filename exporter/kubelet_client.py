"""HTTPS client for one kubelet, directly (``https://NODE:10250``) or through the API server proxy.

This is the IO edge of the exporter: every failure leaves as ``exporter.source.FetchError`` with one
of the reasons documented there (timeout, connection, tls, unauthorized, http_status, too_large),
and a message that says what to fix. The bearer token never appears in a log line or a message.

- ``KubeletAuth`` says how to authenticate and what to trust. Build one per process: it logs the
  ``--kubelet-insecure-tls`` warning when it is created.
- ``KubeletClient`` fetches ``/stats/summary`` and ``/pods`` for one node. It keeps one
  ``requests.Session`` so connections are reused, streams bodies and stops at ``max_body_bytes``,
  and bounds the whole request, body included, by ``timeout_seconds``.
- ``apiserver_proxy_client`` builds the same client for
  ``<apiserver>/api/v1/nodes/<name>/proxy`` from the official ``kubernetes`` client's
  configuration (``load_kubernetes_configuration``: a kubeconfig file, or in-cluster).

Exception tree::

    FetchError (exporter.source)   a kubelet could not be read; ``reason`` is a metric label value
    ValueError
     └── KubeletConfigError        the auth or connection settings are unusable (bad kubeconfig,
                                   not in a cluster, cert without key, ...); raised at start-up
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests
import urllib3

from exporter.source import DEFAULT_MAX_BODY_BYTES, FetchError

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_TIMEOUT_SECONDS = 10.0
# Projected service-account tokens are replaced on disk about every hour; a changed file is picked
# up on the next request, and the file is re-read after this long even if it looks unchanged
# (coarse mtimes on some filesystems), as client-go does.
TOKEN_REREAD_SECONDS = 60.0
_READ_CHUNK_BYTES = 64 * 1024
_ERROR_SNIPPET_BYTES = 1024
_USER_AGENT = "kubemetrics-exporter"
_E = TypeVar("_E", bound=BaseException)


class KubeletConfigError(ValueError):
    """Settings for reaching kubelets that cannot work; reported at start-up, not per scrape."""


@dataclass(frozen=True)
class KubeletAuth:
    """How to authenticate to kubelets and which certificates to trust.

    ``token_file`` is re-read when it changes (projected tokens rotate); ``token_source`` is a
    callable used instead when the token comes from a kubeconfig. Without either, no token is sent.
    ``ca_file`` None means the system trust store. ``insecure_skip_verify`` disables certificate
    verification and logs a WARNING when this object is created.
    """

    token_file: Path | None = None
    token_source: Callable[[], str | None] | None = field(default=None, repr=False, compare=False)
    ca_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    insecure_skip_verify: bool = False

    def __post_init__(self) -> None:
        if self.token_file is not None and self.token_source is not None:
            raise KubeletConfigError("give either a token file or a token source, not both")
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise KubeletConfigError(
                "a kubelet client certificate needs both a certificate file and a key file"
            )
        if self.insecure_skip_verify and self.ca_file is not None:
            raise KubeletConfigError(
                "--kubelet-insecure-tls cannot be combined with --kubelet-ca-file: "
                "either verify against the CA or do not verify at all"
            )
        if self.insecure_skip_verify:
            logger.warning(
                "kubelet TLS certificates are NOT verified (--kubelet-insecure-tls): anyone who "
                "can intercept traffic to the kubelets can read the bearer token; use only for "
                "testing"
            )

    @classmethod
    def from_flags(
        cls,
        *,
        token_file: str | None = None,
        ca_file: str | None = None,
        client_cert_file: str | None = None,
        client_key_file: str | None = None,
        insecure_skip_verify: bool = False,
        service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    ) -> KubeletAuth:
        """Auth from command-line values, with in-cluster defaults for what is not given.

        The service-account token is the default token and its ``ca.crt`` the default CA, each
        only when present (outside a cluster nothing is sent and the system CAs are trusted).
        A file that is given explicitly must exist.
        """
        for label, given in (
            ("--kubelet-token-file", token_file),
            ("--kubelet-ca-file", ca_file),
            ("--kubelet-client-certificate", client_cert_file),
            ("--kubelet-client-key", client_key_file),
        ):
            if given is not None and not Path(given).is_file():
                raise KubeletConfigError(f"{label}: file {given!r} does not exist")
        token_path = Path(token_file) if token_file is not None else None
        if token_path is None and (service_account_dir / "token").is_file():
            token_path = service_account_dir / "token"
        ca_path = Path(ca_file) if ca_file is not None else None
        if (
            ca_path is None
            and not insecure_skip_verify
            and (service_account_dir / "ca.crt").is_file()
        ):
            ca_path = service_account_dir / "ca.crt"
        return cls(
            token_file=token_path,
            ca_file=ca_path,
            client_cert_file=Path(client_cert_file) if client_cert_file is not None else None,
            client_key_file=Path(client_key_file) if client_key_file is not None else None,
            insecure_skip_verify=insecure_skip_verify,
        )


class _TokenFile:
    """The bearer token in a file, re-read when the file changes or grows old."""

    def __init__(self, path: Path, clock: Callable[[], float]) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._signature: tuple[int, int, int, int] | None = None
        self._read_at = 0.0

    def token(self) -> str:
        with self._lock:
            try:
                stat = os.stat(self._path)
                signature = (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
                stale = self._clock() - self._read_at >= TOKEN_REREAD_SECONDS
                if self._token is None or signature != self._signature or stale:
                    token = self._path.read_text(encoding="utf-8").strip()
                    if not token:
                        raise OSError(f"token file {self._path} is empty")
                    self._token, self._signature, self._read_at = token, signature, self._clock()
            except (OSError, UnicodeDecodeError) as err:
                if self._token is None:
                    raise FetchError(
                        "unauthorized", f"cannot read the bearer token file {self._path}: {err}"
                    ) from err
                # Mid-rotation the file can be briefly missing; the old token is still valid.
                logger.warning("keeping the previous bearer token; re-reading failed: %s", err)
            return self._token


def new_kubelet_session() -> requests.Session:
    """A Session for kubelet requests: no proxies, .netrc or CA bundles from the environment.

    A .netrc entry would silently replace the bearer token, and HTTPS_PROXY usually points at an
    egress proxy that cannot reach node IPs; the API-server mode passes its own proxy explicitly.
    """
    session = requests.Session()
    session.trust_env = False
    return session


class KubeletClient:
    """Fetches raw bodies from one kubelet (``exporter.source.SummarySource`` plus ``/pods``)."""

    def __init__(
        self,
        base_url: str,
        auth: KubeletAuth,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        session: requests.Session | None = None,
        proxy_url: str | None = None,
        via_apiserver: bool = False,
        token_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise KubeletConfigError(f"kubelet URL {base_url!r} must look like https://HOST:PORT")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise KubeletConfigError(
                f"kubelet URL {base_url!r} must not carry a query, fragment or credentials"
            )
        if timeout_seconds <= 0:
            raise KubeletConfigError(f"timeout must be positive, got {timeout_seconds}")
        if max_body_bytes <= 0:
            raise KubeletConfigError(f"maximum body size must be positive, got {max_body_bytes}")
        self.base_url = base_url.rstrip("/")
        self._auth = auth
        self._timeout = timeout_seconds
        self._max_body_bytes = max_body_bytes
        self._session = session if session is not None else new_kubelet_session()
        self._proxies = {"http": proxy_url, "https": proxy_url} if proxy_url else {}
        self._via_apiserver = via_apiserver
        self._token_file = _TokenFile(auth.token_file, token_clock) if auth.token_file else None
        self._verify: bool | str = (
            False if auth.insecure_skip_verify else (str(auth.ca_file) if auth.ca_file else True)
        )
        self._cert = (
            (str(auth.client_cert_file), str(auth.client_key_file))
            if auth.client_cert_file and auth.client_key_file
            else None
        )
        if auth.insecure_skip_verify:
            # The user asked for this and KubeletAuth already warned once; urllib3 would repeat
            # the warning on every request to every node.
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)

    def fetch_summary(self) -> bytes:
        return self.get("/stats/summary")

    def fetch_pods(self) -> bytes:
        return self.get("/pods")

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> KubeletClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get(self, path: str) -> bytes:
        """The body of ``GET base_url + path``, or FetchError."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        url = self.base_url + path
        token = self._bearer_token()
        headers = {"Accept": "application/json", "User-Agent": _USER_AGENT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        deadline = time.monotonic() + self._timeout
        try:
            response = self._session.get(
                url,
                headers=headers,
                stream=True,
                timeout=(self._timeout, self._timeout),
                verify=self._verify,
                cert=self._cert,
                proxies=self._proxies,
                allow_redirects=False,
                hooks={"response": _hide_redirect_target},
            )
        except requests.exceptions.SSLError as err:
            raise FetchError("tls", self._tls_message(url, err)) from err
        except requests.exceptions.Timeout as err:
            raise FetchError(
                "timeout", f"{self._peer()} at {url} did not answer within {self._timeout:g}s"
            ) from err
        except requests.exceptions.RequestException as err:
            raise FetchError(
                "connection", f"cannot connect to {self._peer()} at {url}: {_cause(err)}"
            ) from err
        with response:
            if response.status_code != 200:
                raise self._status_error(url, response, token, deadline)
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self._max_body_bytes:
                raise FetchError("too_large", self._too_large_message(url, int(declared)))
            return self._read_body(url, response, deadline)

    def _bearer_token(self) -> str | None:
        if self._token_file is not None:
            return self._token_file.token()
        if self._auth.token_source is not None:
            return self._auth.token_source()
        return None

    def _read_body(self, url: str, response: requests.Response, deadline: float) -> bytes:
        body = bytearray()
        raw: urllib3.BaseHTTPResponse = response.raw
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchError(
                    "timeout",
                    f"{self._peer()} at {url} did not send its whole body within "
                    f"{self._timeout:g}s ({len(body)} bytes received)",
                )
            # The socket timeout is per recv(); shrinking it to what is left of the deadline
            # bounds the whole request by timeout_seconds even when the kubelet stalls mid-body.
            _set_socket_timeout(raw, remaining)
            try:
                # read1 returns as soon as some bytes arrive, so the deadline is checked even when
                # a kubelet trickles its body; decoding is bounded by the chunk size.
                chunk = raw.read1(_READ_CHUNK_BYTES, decode_content=True)
            except urllib3.exceptions.ReadTimeoutError as err:
                raise FetchError(
                    "timeout",
                    f"{self._peer()} at {url} did not send its whole body within "
                    f"{self._timeout:g}s ({len(body)} bytes received)",
                ) from err
            except (urllib3.exceptions.HTTPError, OSError) as err:
                raise FetchError(
                    "connection",
                    f"connection to {self._peer()} at {url} broke after {len(body)} bytes of the "
                    f"body: {_cause(err)}",
                ) from err
            if not chunk:
                return bytes(body)
            if len(body) + len(chunk) > self._max_body_bytes:
                raise FetchError("too_large", self._too_large_message(url, None))
            body += chunk

    def _status_error(
        self, url: str, response: requests.Response, token: str | None, deadline: float
    ) -> FetchError:
        status = response.status_code
        said = _snippet(response, token, min(deadline, time.monotonic() + 1.0))
        said_part = f": {said!r}" if said else ""
        head = f"{self._peer()} at {url} answered HTTP {status} {response.reason}{said_part}"
        if status == 401:
            if token is None:
                hint = (
                    "no bearer token was sent; give --kubelet-token-file or run in-cluster with "
                    "a service-account token"
                )
            else:
                hint = "the bearer token was rejected (expired, or from another cluster?)"
            return FetchError("unauthorized", f"{head}; {hint}")
        if status == 403:
            if self._via_apiserver:
                hint = "the identity in the kubeconfig needs RBAC 'get' on 'nodes/proxy'"
            else:
                hint = (
                    "the service account needs RBAC 'get' on 'nodes/stats' (for /stats/summary) "
                    "and 'nodes/proxy' (for /pods)"
                )
            return FetchError("unauthorized", f"{head}; {hint}")
        return FetchError("http_status", head)

    def _too_large_message(self, url: str, declared: int | None) -> str:
        size = f"declares {declared} bytes" if declared is not None else "is larger"
        return (
            f"response from {self._peer()} at {url} {size}, over the limit of "
            f"{self._max_body_bytes} bytes; the rest was not read"
        )

    def _peer(self) -> str:
        return "the API server's node proxy" if self._via_apiserver else "kubelet"

    def _tls_message(self, url: str, err: BaseException) -> str:
        verification = _find_cause(err, ssl.SSLCertVerificationError)
        detail = (
            str(verification.verify_message)
            if verification is not None and verification.verify_message
            else _cause(err)
        ).rstrip(".")
        host = urlsplit(url).hostname
        lowered = detail.lower()
        if self._via_apiserver:
            hint = (
                "check certificate-authority / insecure-skip-tls-verify for this cluster in the "
                "kubeconfig"
            )
        elif "mismatch" in lowered or "not valid for" in lowered:
            hint = (
                f"the kubelet's serving certificate is not issued for {host!r} (typically it has "
                "no IP SAN): use --kubelet-preferred-address-types=Hostname so the name in the "
                "certificate is used, or have kubelet serving certificates signed for the node "
                "addresses (serverTLSBootstrap), or, for testing only, --kubelet-insecure-tls"
            )
        elif "certificate required" in lowered or "bad certificate" in lowered:
            hint = (
                "the kubelet rejected or required a client certificate: check "
                "--kubelet-client-certificate and --kubelet-client-key"
            )
        elif "expired" in lowered:
            hint = "the kubelet's serving certificate has expired; renew it on the node"
        else:
            trusted = f"the CA in {self._auth.ca_file}" if self._auth.ca_file else "the system CAs"
            hint = (
                f"the kubelet's serving certificate is not signed by {trusted} (self-signed "
                "kubelet certificates are the default): pass the CA that signs them with "
                "--kubelet-ca-file, or, for testing only, --kubelet-insecure-tls"
            )
        return f"TLS with {self._peer()} at {url} failed: {detail}; {hint}"


def load_kubernetes_configuration(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """A ``kubernetes.client.Configuration`` from a kubeconfig file, or in-cluster if None."""
    from kubernetes import client as kubernetes_client  # noqa: PLC0415 - heavy, only this mode
    from kubernetes import config as kubernetes_config  # noqa: PLC0415

    configuration = kubernetes_client.Configuration()
    try:
        if kubeconfig is not None:
            kubernetes_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        else:
            kubernetes_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
    except (kubernetes_config.ConfigException, OSError, ValueError) as err:
        source = f"kubeconfig {kubeconfig!r}" if kubeconfig is not None else "in-cluster config"
        raise KubeletConfigError(f"cannot load {source}: {err}") from err
    return configuration


def auth_from_kubernetes_configuration(configuration: Any) -> KubeletAuth:
    """KubeletAuth carrying the credentials and trust of a ``kubernetes.client.Configuration``."""
    if getattr(configuration, "tls_server_name", None):
        logger.warning(
            "the kubeconfig's tls-server-name is not supported; the API server certificate is "
            "checked against the host in its URL"
        )

    def token_source() -> str | None:
        # auth_settings() runs the kubernetes client's refresh hook (in-cluster token re-read,
        # exec plugins), so a rotated token is used without restarting.
        setting = configuration.auth_settings().get("BearerToken")
        if not setting or not setting.get("value"):
            return None
        value = str(setting["value"])
        return value[len("bearer ") :] if value.lower().startswith("bearer ") else value

    insecure = not configuration.verify_ssl
    return KubeletAuth(
        token_source=token_source,
        ca_file=Path(configuration.ssl_ca_cert)
        if configuration.ssl_ca_cert and not insecure
        else None,
        client_cert_file=Path(configuration.cert_file) if configuration.cert_file else None,
        client_key_file=Path(configuration.key_file) if configuration.key_file else None,
        insecure_skip_verify=insecure,
    )


def apiserver_proxy_client(
    configuration: Any,
    node_name: str,
    *,
    auth: KubeletAuth | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    session: requests.Session | None = None,
) -> KubeletClient:
    """A client for ``<apiserver>/api/v1/nodes/<node_name>/proxy``.

    Pass ``auth`` (from ``auth_from_kubernetes_configuration``) to share one across many nodes.
    """
    if not node_name:
        raise KubeletConfigError("a node name is needed for the API server proxy")
    host = str(configuration.host).rstrip("/")
    return KubeletClient(
        f"{host}/api/v1/nodes/{quote(node_name, safe='')}/proxy",
        auth if auth is not None else auth_from_kubernetes_configuration(configuration),
        timeout_seconds=timeout_seconds,
        max_body_bytes=max_body_bytes,
        session=session,
        proxy_url=configuration.proxy or None,
        via_apiserver=True,
    )


def _find_cause(err: BaseException, kind: type[_E]) -> _E | None:
    """The first exception of ``kind`` in the chain requests and urllib3 wrap around errors."""
    seen: set[int] = set()
    pending: list[BaseException] = [err]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return current
        linked = [getattr(current, "reason", None), current.__cause__, current.__context__]
        linked += list(current.args)
        pending += [item for item in linked if isinstance(item, BaseException)]
    return None


def _hide_redirect_target(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """Keep requests from reading a redirect's whole body, which it does even when not following.

    Kubelets never redirect, so a 3xx is an error anyway; without a Location header requests no
    longer treats it as a redirect and the body stays unread (and bounded by our own reads).
    """
    if response.is_redirect:
        del response.headers["Location"]


def _set_socket_timeout(raw: Any, seconds: float) -> None:
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def _cause(err: BaseException) -> str:
    """A short reason ("Connection refused") instead of requests' multi-line wrapper text."""
    text = str(err)
    match = _ERRNO_TEXT.search(text)
    if match:
        return match.group(1).strip()
    root = err
    while True:
        inner = getattr(root, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((arg for arg in root.args if isinstance(arg, BaseException)), None)
        if inner is None:
            break
        root = inner
    short = str(root) or type(root).__name__
    match = _ERRNO_TEXT.search(short)
    if match:
        return match.group(1).strip()
    return short if len(short) <= 300 else short[:297] + "..."


def _snippet(
    response: requests.Response,
    token: str | None,
    deadline: float,
) -> str:
    """The start of an error body (the kubelet explains 401/403 there), with any token removed."""
    collected = b""
    try:
        while len(collected) < _ERROR_SNIPPET_BYTES and time.monotonic() < deadline:
            _set_socket_timeout(response.raw, deadline - time.monotonic())
            chunk = response.raw.read1(_ERROR_SNIPPET_BYTES - len(collected), decode_content=True)
            if not chunk:
                break
            collected += chunk
    except (urllib3.exceptions.HTTPError, OSError):
        pass
    text = " ".join(collected.decode("utf-8", errors="replace").split())
    if token:
        text = text.replace(token, "<redacted>")
    return text if len(text) <= 200 else text[:197] + "..."


def describe_auth(auth: KubeletAuth) -> Mapping[str, str]:
    """What the auth uses, for a start-up log line; never the token itself."""
    if auth.token_file is not None:
        credential = f"file {auth.token_file}"
    elif auth.token_source is not None:
        credential = "kubeconfig"
    else:
        credential = "none"
    return {
        "bearer_token": credential,
        "ca": "not verified" if auth.insecure_skip_verify else str(auth.ca_file or "system CAs"),
        "client_certificate": str(auth.client_cert_file or "none"),
    }
