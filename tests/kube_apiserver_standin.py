"""A loopback HTTPS stand-in for the parts of kube-apiserver the adapter's security layer uses.

Serves, with kube-apiserver's wire format (status codes, ``kind``/``apiVersion``, the request
``spec`` echoed back, Status bodies on errors):

- ``POST /apis/authentication.k8s.io/v1/tokenreviews``       (201, TokenReview)
- ``POST /apis/authorization.k8s.io/v1/subjectaccessreviews`` (201, SubjectAccessReview)
- ``GET  /api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication``

Callers must present the stand-in's own service-account bearer token, like the adapter's pod
would. Every received review body is recorded so tests can assert exact attributes and count
calls (the bodies hold tokens; they stay in test memory and are never logged). Reusable by
end-to-end tests: build one, ``start()`` it (or use it as a context manager) and point a
kubeconfig or ``api_client()`` at it.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme
import yaml
from kubernetes import client as kube_client

TOKEN_REVIEWS_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
SUBJECT_ACCESS_REVIEWS_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
AUTH_CONFIGMAP_PATH = "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"

# kube-apiserver's audience for service-account tokens in most clusters.
DEFAULT_AUDIENCES = ("https://kubernetes.default.svc.cluster.local",)

AccessPolicy = Callable[[Mapping[str, Any]], tuple[bool, str]]


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def deny_all(_spec: Mapping[str, Any]) -> tuple[bool, str]:
    return False, ""


@dataclass
class StandinState:
    """What the stand-in answers and what it has seen. Mutate under ``lock`` while serving."""

    service_account_token: str
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    access_policy: AccessPolicy = deny_all
    configmap_data: dict[str, str] | None = None
    fail_reviews_with: int | None = None
    token_reviews: list[dict[str, Any]] = field(default_factory=list)
    subject_access_reviews: list[dict[str, Any]] = field(default_factory=list)
    configmap_reads: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _StandinHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        # Silence per-request logging: the base class writes to stderr.
        return

    def _send(self, code: int, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        expected = f"Bearer {self.server.state.service_account_token}"
        if self.headers.get("Authorization") == expected:
            return True
        self._send(401, status_body(401, "Unauthorized", "Unauthorized"))
        return False

    def _read_json(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        content_type = self.headers.get("Content-Type", "")
        # kube-apiserver decodes a body without Content-Type as its first media type, JSON.
        if content_type and not content_type.startswith("application/json"):
            self._send(
                415,
                status_body(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - "
                    "accepted media types include: application/json",
                ),
            )
            return None
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as err:
            self._send(400, status_body(400, "BadRequest", f"error decoding request: {err}"))
            return None
        return body if isinstance(body, dict) else None

    def do_GET(self) -> None:
        if not self._authorized():
            return
        state = self.server.state
        if self.path.split("?")[0] != AUTH_CONFIGMAP_PATH:
            self._send(
                404,
                status_body(404, "NotFound", "the server could not find the requested resource"),
            )
            return
        with state.lock:
            state.configmap_reads += 1
            data = None if state.configmap_data is None else dict(state.configmap_data)
        if data is None:
            self._send(
                404,
                status_body(
                    404,
                    "NotFound",
                    'configmaps "extension-apiserver-authentication" not found',
                    {"name": "extension-apiserver-authentication", "kind": "configmaps"},
                ),
            )
            return
        self._send(
            200,
            {
                "kind": "ConfigMap",
                "apiVersion": "v1",
                "metadata": {
                    "name": "extension-apiserver-authentication",
                    "namespace": "kube-system",
                    "uid": "5f0c7a4e-7d37-4a0a-9a51-2f7f0f1c1e01",
                    "resourceVersion": "42",
                    "creationTimestamp": "2024-05-01T12:00:00Z",
                },
                "data": data,
            },
        )

    def do_POST(self) -> None:
        if not self._authorized():
            return
        path = self.path.split("?")[0]
        state = self.server.state
        if path not in (TOKEN_REVIEWS_PATH, SUBJECT_ACCESS_REVIEWS_PATH):
            self._send(
                404,
                status_body(404, "NotFound", "the server could not find the requested resource"),
            )
            return
        body = self._read_json()
        if body is None:
            return
        if state.fail_reviews_with is not None:
            code = state.fail_reviews_with
            self._send(
                code,
                status_body(
                    code, "InternalError", "Internal error occurred: stand-in told to fail"
                ),
            )
            return
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        if path == TOKEN_REVIEWS_PATH:
            self._token_review(body, spec)
        else:
            self._subject_access_review(body, spec)

    def _token_review(self, body: dict[str, Any], spec: dict[str, Any]) -> None:
        state = self.server.state
        if (
            body.get("apiVersion") != "authentication.k8s.io/v1"
            or body.get("kind") != "TokenReview"
        ):
            self._send(
                400, status_body(400, "BadRequest", "wrong apiVersion/kind for tokenreviews")
            )
            return
        with state.lock:
            state.token_reviews.append(body)
            user = state.tokens.get(str(spec.get("token", "")))
        if user is None:
            status: dict[str, Any] = {
                "user": {},
                "error": "[invalid bearer token, token lookup failed]",
            }
        else:
            status = {"authenticated": True, "user": user, "audiences": list(DEFAULT_AUDIENCES)}
        self._send(
            201,
            {
                "kind": "TokenReview",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": None},
                "spec": spec,
                "status": status,
            },
        )

    def _subject_access_review(self, body: dict[str, Any], spec: dict[str, Any]) -> None:
        state = self.server.state
        if (
            body.get("apiVersion") != "authorization.k8s.io/v1"
            or body.get("kind") != "SubjectAccessReview"
        ):
            self._send(
                400,
                status_body(400, "BadRequest", "wrong apiVersion/kind for subjectaccessreviews"),
            )
            return
        with state.lock:
            state.subject_access_reviews.append(body)
            policy = state.access_policy
        allowed, reason = policy(spec)
        status: dict[str, Any] = {"allowed": allowed}
        if reason:
            status["reason"] = reason
        self._send(
            201,
            {
                "kind": "SubjectAccessReview",
                "apiVersion": "authorization.k8s.io/v1",
                "metadata": {"creationTimestamp": None},
                "spec": spec,
                "status": status,
            },
        )


class _StandinHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: StandinState, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state
        self.socket = context.wrap_socket(self.socket, server_side=True)


class KubeApiserverStandin:
    """The stand-in server; ``state`` holds its answers and its call log."""

    def __init__(self, ca: trustme.CA, state: StandinState) -> None:
        self.ca = ca
        self.state = state
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        self._server = _StandinHTTPServer(state, context)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"https://{host}:{port}"

    def start(self) -> KubeApiserverStandin:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> KubeApiserverStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def api_client(self, ca_file: Path) -> kube_client.ApiClient:
        """A real client configured as in-cluster code would be: verified TLS and a token."""
        configuration = kube_client.Configuration(host=self.url)
        configuration.ssl_ca_cert = str(ca_file)
        configuration.api_key = {"authorization": f"Bearer {self.state.service_account_token}"}
        return kube_client.ApiClient(configuration)

    def write_kubeconfig(self, path: Path) -> Path:
        ca_data = base64.b64encode(self.ca.cert_pem.bytes()).decode()
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "standin",
                    "cluster": {"server": self.url, "certificate-authority-data": ca_data},
                }
            ],
            "users": [{"name": "adapter", "user": {"token": self.state.service_account_token}}],
            "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "adapter"}}],
            "current-context": "standin",
        }
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        return path

    def reviews_for_token(self, token: str) -> int:
        with self.state.lock:
            return sum(
                1 for body in self.state.token_reviews if body.get("spec", {}).get("token") == token
            )

    def access_reviews_for_user(self, user: str) -> list[dict[str, Any]]:
        with self.state.lock:
            return [
                body
                for body in self.state.subject_access_reviews
                if body.get("spec", {}).get("user") == user
            ]
