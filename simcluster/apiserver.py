"""A stand-in kube-apiserver and aggregator for the simulated cluster, on loopback HTTPS.

It serves, in kube-apiserver's wire format, what the exporter (node list), the adapter (object
caches, TokenReview, SubjectAccessReview, the authentication ConfigMap) and ``kubectl top`` /
``kubectl get --raw`` need:

- discovery: ``/version``, ``/api``, ``/api/v1``, ``/apis`` and the ``/apis/G/V`` of the groups
  served here;
- ``/api/v1/nodes``, ``/api/v1/pods``, ``/api/v1/namespaces/NS/pods``, ``/api/v1/namespaces``
  (and single objects): LIST with ``labelSelector``, ``fieldSelector``, ``limit``/``continue``,
  and WATCH (``?watch=1``) as a stream of WatchEvent lines, resumable from a ``resourceVersion``
  (410 Gone once it has left the bounded history);
- ``POST`` TokenReview and SubjectAccessReview, and
  ``kube-system/extension-apiserver-authentication`` (the front-proxy CA and header names);
- an aggregator front: ``/apis/metrics.k8s.io``, ``/apis/custom.metrics.k8s.io`` and
  ``/apis/external.metrics.k8s.io`` are proxied to the adapter over verified TLS with the
  front-proxy client certificate and ``X-Remote-User`` / ``X-Remote-Group`` lines, the path kept
  escaped (``%2A``) and the query re-encoded as ``url.Values.Encode`` does. With no backend, or
  when the backend cannot be reached, the answer is 503 ``service unavailable`` like the real
  aggregator's.

Objects come from the :class:`~simcluster.model.Cluster` at the current time. An
:class:`ObjectStore` turns the model's moments into a history of changes with resource versions,
refreshed by a ticker thread, so watches see pods come and go (churn) and change (restarts).

Every request needs a bearer token from :class:`Credentials`; authorization is a small policy
(``default_policy``) used both for requests here and for SubjectAccessReviews the adapter sends.

Exception tree::

    ApiserverError(RuntimeError)    the stand-in cannot start or was used wrongly
    SelectorError(ValueError)       a label or field selector cannot be parsed (a 400 here)
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import re
import secrets
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlsplit

import trustme
import yaml

from simcluster.kubelet_payloads import pod_list, rfc3339
from simcluster.model import RESERVED_MEMORY_BYTES, Cluster, Deployment, stable_uid

log = logging.getLogger(__name__)

JSON = dict[str, Any]

AGGREGATED_GROUPS: Mapping[str, tuple[str, ...]] = {
    "metrics.k8s.io": ("v1beta1",),
    "custom.metrics.k8s.io": ("v1beta2", "v1beta1"),
    "external.metrics.k8s.io": ("v1beta1",),
}
TOKEN_REVIEWS_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"  # noqa: S105 - a path
SUBJECT_ACCESS_REVIEWS_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
AUTH_CONFIGMAP_PATH = "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"
FRONT_PROXY_CN = "front-proxy-client"
ADAPTER_USER = "system:serviceaccount:kube-system:kubemetrics-adapter"
EXPORTER_USER = "system:serviceaccount:kube-system:kubemetrics-exporter"
ADMIN_USER = "kubernetes-admin"
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True, slots=True)
class Resource:
    group: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/v1" if self.group else "v1"


# What the stand-in serves (read-only; resource plurals are unique across these groups).
RESOURCES: Mapping[str, Resource] = {
    r.plural: r
    for r in (
        Resource("", "namespaces", "Namespace", namespaced=False, short_names=("ns",)),
        Resource("", "nodes", "Node", namespaced=False, short_names=("no",)),
        Resource("", "pods", "Pod", namespaced=True, short_names=("po",)),
        Resource("", "persistentvolumeclaims", "PersistentVolumeClaim", True, short_names=("pvc",)),
        Resource("apps", "deployments", "Deployment", namespaced=True, short_names=("deploy",)),
        Resource("apps", "replicasets", "ReplicaSet", namespaced=True, short_names=("rs",)),
    )
}
WATCH_POLL_SECONDS = 0.2
MAX_WATCH_SECONDS = 1800
# How long kube-apiserver waits on a watch from a future resourceVersion (watch cache).
TOO_LARGE_WAIT_SECONDS = 3.0


class ApiserverError(RuntimeError):
    """The stand-in cannot start, or was used wrongly."""


class SelectorError(ValueError):
    """A label or field selector that cannot be parsed; the message says which part."""


# -- identities and authorization -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""

    def as_user_info(self) -> JSON:
        info: JSON = {"username": self.name, "groups": [*self.groups, "system:authenticated"]}
        if self.uid:
            info["uid"] = self.uid
        return info


@dataclass(frozen=True, slots=True)
class Credentials:
    """Bearer tokens the stand-in accepts. Random per run; never logged."""

    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    adapter_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    exporter_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    viewer_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def users(self) -> dict[str, User]:
        service_accounts = ("system:serviceaccounts", "system:serviceaccounts:kube-system")
        return {
            self.admin_token: User(ADMIN_USER, ("system:masters",)),
            self.adapter_token: User(ADAPTER_USER, service_accounts, "b5d1e1a0-adapter"),
            self.exporter_token: User(EXPORTER_USER, service_accounts, "b5d1e1a0-exporter"),
            # A user who may discover APIs but read nothing: for 403 paths.
            self.viewer_token: User("viewer", ()),
        }


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request does, as a SubjectAccessReview spec names it."""

    user: str
    groups: tuple[str, ...]
    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # non-resource requests only


