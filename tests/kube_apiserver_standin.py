"""A loopback HTTPS stand-in for the parts of kube-apiserver the adapter's security layer uses.

Serves, with kube-apiserver's wire format (status codes, ``kind``/``apiVersion``, the request
``spec`` echoed back, Status bodies on errors):

- ``POST /apis/authentication.k8s.io/v1/tokenreviews``       (201, TokenReview)
- ``POST /apis/authorization.k8s.io/v1/subjectaccessreviews`` (201, SubjectAccessReview)
- ``GET  /api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication``
- lists and watches (``?watch=true`` with ``resourceVersion``, chunked, ERROR 410 when the
  history is compacted) of the objects put with ``put()`` (pods, nodes, namespaces, any group),
  and discovery (``/api``, ``/api/v1``, ``/apis``, ``/apis/G/V``) from ``StandinState.discovery``;
- like kube-aggregator, when ``StandinState.proxy`` is set: requests under the metrics API
  groups are forwarded to the adapter over TLS with the front-proxy client certificate and the
  caller's identity in ``X-Remote-User`` / ``X-Remote-Group`` (one line per group), the query
  re-encoded with sorted keys.

``drop_watches()`` closes every open watch abruptly; ``compact()`` forgets the event history.

Callers must present the stand-in's own service-account bearer token, like the adapter's pod
would. Every received review body is recorded so tests can assert exact attributes and count
calls (the bodies hold tokens; they stay in test memory and are never logged). Reusable by
end-to-end tests: build one, ``start()`` it (or use it as a context manager) and point a
kubeconfig or ``api_client()`` at it.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import trustme
import yaml
from kubernetes import client as kube_client

from adapter.selectors import parse_label_selector
from simcluster.apiserver import AggregatorProxy, FrontProxyIdentity, User, status_body

TOKEN_REVIEWS_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
SUBJECT_ACCESS_REVIEWS_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
AUTH_CONFIGMAP_PATH = "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"

# kube-apiserver's audience for service-account tokens in most clusters.
DEFAULT_AUDIENCES = ("https://kubernetes.default.svc.cluster.local",)

AccessPolicy = Callable[[Mapping[str, Any]], tuple[bool, str]]


def deny_all(_spec: Mapping[str, Any]) -> tuple[bool, str]:
    return False, ""


def _resource(name: str, kind: str, namespaced: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "singularName": kind.lower(),
        "namespaced": namespaced,
        "kind": kind,
        "verbs": ["get", "list", "watch"],
    }


def default_discovery() -> dict[str, list[dict[str, Any]]]:
    """groupVersion → APIResource entries, as a small cluster has them."""
    return {
        "v1": [
            _resource("pods", "Pod"),
            {**_resource("pods/log", "Pod"), "verbs": ["get"]},
            _resource("services", "Service"),
            _resource("namespaces", "Namespace", namespaced=False),
            _resource("nodes", "Node", namespaced=False),
        ],
        "apps/v1": [_resource("deployments", "Deployment")],
    }


METRICS_GROUPS = ("metrics.k8s.io", "custom.metrics.k8s.io", "external.metrics.k8s.io")
AGGREGATED_VERSIONS = {
    "metrics.k8s.io": ("v1beta1",),
    "custom.metrics.k8s.io": ("v1beta2", "v1beta1"),
    "external.metrics.k8s.io": ("v1beta1",),
}


@dataclass(frozen=True)
class ProxyTarget:
    """Where and how the stand-in forwards metrics API requests (as kube-aggregator)."""

    url: str  # https://127.0.0.1:PORT
    ca_file: Path  # verifies the adapter's serving certificate
    client_cert_file: Path  # front-proxy client certificate and key (PEM)


@dataclass(frozen=True)
class _Event:
    resource_version: int
    collection: str
    type: str
    obj: dict[str, Any]


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
    # Objects by collection ("pods", "nodes", "deployments.apps") and (namespace, name).
    objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    discovery: dict[str, list[dict[str, Any]]] = field(default_factory=default_discovery)
    proxy: ProxyTarget | None = None
    resource_version: int = 100
    history: list[_Event] = field(default_factory=list)
    history_floor: int = 0
    watch_generation: int = 0
    list_calls: dict[str, int] = field(default_factory=dict)
    watch_calls: dict[str, int] = field(default_factory=dict)
    proxied: list[tuple[str, str]] = field(default_factory=list)  # (path, X-Remote-User)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)


def _collection_of(path: str) -> tuple[str, str | None, str | None] | None:
    """(collection, namespace, name) of a core or group object path, or None."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 2:
        return None
    collection = f"{rest[0]}.{group}" if group else rest[0]
    return collection, namespace, rest[1] if len(rest) == 2 else None


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

    def _caller(self) -> dict[str, Any] | None:
        """The user behind the bearer token: the adapter's service account or a known user."""
        state = self.server.state
        header = self.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        if token == state.service_account_token:
            return {"username": "system:serviceaccount:kube-system:kubemetrics-adapter"}
        with state.lock:
            return state.tokens.get(token or "")

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
        caller = self._caller()
        if caller is None:
            self._send(401, status_body(401, "Unauthorized", "Unauthorized"))
            return
        state = self.server.state
        path, _, query = self.path.partition("?")
        segments = path.strip("/").split("/")
        if segments[:1] == ["apis"] and len(segments) >= 2 and segments[1] in METRICS_GROUPS:
            if state.proxy is None:
                self._send(503, status_body(503, "ServiceUnavailable", "service unavailable"))
            else:
                self._proxy(caller, path, query)
            return
        if path != AUTH_CONFIGMAP_PATH:
            self._serve_cluster(path, query)
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

    def _not_found(self) -> None:
        self._send(
            404, status_body(404, "NotFound", "the server could not find the requested resource")
        )

    def _serve_cluster(self, path: str, query: str) -> None:
        state = self.server.state
        if path == "/api":
            self._send(200, {"kind": "APIVersions", "versions": ["v1"]})
            return
        if path == "/api/v1":
            self._send(200, _resource_list("v1", state.discovery.get("v1", [])))
            return
        if path == "/apis":
            self._send(200, self._group_list())
            return
        segments = path.strip("/").split("/")
        if len(segments) == 3 and segments[0] == "apis":
            group_version = f"{segments[1]}/{segments[2]}"
            if group_version in state.discovery:
                self._send(200, _resource_list(group_version, state.discovery[group_version]))
                return
        target = _collection_of(path)
        if target is None:
            self._not_found()
            return
        collection, namespace, name = target
        params = dict(parse_qsl(query))
        if name is not None:
            with state.lock:
                obj = state.objects.get(collection, {}).get((namespace or "", name))
            if obj is None:
                self._not_found()
            else:
                self._send(200, obj)
            return
        if params.get("watch") in ("true", "1"):
            self._watch(collection, namespace, params)
            return
        selector = parse_label_selector(params.get("labelSelector", ""))
        with state.lock:
            state.list_calls[collection] = state.list_calls.get(collection, 0) + 1
            items = [
                obj
                for (ns, _), obj in sorted(state.objects.get(collection, {}).items())
                if (namespace is None or ns == namespace)
                and selector.matches(obj["metadata"].get("labels") or {})
            ]
            version = str(state.resource_version)
        self._send(
            200,
            {
                "kind": self._list_kind(path, collection),
                "apiVersion": "v1",
                "metadata": {"resourceVersion": version},
                "items": items,
            },
        )

    def _list_kind(self, path: str, collection: str) -> str:
        # Typed clients (kubectl top node reads a NodeList) want the real list kind.
        resource, _, group = collection.partition(".")
        for group_version, entries in self.server.state.discovery.items():
            if group_version.rpartition("/")[0] == group:
                for entry in entries:
                    if entry.get("name") == resource:
                        return f"{entry['kind']}List"
        return "List"

    def _group_list(self) -> dict[str, Any]:
        state = self.server.state
        groups: dict[str, list[str]] = {}
        for group_version in state.discovery:
            if "/" in group_version:
                group, version = group_version.split("/")
                groups.setdefault(group, []).append(version)
        if state.proxy is not None:
            groups.update({g: list(v) for g, v in AGGREGATED_VERSIONS.items()})
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                    "preferredVersion": {
                        "groupVersion": f"{group}/{versions[0]}",
                        "version": versions[0],
                    },
                }
                for group, versions in groups.items()
            ],
        }

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch(self, collection: str, namespace: str | None, params: dict[str, str]) -> None:
        state = self.server.state
        timeout = min(float(params.get("timeoutSeconds", "30")), 30.0)
        with state.lock:
            state.watch_calls[collection] = state.watch_calls.get(collection, 0) + 1
            last = int(params.get("resourceVersion") or state.resource_version)
            too_old = last < state.history_floor
            generation = state.watch_generation
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if too_old:
            gone = status_body(410, "Expired", f"too old resource version: {last}")
            self._chunk(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
            self._chunk(b"")
            return
        deadline = time.monotonic() + timeout
        while True:
            with state.changed:
                events = self._events_after(collection, namespace, last)
                if not events and state.watch_generation == generation:
                    state.changed.wait(0.2)
                    events = self._events_after(collection, namespace, last)
                dropped = state.watch_generation != generation
            for event in events:
                line = json.dumps({"type": event.type, "object": event.obj}).encode() + b"\n"
                self._chunk(line)
                last = event.resource_version
            if dropped:
                # An abrupt end, as when an API server or a load balancer in between goes away.
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if time.monotonic() >= deadline:
                self._chunk(b"")
                return

    def _events_after(self, collection: str, namespace: str | None, last: int) -> list[_Event]:
        return [
            event
            for event in self.server.state.history
            if event.resource_version > last
            and event.collection == collection
            and (namespace is None or event.obj["metadata"].get("namespace") == namespace)
        ]

    def _proxy(self, caller: dict[str, Any], path: str, query: str) -> None:
        state = self.server.state
        target = state.proxy
        assert target is not None
        with state.lock:
            state.proxied.append((path, caller["username"]))
        # The one aggregator implementation (query re-encoding, %2A, X-Remote-* lines).
        proxy = AggregatorProxy(
            FrontProxyIdentity(target.client_cert_file),
            backend_url=target.url,
            backend_ca_file=target.ca_file,
        )
        response = proxy.forward(
            "GET",
            path,
            query,
            dict(self.headers.items()),
            b"",
            User(caller["username"], tuple(caller.get("groups", []))),
        )
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

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


def _resource_list(group_version: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


class _StandinHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: StandinState, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state
        self.socket = context.wrap_socket(self.socket, server_side=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients (kubectl, the kubernetes client) drop keep-alive connections mid-handshake or
        # at exit; the default handler prints each as a traceback on stderr.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


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

    def put(self, collection: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or update an object (sets its resourceVersion) and tell open watches."""
        state = self.state
        with state.changed:
            state.resource_version += 1
            metadata = obj.setdefault("metadata", {})
            metadata["resourceVersion"] = str(state.resource_version)
            key = (metadata.get("namespace", ""), metadata["name"])
            store = state.objects.setdefault(collection, {})
            kind = "MODIFIED" if key in store else "ADDED"
            store[key] = obj
            state.history.append(_Event(state.resource_version, collection, kind, obj))
            state.changed.notify_all()
        return obj

    def delete(self, collection: str, namespace: str, name: str) -> None:
        state = self.state
        with state.changed:
            obj = state.objects.get(collection, {}).pop((namespace, name))
            state.resource_version += 1
            obj = {
                **obj,
                "metadata": {**obj["metadata"], "resourceVersion": str(state.resource_version)},
            }
            state.history.append(_Event(state.resource_version, collection, "DELETED", obj))
            state.changed.notify_all()

    def drop_watches(self) -> None:
        """Close every open watch abruptly."""
        with self.state.changed:
            self.state.watch_generation += 1
            self.state.changed.notify_all()

    def compact(self) -> None:
        """Forget the event history: watches from older versions get 410 Gone."""
        with self.state.changed:
            self.state.history.clear()
            self.state.history_floor = self.state.resource_version
            self.state.watch_generation += 1
            self.state.changed.notify_all()

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