AccessPolicy = Callable[[Attributes], tuple[bool, str]]

_DISCOVERY_PATHS = ("/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz")


def default_policy(attributes: Attributes) -> tuple[bool, str]:
    """RBAC as a small cluster would have it for the demo's service accounts and users."""
    if "system:masters" in attributes.groups:
        return True, ""
    if attributes.path:
        if attributes.path.startswith(_DISCOVERY_PATHS):
            return True, 'RBAC: allowed by ClusterRoleBinding "system:discovery"'
        return False, ""
    if attributes.user == ADAPTER_USER:
        allowed = {
            ("authentication.k8s.io", "tokenreviews", "create"),
            ("authorization.k8s.io", "subjectaccessreviews", "create"),
        }
        if (attributes.group, attributes.resource, attributes.verb) in allowed:
            return True, 'RBAC: allowed by ClusterRoleBinding "system:auth-delegator"'
        if (
            attributes.resource == "configmaps"
            and attributes.namespace == "kube-system"
            and attributes.verb == "get"
        ):
            return True, 'RBAC: allowed by RoleBinding "extension-apiserver-authentication-reader"'
        if attributes.resource in RESOURCES and attributes.verb in (
            "get",
            "list",
            "watch",
        ):
            return True, 'RBAC: allowed by ClusterRoleBinding "kubemetrics-adapter"'
    if (
        attributes.user == EXPORTER_USER
        and attributes.group == ""
        and attributes.resource in ("nodes", "pods")
        and attributes.verb in ("get", "list", "watch")
    ):
        return True, 'RBAC: allowed by ClusterRoleBinding "kubemetrics-exporter"'
    return False, ""


# -- selectors ------------------------------------------------------------------------------------

_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_SET_REQUIREMENT = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\(([^)]*)\)\s*$")


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "exists":
            return self.key in labels
        if self.operator == "!":
            return self.key not in labels
        if self.operator in ("=", "in"):
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values  # "!=", "notin": absent matches


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()] if text.strip() else []


def parse_label_selector(text: str) -> tuple[Requirement, ...]:
    """apimachinery's label selector syntax (equality and set based); ``""`` selects all."""
    requirements = []
    for part in _split_top_level(text):
        stripped = part.strip()
        set_match = _SET_REQUIREMENT.match(stripped)
        if set_match:
            key, operator, values = set_match.groups()
            items = tuple(v.strip() for v in values.split(",") if v.strip())
            requirements.append(Requirement(_checked_key(key, text), operator, items))
            continue
        for operator in ("!=", "==", "="):
            if operator in stripped:
                key, _, value = stripped.partition(operator)
                requirements.append(
                    Requirement(
                        _checked_key(key.strip(), text),
                        "!=" if operator == "!=" else "=",
                        (value.strip(),),
                    )
                )
                break
        else:
            if stripped.startswith("!"):
                requirements.append(Requirement(_checked_key(stripped[1:].strip(), text), "!"))
            else:
                requirements.append(Requirement(_checked_key(stripped, text), "exists"))
    return tuple(requirements)


def _checked_key(key: str, selector: str) -> str:
    if not _LABEL_KEY.match(key):
        raise SelectorError(
            f"unable to parse requirement: invalid label key {key!r} in {selector!r}"
        )
    return key


_METADATA_FIELDS: Mapping[str, Callable[[JSON], str]] = {
    "metadata.name": lambda o: o["metadata"]["name"],
    "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
}
FIELD_PATHS: Mapping[str, Mapping[str, Callable[[JSON], str]]] = {
    "pods": {
        "metadata.name": lambda o: o["metadata"]["name"],
        "metadata.namespace": lambda o: o["metadata"]["namespace"],
        "spec.nodeName": lambda o: o["spec"].get("nodeName", ""),
        "status.phase": lambda o: o["status"].get("phase", ""),
    },
    "nodes": {"metadata.name": lambda o: o["metadata"]["name"]},
    "namespaces": {
        "metadata.name": lambda o: o["metadata"]["name"],
        "status.phase": lambda o: o["status"].get("phase", ""),
    },
}


def parse_field_selector(kind: str, text: str) -> Callable[[JSON], bool]:
    """A predicate for ``fieldSelector`` on ``kind``; unknown fields are errors, as upstream."""
    checks: list[tuple[Callable[[JSON], str], bool, str]] = []
    for part in _split_top_level(text):
        for operator in ("!=", "==", "="):
            if operator in part:
                name, _, value = part.partition(operator)
                getter = FIELD_PATHS.get(kind, _METADATA_FIELDS).get(name.strip())
                if getter is None:
                    raise SelectorError(f'field label not supported: {name.strip()} (for "{kind}")')
                checks.append((getter, operator != "!=", value.strip()))
                break
        else:
            raise SelectorError(f"invalid selector: {text!r}; can't understand {part!r}")

    def matches(obj: JSON) -> bool:
        return all((getter(obj) == value) == equal for getter, equal, value in checks)

    return matches


# -- objects and their history --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WatchEvent:
    revision: int
    kind: str  # "nodes", "pods", "namespaces"
    type: str  # ADDED, MODIFIED, DELETED
    obj: JSON


def _key(kind: str, obj: JSON) -> tuple[str, str, str]:
    metadata = obj["metadata"]
    return kind, metadata.get("namespace", ""), metadata["name"]


class ObjectStore:
    """Objects of the simulated cluster with resource versions and a bounded change history.

    ``kubelet_endpoints`` maps node name to the (address, port) its stand-in kubelet listens on,
    so the node objects lead a cluster-wide exporter to the right loopback port.
    """

    def __init__(
        self,
        cluster: Cluster,
        kubelet_endpoints: Mapping[str, tuple[str, int]],
        *,
        clock: Callable[[], float] = time.time,
        history: int = 2000,
    ) -> None:
        self.cluster = cluster
        self._endpoints = dict(kubelet_endpoints)
        self._clock = clock
        self._revision = 1000
        self._objects: dict[tuple[str, str, str], JSON] = {}
        self._history: deque[WatchEvent] = deque(maxlen=history)
        self._oldest_kept = self._revision
        self._changed = threading.Condition()
        self.refresh()

    @property
    def revision(self) -> int:
        with self._changed:
            return self._revision

    def refresh(self) -> int:
        """Compare the model now with what is stored; record changes. Returns how many."""
        current = self._snapshot(self._clock())
        changes = 0
        with self._changed:
            for key in sorted(self._objects.keys() - current.keys()):
                self._record(key[0], "DELETED", self._objects.pop(key), bump=True)
                changes += 1
            for key in sorted(current):
                obj = current[key]
                previous = self._objects.get(key)
                if previous is not None and _without_version(previous) == obj:
                    continue
                self._revision += 1
                obj["metadata"]["resourceVersion"] = str(self._revision)
                self._objects[key] = obj
                self._record(key[0], "ADDED" if previous is None else "MODIFIED", obj, bump=False)
                changes += 1
            if changes:
                self._changed.notify_all()
        return changes

    def _record(self, kind: str, event_type: str, obj: JSON, *, bump: bool) -> None:
        if bump:
            self._revision += 1
            obj = json.loads(json.dumps(obj))
            obj["metadata"]["resourceVersion"] = str(self._revision)
        if len(self._history) == self._history.maxlen:
            self._oldest_kept = self._history[0].revision
        self._history.append(WatchEvent(self._revision, kind, event_type, obj))

    def objects(self, kind: str, namespace: str = "") -> tuple[int, list[JSON]]:
        """The current objects of a kind (in one namespace if given), sorted like etcd keys."""
        with self._changed:
            items = [
                obj
                for key, obj in sorted(self._objects.items())
                if key[0] == kind and (not namespace or key[1] == namespace)
            ]
            return self._revision, items

    def get(self, kind: str, namespace: str, name: str) -> JSON | None:
        with self._changed:
            return self._objects.get((kind, namespace, name))

    def events_after(self, revision: int) -> list[WatchEvent] | None:
        """Changes after ``revision``; None when history no longer reaches back that far."""
        with self._changed:
            if revision < self._oldest_kept:
                return None
            return [event for event in self._history if event.revision > revision]

    def wait(self, revision: int, timeout: float) -> None:
        """Block until something newer than ``revision`` is stored, or ``timeout`` passes."""
        with self._changed:
            if self._revision <= revision:
                self._changed.wait(timeout)

    def _snapshot(self, now: float) -> dict[tuple[str, str, str], JSON]:
        objects: dict[tuple[str, str, str], JSON] = {}
        namespaces = sorted({*SYSTEM_NAMESPACES, *(d.namespace for d in self.cluster.deployments)})
        for namespace in namespaces:
            obj = _namespace_object(self.cluster, namespace)
            objects[_key("namespaces", obj)] = obj
        for deployment in self.cluster.deployments:
            obj = _deployment_object(self.cluster, deployment)
            objects[_key("deployments", obj)] = obj
        for node in self.cluster.nodes:
            obj = _node_object(self.cluster, node.name, self._endpoints.get(node.name))
            objects[_key("nodes", obj)] = obj
            for item in pod_list(self.cluster, node.name, now)["items"]:
                pod = {"kind": "Pod", "apiVersion": "v1", **item}
                pod["metadata"] = dict(pod["metadata"])
                pod["metadata"].pop("resourceVersion", None)
                objects[_key("pods", pod)] = pod
                for owned in _pod_owned_objects(self.cluster, pod):
                    objects.setdefault(_key(owned.pop("plural"), owned), owned)
        return objects


def _without_version(obj: JSON) -> JSON:
    metadata = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    return {**obj, "metadata": metadata}


def _namespace_object(cluster: Cluster, name: str) -> JSON:
    return {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": stable_uid("namespace", cluster.seed, name),
            "creationTimestamp": rfc3339(cluster.epoch - 30 * 86400),
            "labels": {"kubernetes.io/metadata.name": name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def _deployment_object(cluster: Cluster, deployment: Deployment) -> JSON:
    selector = {"matchLabels": dict(deployment.labels)}
    replicas = deployment.replicas
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": deployment.name,
            "namespace": deployment.namespace,
            "uid": stable_uid("deployment", deployment.namespace, deployment.name),
            "generation": 1,
            "creationTimestamp": rfc3339(cluster.epoch - deployment.age_seconds),
            "labels": dict(deployment.labels),
        },
        "spec": {
            "replicas": replicas,
            "selector": selector,
            "template": {
                "metadata": {"labels": dict(deployment.labels)},
                "spec": {
                    "containers": [
                        {"name": c.name, "image": c.image} for c in deployment.containers
                    ]
                },
            },
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        },
    }


def _pod_owned_objects(cluster: Cluster, pod: JSON) -> list[JSON]:
    """The pod's ReplicaSet and PersistentVolumeClaims (with ``plural`` to key them)."""
    metadata = pod["metadata"]
    namespace = metadata["namespace"]
    owned: list[JSON] = []
    for reference in metadata.get("ownerReferences", []):
        if reference.get("kind") != "ReplicaSet":
            continue
        deployment_name = reference["name"].rsplit("-", 1)[0]
        labels = dict(metadata.get("labels", {}))
        owned.append(
            {
                "plural": "replicasets",
                "kind": "ReplicaSet",
                "apiVersion": "apps/v1",
                "metadata": {
                    "name": reference["name"],
                    "namespace": namespace,
                    "uid": reference["uid"],
                    "labels": labels,
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": deployment_name,
                            "uid": stable_uid("deployment", namespace, deployment_name),
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": {"selector": {"matchLabels": labels}},
                "status": {},
            }
        )
    for volume in pod["spec"].get("volumes", []):
        claim = volume.get("persistentVolumeClaim", {}).get("claimName")
        if not claim:
            continue
        owned.append(
            {
                "plural": "persistentvolumeclaims",
                "kind": "PersistentVolumeClaim",
                "apiVersion": "v1",
                "metadata": {
                    "name": claim,
                    "namespace": namespace,
                    "uid": stable_uid("pvc", cluster.seed, namespace, claim),
                },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "10Gi"}},
                    "volumeName": f"pvc-{stable_uid('pv', namespace, claim)}",
                    "storageClassName": "standard",
                    "volumeMode": "Filesystem",
                },
                "status": {
                    "phase": "Bound",
                    "accessModes": ["ReadWriteOnce"],
                    "capacity": {"storage": "10Gi"},
                },
            }
        )
    return owned


def _node_object(cluster: Cluster, name: str, endpoint: tuple[str, int] | None) -> JSON:
    node = cluster.node(name)
    address, port = endpoint or (node.internal_ip, 10250)
    allocatable_memory = node.memory_bytes - RESERVED_MEMORY_BYTES
    capacity = {
        "cpu": str(node.cpu_cores),
        "ephemeral-storage": f"{node.fs_capacity_bytes // 1024}Ki",
        "memory": f"{node.memory_bytes // 1024}Ki",
        "pods": "110",
    }
    allocatable = {**capacity, "memory": f"{allocatable_memory // 1024}Ki"}
    heartbeat = rfc3339(cluster.epoch)
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": stable_uid("node", cluster.seed, name),
            "creationTimestamp": rfc3339(cluster.node_started(node)),
            "labels": dict(node.labels),
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": f"10.244.{cluster.nodes.index(node)}.0/24"},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "lastHeartbeatTime": heartbeat,
                    "lastTransitionTime": rfc3339(cluster.node_started(node)),
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }
            ],
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            "nodeInfo": {
                "machineID": stable_uid("machine", name).replace("-", ""),
                "systemUUID": stable_uid("system", name),
                "bootID": stable_uid("boot", name),
                "kernelVersion": "6.1.0-sim",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kubeletVersion": "v1.32.0",
                "kubeProxyVersion": "v1.32.0",
                "operatingSystem": node.os,
                "architecture": "amd64",
            },
        },
    }


# -- the aggregator front -------------------------------------------------------------------------


def aggregator_query(raw_query: str) -> str:
    """The query as kube-aggregator forwards it: ``url.Values.Encode()`` (keys sorted, values
    form-encoded with ``=``→``%3D``, ``*``→``%2A``, space→``+``)."""
    pairs = parse_qsl(raw_query, keep_blank_values=True)
    pairs.sort(key=lambda pair: pair[0])  # stable: values of one key keep their order
    return "&".join(f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k, v in pairs)


def aggregator_path(raw_path: str) -> str:
    """The path as the aggregator sends it: Go re-escapes the decoded path, so ``*`` becomes
    ``%2A`` whether the client sent ``*`` or ``%2A``."""
    from urllib.parse import quote, unquote  # noqa: PLC0415

    return "/".join(
        quote(unquote(segment), safe="-_.~!$&'()+,;=:@") for segment in raw_path.split("/")
    ).replace("*", "%2A")


@dataclass(frozen=True, slots=True)
class ProxiedResponse:
    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class FrontProxyIdentity:
    """The aggregator's client certificate (CN ``front-proxy-client``), its key (None: in
    ``cert_file`` too) and the CA that signed it (for the authentication ConfigMap)."""

    cert_file: Path
    key_file: Path | None = None
    ca_pem: str = ""


class AggregatorProxy:
    """Forwards metrics API requests to the adapter the way kube-aggregator does.

    Reusable outside this server: ``forward`` takes the already authenticated ``user``.
    """

    def __init__(
        self,
        identity: FrontProxyIdentity,
        *,
        backend_url: str | None = None,
        backend_ca_file: Path | None = None,
        timeout_seconds: float = 30.0,
    ) -> None:
        self.identity = identity
        self.backend_url = backend_url
        self.backend_ca_file = backend_ca_file
        self._timeout = timeout_seconds

    def set_backend(self, url: str | None, ca_file: Path | None) -> None:
        """Point at the adapter (``https://127.0.0.1:PORT``) or at nothing (503)."""
        self.backend_url = url
        self.backend_ca_file = ca_file

    def forward(  # noqa: PLR0917 - one request's parts, as http.client takes them
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: Mapping[str, str],
        body: bytes,
        user: User,
    ) -> ProxiedResponse:
        url, ca_file = self.backend_url, self.backend_ca_file
        if url is None or ca_file is None:
            return ProxiedResponse(503, "text/plain; charset=utf-8", b"service unavailable\n")
        parts = urlsplit(url)
        context = ssl.create_default_context(cafile=str(ca_file))
        context.load_cert_chain(self.identity.cert_file, self.identity.key_file)
        target = aggregator_path(raw_path)
        query = aggregator_query(raw_query)
        if query:
            target += "?" + query
        connection = http.client.HTTPSConnection(
            parts.hostname or "127.0.0.1", parts.port or 443, context=context, timeout=self._timeout
        )
        try:
            connection.putrequest(method, target, skip_accept_encoding=True)
            for name in ("Accept", "Content-Type", "User-Agent", "Accept-Language"):
                if name in headers:
                    connection.putheader(name, headers[name])
            connection.putheader("X-Remote-User", user.name)
            for group in (*user.groups, "system:authenticated"):
                connection.putheader("X-Remote-Group", group)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body or None)
            response = connection.getresponse()
            data = response.read()
            content_type = response.getheader("Content-Type", "application/json")
            return ProxiedResponse(response.status, content_type, data)
        except (OSError, http.client.HTTPException) as err:
            log.warning("aggregator: %s %s to the adapter failed: %s", method, raw_path, err)
            return ProxiedResponse(503, "text/plain; charset=utf-8", b"service unavailable\n")
        finally:
            connection.close()


# -- the HTTP server ------------------------------------------------------------------------------


def status_body(code: int, reason: str, message: str, details: JSON | None = None) -> JSON:
    body: JSON = {
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


def _truthy(value: str) -> bool:
    return value in ("1", "t", "T", "true", "TRUE", "True")


@dataclass
class ServerState:
    """Mutable parts of the stand-in (read per request). Counters are for tests."""

    policy: AccessPolicy = default_policy
    token_reviews: int = 0
    access_reviews: list[JSON] = field(default_factory=list)
    proxied: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("apiserver: %s", format % args)

    # -- responses

    def _send_bytes(self, code: int, content_type: str, data: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send(self, code: int, body: Mapping[str, Any]) -> None:
        self._send_bytes(code, "application/json", json.dumps(body).encode())

    def _fail(self, code: int, reason: str, message: str, details: JSON | None = None) -> None:
        self._send(code, status_body(code, reason, message, details))

    # -- authentication and authorization

    def _user(self) -> User | None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        user = self.server.users.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            self._fail(401, "Unauthorized", "Unauthorized")
        return user

    def _allowed(self, user: User, attributes: Attributes) -> bool:
        allowed, _ = self.server.state.policy(attributes)
        if allowed:
            return True
        if attributes.path:
            message = (
                f'forbidden: User "{user.name}" cannot {attributes.verb} path "{attributes.path}"'
            )
            self._fail(403, "Forbidden", message)
            return False
        resource = attributes.resource + (
            f"/{attributes.subresource}" if attributes.subresource else ""
        )
        group = attributes.group
        where = f' in the namespace "{attributes.namespace}"' if attributes.namespace else ""
        qualified = f"{attributes.resource}.{group}" if group else attributes.resource
        named = f'"{attributes.name}" ' if attributes.name else ""
        message = (
            f'{qualified} {named}is forbidden: User "{user.name}" cannot {attributes.verb} '
            f'resource "{resource}" in API group "{group}"{where}'
        )
        details = {"kind": attributes.resource}
        if attributes.name:
            details["name"] = attributes.name
        if group:
            details["group"] = group
        self._fail(403, "Forbidden", message, details)
        return False

    # -- dispatch

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length", "0") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        body = self._body()
        raw_path, _, raw_query = self.path.partition("?")
        if raw_path in ("/healthz", "/livez", "/readyz"):
            self._send_bytes(200, "text/plain; charset=utf-8", b"ok")
            return
        user = self._user()
        if user is None:
            return
        segments = [s for s in raw_path.split("/") if s]
        if len(segments) >= 2 and segments[0] == "apis" and segments[1] in AGGREGATED_GROUPS:
            self._proxy(method, raw_path, raw_query, body, user, segments)
            return
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        if method == "POST":
            self._post(raw_path, body, user)
            return
        static = self.server.discovery.get(raw_path.rstrip("/") or "/")
        if static is not None:
            if self._allowed(user, Attributes(user.name, user.groups, "get", path=raw_path)):
                self._send(200, static)
            return
        if raw_path == AUTH_CONFIGMAP_PATH:
            attributes = Attributes(
                user.name,
                user.groups,
                "get",
                resource="configmaps",
                namespace="kube-system",
                name="extension-apiserver-authentication",
            )
            if self._allowed(user, attributes):
                self._send(200, self.server.auth_configmap)
            return
        self._core(segments, query, user)

    def _proxy(  # noqa: PLR0917
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        body: bytes,
        user: User,
        segments: list[str],
    ) -> None:
        with self.server.state.lock:
            self.server.state.proxied.append(self.path)
        # The real kube-apiserver authorizes aggregated resources before proxying; metrics
        # requests of system:masters pass, others are left to the adapter's own SAR.
        headers = dict(self.headers.items())
        response = self.server.proxy.forward(method, raw_path, raw_query, headers, body, user)
        self._send_bytes(response.status, response.content_type, response.body)

    def _post(self, raw_path: str, body: bytes, user: User) -> None:
        if raw_path not in (TOKEN_REVIEWS_PATH, SUBJECT_ACCESS_REVIEWS_PATH):
            self._fail(405, "MethodNotAllowed", f"the server does not allow POST on {raw_path}")
            return
        try:
            review = json.loads(body)
        except json.JSONDecodeError as err:
            self._fail(400, "BadRequest", f"error decoding request body: {err}")
            return
        spec = review.get("spec") if isinstance(review, dict) else None
        if not isinstance(spec, dict):
            self._fail(400, "BadRequest", "the review has no spec")
            return
        if raw_path == TOKEN_REVIEWS_PATH:
            attributes = Attributes(
                user.name, user.groups, "create", "authentication.k8s.io", "tokenreviews"
            )
            if not self._allowed(user, attributes):
                return
            with self.server.state.lock:
                self.server.state.token_reviews += 1
            reviewed = self.server.users.get(str(spec.get("token", "")))
            status: JSON = (
                {"authenticated": True, "user": reviewed.as_user_info()}
                if reviewed is not None
                else {"user": {}, "error": "[invalid bearer token, token lookup failed]"}
            )
            kind, api_version = "TokenReview", "authentication.k8s.io/v1"
        else:
            attributes = Attributes(
                user.name, user.groups, "create", "authorization.k8s.io", "subjectaccessreviews"
            )
            if not self._allowed(user, attributes):
                return
            with self.server.state.lock:
                self.server.state.access_reviews.append(spec)
            resource = spec.get("resourceAttributes") or {}
            non_resource = spec.get("nonResourceAttributes") or {}
            reviewed_attributes = Attributes(
                user=str(spec.get("user", "")),
                groups=tuple(spec.get("groups") or ()),
                verb=str(resource.get("verb") or non_resource.get("verb") or ""),
                group=str(resource.get("group", "")),
                resource=str(resource.get("resource", "")),
                subresource=str(resource.get("subresource", "")),
                namespace=str(resource.get("namespace", "")),
                name=str(resource.get("name", "")),
                path=str(non_resource.get("path", "")),
            )
            allowed, reason = self.server.state.policy(reviewed_attributes)
            status = {"allowed": allowed}
            if reason:
                status["reason"] = reason
            kind, api_version = "SubjectAccessReview", "authorization.k8s.io/v1"
        self._send(
            201,
            {
                "kind": kind,
                "apiVersion": api_version,
                "metadata": {"creationTimestamp": None},
                "spec": spec,
                "status": status,
            },
        )

    def _core(self, segments: list[str], query: Mapping[str, str], user: User) -> None:
        # /api/v1/RESOURCE[/NAME], /api/v1/namespaces/NS/RESOURCE[/NAME], /apis/apps/v1/...
        if segments[:2] == ["api", "v1"]:
            group, rest = "", segments[2:]
        elif segments[:1] == ["apis"] and len(segments) >= 3 and segments[2] == "v1":
            group, rest = segments[1], segments[3:]
        else:
            group, rest = "-", []
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        resource = RESOURCES.get(rest[0]) if rest else None
        if (
            resource is None
            or resource.group != group
            or len(rest) > 2
            or (namespace and not resource.namespaced)
        ):
            self._fail(404, "NotFound", "the server could not find the requested resource")
            return
        kind = resource.plural
        name = rest[1] if len(rest) == 2 else ""
        watching = _truthy(query.get("watch", ""))
        verb = "watch" if watching else "get" if name else "list"
        attributes = Attributes(
            user.name, user.groups, verb, group, kind, namespace=namespace, name=name
        )
        if not self._allowed(user, attributes):
            return
        store = self.server.store
        if name:
            obj = store.get(kind, namespace, name)
            if obj is None:
                self._fail(
                    404,
                    "NotFound",
                    f'{kind} "{name}" not found',
                    {"name": name, "kind": kind},
                )
                return
            self._send(200, obj)
            return
        try:
            selected = _Selection(
                kind, query.get("labelSelector", ""), query.get("fieldSelector", "")
            )
        except SelectorError as err:
            self._fail(400, "BadRequest", str(err))
            return
        if watching:
            self._watch(kind, namespace, selected, query)
            return
        revision, items = store.objects(kind, namespace)
        items = [_item(obj) for obj in items if selected.matches(obj)]
        metadata: JSON = {"resourceVersion": str(revision)}
        limit = int(query["limit"]) if query.get("limit", "").isdigit() else 0
        start = 0
        if query.get("continue"):
            try:
                start = int(base64.urlsafe_b64decode(query["continue"]).decode())
            except ValueError:
                self._fail(400, "BadRequest", "invalid continue token")
                return
        if limit:
            if start + limit < len(items):
                metadata["continue"] = base64.urlsafe_b64encode(
                    str(start + limit).encode()
                ).decode()
                metadata["remainingItemCount"] = len(items) - start - limit
            items = items[start : start + limit]
        else:
            items = items[start:]
        self._send(
            200,
            {
                "kind": f"{resource.kind}List",
                "apiVersion": resource.api_version,
                "metadata": metadata,
                "items": items,
            },
        )

    def _watch(
        self, kind: str, namespace: str, selected: _Selection, query: Mapping[str, str]
    ) -> None:
        store = self.server.store
        timeout = min(int(query.get("timeoutSeconds") or MAX_WATCH_SECONDS), MAX_WATCH_SECONDS)
        deadline = time.monotonic() + timeout
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        version = query.get("resourceVersion", "")
        try:
            if version in ("", "0"):
                revision, items = store.objects(kind, namespace)
                for obj in items:
                    if selected.matches(obj):
                        self._chunk({"type": "ADDED", "object": obj})
            elif version.isdigit():
                revision = int(version)
                if revision > store.revision:
                    # A version this store never reached (e.g. from before a restart): like
                    # kube-apiserver's watch cache, wait briefly, then answer "too large" so the
                    # client relists instead of waiting forever.
                    store.wait(store.revision, TOO_LARGE_WAIT_SECONDS)
                if revision > store.revision:
                    self._chunk(
                        {
                            "type": "ERROR",
                            "object": status_body(
                                504,
                                "Timeout",
                                f"Too large resource version: {revision}, "
                                f"current: {store.revision}",
                                {
                                    "causes": [
                                        {
                                            "reason": "ResourceVersionTooLarge",
                                            "message": "Too large resource version",
                                        }
                                    ],
                                    "retryAfterSeconds": 1,
                                },
                            ),
                        }
                    )
                    self._end_chunks()
                    return
            else:
                self._chunk(
                    {
                        "type": "ERROR",
                        "object": status_body(
                            400, "BadRequest", f"invalid resource version: {version}"
                        ),
                    }
                )
                self._end_chunks()
                return
            while not self.server.stopping.is_set() and time.monotonic() < deadline:
                events = store.events_after(revision)
                if events is None:
                    self._chunk(
                        {
                            "type": "ERROR",
                            "object": status_body(
                                410,
                                "Expired",
                                f"too old resource version: {revision} ({store.revision})",
                            ),
                        }
                    )
                    break
                for event in events:
                    revision = event.revision
                    if (
                        event.kind == kind
                        and (not namespace or event.obj["metadata"].get("namespace") == namespace)
                        and selected.matches(event.obj)
                    ):
                        self._chunk({"type": event.type, "object": event.obj})
                store.wait(revision, min(WATCH_POLL_SECONDS, max(deadline - time.monotonic(), 0)))
            self._end_chunks()
        except (OSError, ssl.SSLError):
            self.close_connection = True

    def _chunk(self, event: JSON) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


@dataclass(frozen=True)
class _Selection:
    kind: str
    label_selector: str
    field_selector: str
    requirements: tuple[Requirement, ...] = ()
    fields: Callable[[JSON], bool] = lambda _obj: True

    def __init__(self, kind: str, label_selector: str, field_selector: str) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "label_selector", label_selector)
        object.__setattr__(self, "field_selector", field_selector)
        object.__setattr__(self, "requirements", parse_label_selector(label_selector))
        object.__setattr__(self, "fields", parse_field_selector(kind, field_selector))

    def matches(self, obj: JSON) -> bool:
        labels = obj["metadata"].get("labels") or {}
        return all(r.matches(labels) for r in self.requirements) and self.fields(obj)


def _item(obj: JSON) -> JSON:
    # List items carry no kind/apiVersion, as kube-apiserver's JSON lists.
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(  # noqa: PLR0917
        self,
        context: ssl.SSLContext,
        store: ObjectStore,
        users: Mapping[str, User],
        proxy: AggregatorProxy,
        auth_configmap: JSON,
        state: ServerState,
        port: int,
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        # The handshake happens in the request thread, so a slow client cannot stall accept().
        self.socket = context.wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )
        self.store = store
        self.users = dict(users)
        self.proxy = proxy
        self.auth_configmap = auth_configmap
        self.state = state
        self.stopping = threading.Event()
        self.discovery: dict[str, JSON] = {}

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("apiserver: connection from %s ended with an error", client_address)


class SimApiserver:
    """The stand-in kube-apiserver + aggregator. ``start()`` / ``stop()`` or a context manager.

    ``kubelet_endpoints`` (node → (address, port)) is what node objects advertise; give the
    fleet's ports so a cluster-wide exporter finds the stand-in kubelets.
    """

    def __init__(
        self,
        cluster: Cluster,
        kubelet_endpoints: Mapping[str, tuple[str, int]],
        *,
        credentials: Credentials | None = None,
        ca: trustme.CA | None = None,
        front_proxy_ca: trustme.CA | None = None,
        directory: Path,
        clock: Callable[[], float] = time.time,
        refresh_seconds: float = 1.0,
        port: int = 0,
    ) -> None:
        self.credentials = credentials or Credentials()
        self.ca = ca or trustme.CA()
        self.front_proxy_ca = front_proxy_ca or trustme.CA()
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_file = directory / "apiserver-ca.crt"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        front_cert = self.front_proxy_ca.issue_cert(FRONT_PROXY_CN, common_name=FRONT_PROXY_CN)
        identity = FrontProxyIdentity(
            cert_file=directory / "front-proxy-client.crt",
            key_file=directory / "front-proxy-client.key",
            ca_pem=self.front_proxy_ca.cert_pem.bytes().decode(),
        )
        front_cert.cert_chain_pems[0].write_to_path(str(identity.cert_file))
        key_file = directory / "front-proxy-client.key"
        front_cert.private_key_pem.write_to_path(str(key_file))
        key_file.chmod(0o600)
        self.front_proxy_ca_file = directory / "front-proxy-ca.crt"
        self.front_proxy_ca.cert_pem.write_to_path(str(self.front_proxy_ca_file))
        self.proxy = AggregatorProxy(identity)
        self.state = ServerState()
        self.store = ObjectStore(cluster, kubelet_endpoints, clock=clock)
        self._refresh_seconds = refresh_seconds
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        configmap = _auth_configmap(identity.ca_pem, self.ca.cert_pem.bytes().decode())
        try:
            self._server = _Server(
                context,
                self.store,
                self.credentials.users(),
                self.proxy,
                configmap,
                self.state,
                port,
            )
        except OSError as err:
            raise ApiserverError(f"cannot listen on 127.0.0.1:{port}: {err}") from err
        self._server.discovery = _discovery_documents(self.url)
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> SimApiserver:
        if self._threads:
            raise ApiserverError("the stand-in apiserver is already running")
        serve = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="simcluster-apiserver",
            daemon=True,
        )
        ticker = threading.Thread(target=self._tick, name="simcluster-apiserver-tick", daemon=True)
        self._threads = [serve, ticker]
        for thread in self._threads:
            thread.start()
        return self

    def _tick(self) -> None:
        while not self._server.stopping.wait(self._refresh_seconds):
            try:
                self.store.refresh()
            except Exception:  # a model bug must not silently freeze the watches
                log.exception("apiserver: refreshing objects from the model failed")

    def stop(self) -> None:
        """Stop serving, end watches and close the socket. Idempotent."""
        if not self._threads:
            self._server.server_close()
            return
        self._server.stopping.set()
        with self.store._changed:  # wake watchers so they see ``stopping``
            self.store._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._threads = []

    def __enter__(self) -> SimApiserver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def set_adapter(self, url: str | None, ca_file: Path | None) -> None:
        """Where the aggregator front sends metrics API requests (None: 503)."""
        self.proxy.set_backend(url, ca_file)

    def write_kubeconfig(self, path: Path, token: str, user: str = "user") -> Path:
        """A kubeconfig for this server with a bearer token (kubectl, the adapter, the exporter)."""
        ca_data = base64.b64encode(self.ca.cert_pem.bytes()).decode()
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "simcluster",
                    "cluster": {"server": self.url, "certificate-authority-data": ca_data},
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {"name": "simcluster", "context": {"cluster": "simcluster", "user": user}}
            ],
            "current-context": "simcluster",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        path.chmod(0o600)
        return path


def _auth_configmap(front_proxy_ca_pem: str, client_ca_pem: str) -> JSON:
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {
            "name": "extension-apiserver-authentication",
            "namespace": "kube-system",
            "uid": "5f0c7a4e-7d37-4a0a-9a51-2f7f0f1c1e01",
            "resourceVersion": "42",
            "creationTimestamp": "2024-05-01T12:00:00Z",
        },
        "data": {
            "client-ca-file": client_ca_pem,
            "requestheader-allowed-names": json.dumps([FRONT_PROXY_CN]),
            "requestheader-client-ca-file": front_proxy_ca_pem,
            "requestheader-extra-headers-prefix": json.dumps(["X-Remote-Extra-"]),
            "requestheader-group-headers": json.dumps(["X-Remote-Group"]),
            "requestheader-username-headers": json.dumps(["X-Remote-User"]),
        },
    }


def _discovery_documents(url: str) -> dict[str, JSON]:
    host = urlsplit(url).netloc

    def group(name: str, versions: Sequence[str]) -> JSON:
        listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        return {"name": name, "versions": listed, "preferredVersion": listed[0]}

    def resource(
        name: str, kind: str, verbs: Sequence[str], *, namespaced: bool, short: Sequence[str] = ()
    ) -> JSON:
        item: JSON = {
            "name": name,
            "singularName": kind.lower(),
            "namespaced": namespaced,
            "kind": kind,
            "verbs": list(verbs),
        }
        if short:
            item["shortNames"] = list(short)
        return item

    def served(group_name: str) -> list[JSON]:
        return [
            resource(r.plural, r.kind, read, namespaced=r.namespaced, short=r.short_names)
            for r in sorted(RESOURCES.values(), key=lambda r: r.plural)
            if r.group == group_name
        ]

    read = ("get", "list", "watch")
    groups = [
        group("apps", ("v1",)),
        group("authentication.k8s.io", ("v1",)),
        group("authorization.k8s.io", ("v1",)),
        *(group(name, versions) for name, versions in AGGREGATED_GROUPS.items()),
    ]
    return {
        "/version": {
            "major": "1",
            "minor": "32",
            "gitVersion": "v1.32.0-simcluster",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2024-12-11T00:00:00Z",
            "goVersion": "go1.23.4",
            "compiler": "gc",
            "platform": "linux/amd64",
        },
        "/api": {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
        },
        "/api/v1": {
            "kind": "APIResourceList",
            "groupVersion": "v1",
            "resources": [
                resource("configmaps", "ConfigMap", ("get",), namespaced=True, short=("cm",)),
                *served(""),
            ],
        },
        "/apis/apps/v1": {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "apps/v1",
            "resources": served("apps"),
        },
        "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups},
        "/apis/authentication.k8s.io/v1": {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "authentication.k8s.io/v1",
            "resources": [resource("tokenreviews", "TokenReview", ("create",), namespaced=False)],
        },
        "/apis/authorization.k8s.io/v1": {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "authorization.k8s.io/v1",
            "resources": [
                resource(
                    "subjectaccessreviews", "SubjectAccessReview", ("create",), namespaced=False
                )
            ],
        },
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


__all__ = [
    "ADAPTER_USER",
    "ADMIN_USER",
    "AGGREGATED_GROUPS",
    "EXPORTER_USER",
    "AggregatorProxy",
    "ApiserverError",
    "Attributes",
    "Credentials",
    "FrontProxyIdentity",
    "ObjectStore",
    "ProxiedResponse",
    "SelectorError",
    "SimApiserver",
    "User",
    "aggregator_path",
    "aggregator_query",
    "default_policy",
    "parse_field_selector",
    "parse_label_selector",
]
