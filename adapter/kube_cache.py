"""What the adapter knows about the cluster's objects: watch-backed caches and discovery.

Requests must never cost one LIST each: the HPA asks every 15 s per target, and ``kubectl top``
lists whole namespaces. So pods (metadata, labels, phase), nodes and namespaces are kept in
memory by a list-then-watch loop per kind, as client-go's reflector does:

- LIST, replace the store, remember ``metadata.resourceVersion``;
- WATCH from that version, applying ADDED / MODIFIED / DELETED and BOOKMARK events;
- a watch that ends (server timeout) or drops (connection closed) is re-opened from the last
  version seen; ``410 Gone`` (history compacted), any error and every ``resync_seconds`` relist;
- errors back off exponentially (bounded), and the last good content stays served meanwhile.

Other resources (``deployments.apps``, CRDs) are listed on demand with a short cache. The
resource catalog (plural/singular/kind/scope, used to read rules and requests) comes from the
API server's discovery, refreshed periodically so new CRDs appear without a restart; until the
first successful discovery the built-in kinds are used.

The parsing here is pure (JSON in, frozen values out); only ``KubeApi`` does IO, through the
official ``kubernetes`` client's ``ApiClient`` (its TLS, auth and kubeconfig handling).

Exception tree::

    KubeCacheError                 reading cluster state failed
    ├── KubeResponseError          an API answer that cannot be used; names the path and field
    └── KubeRequestError           the API call failed (HTTP status or connection); names the
                                   path and, for 401/403, the RBAC the adapter needs
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from kubernetes import client as kube_client
from kubernetes.client.exceptions import ApiException

from adapter.resources import (
    BUILTIN_RESOURCES,
    NAMESPACES,
    NODES,
    PODS,
    BuiltinResourceCatalog,
    GroupResource,
    ResourceInfo,
)
from adapter.selectors import LabelSelector

LOG = logging.getLogger(__name__)

Clock = Callable[[], float]
JsonObject = dict[str, Any]

DEFAULT_RESYNC_SECONDS: Final = 300.0
DEFAULT_WATCH_TIMEOUT_SECONDS: Final = 240
DEFAULT_REQUEST_TIMEOUT_SECONDS: Final = 30.0
DEFAULT_DISCOVERY_INTERVAL_SECONDS: Final = 60.0
DEFAULT_ON_DEMAND_TTL_SECONDS: Final = 10.0
MAX_BACKOFF_SECONDS: Final = 30.0
SERVED_METRICS_GROUPS: Final = frozenset(
    {"metrics.k8s.io", "custom.metrics.k8s.io", "external.metrics.k8s.io"}
)
# Pods in these phases have stopped; they have no live metrics and the HPA ignores them.
TERMINAL_POD_PHASES: Final = frozenset({"Succeeded", "Failed"})


class KubeCacheError(Exception):
    """Reading cluster state failed."""


class KubeResponseError(KubeCacheError):
    """An API answer that cannot be used."""


class KubeRequestError(KubeCacheError):
    """An API call failed; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# --- pure: objects, lists, watch events, discovery -------------------------------------------


@dataclass(frozen=True, slots=True)
class KubeObject:
    """The parts of an object the adapter uses. ``namespace`` is "" for cluster-scoped ones."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    phase: str = ""
    deleting: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


def object_from_json(item: object, where: str) -> KubeObject:
    """A ``KubeObject`` from one item of a list or watch event (``where`` names the source)."""
    if not isinstance(item, Mapping):
        raise KubeResponseError(f"{where}: an object must be a JSON object, got {item!r:.80}")
    metadata = item.get("metadata")
    if not isinstance(metadata, Mapping):
        raise KubeResponseError(f"{where}: object without metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise KubeResponseError(f"{where}: object without metadata.name")
    namespace = metadata.get("namespace") or ""
    labels = metadata.get("labels") or {}
    if not isinstance(namespace, str) or not isinstance(labels, Mapping):
        raise KubeResponseError(f"{where}: {name}: malformed metadata.namespace or labels")
    status = item.get("status")
    phase = status.get("phase", "") if isinstance(status, Mapping) else ""
    return KubeObject(
        namespace=namespace,
        name=name,
        labels={str(k): str(v) for k, v in labels.items()},
        phase=phase if isinstance(phase, str) else "",
        deleting=metadata.get("deletionTimestamp") is not None,
    )


@dataclass(frozen=True, slots=True)
class ObjectList:
    items: tuple[KubeObject, ...]
    resource_version: str


def parse_object_list(body: bytes, where: str) -> ObjectList:
    """A ``*List`` answer: its items and ``metadata.resourceVersion``."""
    try:
        document = json.loads(body)
    except ValueError as err:
        raise KubeResponseError(f"{where}: the answer is not JSON ({err})") from None
    if not isinstance(document, Mapping) or not isinstance(document.get("items", []), list):
        raise KubeResponseError(f"{where}: expected a list with 'items'")
    metadata = document.get("metadata")
    version = metadata.get("resourceVersion", "") if isinstance(metadata, Mapping) else ""
    items = tuple(object_from_json(item, where) for item in document.get("items") or [])
    return ObjectList(items, str(version or ""))


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One watch line. ``obj`` is None for BOOKMARK and ERROR; ``code`` is set for ERROR."""

    type: str
    obj: KubeObject | None
    resource_version: str
    code: int | None = None
    message: str = ""


_WATCH_TYPES: Final = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})


def parse_watch_event(line: bytes, where: str) -> WatchEvent:
    """One line of a watch stream (``{"type": ..., "object": ...}``)."""
    try:
        document = json.loads(line)
    except ValueError as err:
        raise KubeResponseError(f"{where}: a watch line is not JSON ({err})") from None
    if not isinstance(document, Mapping) or document.get("type") not in _WATCH_TYPES:
        raise KubeResponseError(f"{where}: unknown watch event {line[:120]!r}")
    kind = str(document["type"])
    raw = document.get("object")
    if kind == "ERROR":
        status = raw if isinstance(raw, Mapping) else {}
        code = status.get("code")
        return WatchEvent(
            kind, None, "", code if isinstance(code, int) else None, str(status.get("message", ""))
        )
    metadata = raw.get("metadata") if isinstance(raw, Mapping) else None
    version = str(metadata.get("resourceVersion", "")) if isinstance(metadata, Mapping) else ""
    if kind == "BOOKMARK":
        return WatchEvent(kind, None, version)
    return WatchEvent(kind, object_from_json(raw, where), version)


def split_lines(pending: bytes, chunk: bytes) -> tuple[list[bytes], bytes]:
    """Complete non-empty lines of ``pending + chunk`` and the unfinished rest."""
    data = pending + chunk
    *lines, rest = data.split(b"\n")
    return [line for line in lines if line.strip()], rest


@dataclass(frozen=True, slots=True)
class DiscoveredResource:
    info: ResourceInfo
    version: str


def resources_from_discovery(
    documents: Iterable[tuple[str, Mapping[str, Any]]],
) -> list[DiscoveredResource]:
    """Resources of ``APIResourceList`` documents, given as (groupVersion, document) in
    preference order (core first). Subresources (``pods/log``) are skipped; a resource seen in
    an earlier document wins, like a priority RESTMapper."""
    found: list[DiscoveredResource] = []
    seen: set[GroupResource] = set()
    for group_version, document in documents:
        group, _, version = group_version.rpartition("/")
        for entry in document.get("resources") or []:
            if not isinstance(entry, Mapping):
                continue
            name = entry.get("name")
            kind = entry.get("kind")
            if not isinstance(name, str) or "/" in name or not isinstance(kind, str):
                continue
            gr = GroupResource(group, name)
            if gr in seen:
                continue
            seen.add(gr)
            singular = entry.get("singularName") or kind.lower()
            info = ResourceInfo(group, name, str(singular), kind, bool(entry.get("namespaced")))
            found.append(DiscoveredResource(info, version))
    return found


def preferred_group_versions(group_list: Mapping[str, Any]) -> list[str]:
    """``group/version`` of each group's preferred version in an ``APIGroupList``."""
    versions: list[str] = []
    for group in group_list.get("groups") or []:
        if not isinstance(group, Mapping):
            continue
        preferred = group.get("preferredVersion")
        if isinstance(preferred, Mapping) and isinstance(preferred.get("groupVersion"), str):
            versions.append(preferred["groupVersion"])
    return versions


# --- the in-memory store ---------------------------------------------------------------------


class ObjectStore:
    """Objects of one kind by (namespace, name); thread-safe, readers get copies."""

    def __init__(self, items: Iterable[KubeObject] = ()) -> None:
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str], KubeObject] = {o.key: o for o in items}

    def replace(self, items: Iterable[KubeObject]) -> None:
        fresh = {o.key: o for o in items}
        with self._lock:
            self._objects = fresh

    def apply(self, event: WatchEvent) -> None:
        if event.obj is None:
            return
        with self._lock:
            if event.type == "DELETED":
                self._objects.pop(event.obj.key, None)
            else:
                self._objects[event.obj.key] = event.obj

    def get(self, namespace: str, name: str) -> KubeObject | None:
        with self._lock:
            return self._objects.get((namespace, name))

    def select(self, namespace: str | None, selector: LabelSelector) -> list[KubeObject]:
        """Objects in ``namespace`` (None: all) matching ``selector``, sorted by key."""
        with self._lock:
            candidates = list(self._objects.values())
        return sorted(
            (
                o
                for o in candidates
                if (namespace is None or o.namespace == namespace) and selector.matches(o.labels)
            ),
            key=lambda o: o.key,
        )

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)


# --- IO: the Kubernetes API --------------------------------------------------------------------


class KubeApi:
    """Raw GETs through the official client (kubeconfig / in-cluster auth and TLS)."""

    def __init__(
        self,
        api_client: kube_client.ApiClient,
        request_timeout_seconds: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self._client = api_client
        self._timeout = request_timeout_seconds

    def _open(self, path: str, query: Sequence[tuple[str, str]], read_timeout: float) -> Any:
        request = self._client.param_serialize(
            "GET",
            path,
            query_params=list(query),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        try:
            response: Any = self._client.call_api(
                *request, _request_timeout=(self._timeout, read_timeout)
            )
        except ApiException as err:
            raise _request_error(path, err.status) from None
        except Exception as err:
            raise KubeRequestError(f"GET {path}: {type(err).__name__}: {err}"[:300]) from None
        if not 200 <= response.status <= 299:
            response.read()
            raise _request_error(path, response.status)
        return response

    def get(self, path: str, query: Sequence[tuple[str, str]] = ()) -> bytes:
        response = self._open(path, query, self._timeout)
        try:
            data: bytes = response.read()
        except Exception as err:
            raise KubeRequestError(f"GET {path}: reading the answer failed: {err}") from None
        return data

    def get_json(self, path: str, query: Sequence[tuple[str, str]] = ()) -> Mapping[str, Any]:
        body = self.get(path, query)
        try:
            document = json.loads(body)
        except ValueError as err:
            raise KubeResponseError(f"GET {path}: the answer is not JSON ({err})") from None
        if not isinstance(document, Mapping):
            raise KubeResponseError(f"GET {path}: expected a JSON object")
        return document

    def stream_lines(
        self,
        path: str,
        query: Sequence[tuple[str, str]],
        read_timeout: float,
        on_open: Callable[[Any], None] = lambda _response: None,
    ) -> Iterator[bytes]:
        """Lines of a streaming GET (a watch) until the server ends or drops it."""
        response = self._open(path, query, read_timeout)
        on_open(response.response)
        pending = b""
        try:
            for chunk in response.response.stream(64 * 1024, decode_content=True):
                lines, pending = split_lines(pending, chunk)
                yield from lines
        finally:
            response.response.release_conn()


def _request_error(path: str, status: int | None) -> KubeRequestError:
    hint = ""
    if status in (401, 403):
        hint = (
            "; the adapter's service account needs get/list/watch on pods, nodes and namespaces"
            " (and list on the resources its rules name)"
        )
    return KubeRequestError(f"GET {path}: HTTP {status}{hint}", status)


# --- watch-backed caches -----------------------------------------------------------------------


class ListWatchSource(Protocol):
    """LIST and WATCH of one kind (``KubeListWatch``; tests may hand a scripted one)."""

    def list(self) -> ObjectList: ...

    def watch(self, resource_version: str) -> Iterator[WatchEvent]: ...

    def interrupt(self) -> None: ...


class KubeListWatch:
    """LIST/WATCH of a cluster-wide collection path such as ``/api/v1/pods``."""

    def __init__(
        self,
        api: KubeApi,
        path: str,
        watch_timeout_seconds: int = DEFAULT_WATCH_TIMEOUT_SECONDS,
    ) -> None:
        self._api = api
        self.path = path
        self._watch_timeout = watch_timeout_seconds
        self._lock = threading.Lock()
        self._open_response: Any = None

    def list(self) -> ObjectList:
        return parse_object_list(self._api.get(self.path), f"GET {self.path}")

    def watch(self, resource_version: str) -> Iterator[WatchEvent]:
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(self._watch_timeout)),
        ]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        where = f"WATCH {self.path}"
        # The read timeout outlives the server-side timeout so a quiet watch is not an error.
        lines = self._api.stream_lines(
            self.path, query, self._watch_timeout + 30.0, on_open=self._remember
        )
        try:
            for line in lines:
                yield parse_watch_event(line, where)
        finally:
            self._remember(None)

    def _remember(self, response: Any) -> None:
        with self._lock:
            self._open_response = response

    def interrupt(self) -> None:
        """Unblock a watch waiting for data (at stop)."""
        with self._lock:
            response = self._open_response
        if response is not None:
            shutdown = getattr(response, "shutdown", None)
            try:
                if callable(shutdown):
                    shutdown()
                response.close()
            except Exception as err:  # closing a half-dead socket may fail; we are stopping
                LOG.debug("closing watch of %s: %s", self.path, err)


@dataclass
class CacheStats:
    """Counters for /metrics and readiness."""

    relists: int = 0
    watches: int = 0
    errors: int = 0
    last_sync: float | None = None
    last_error: str = ""


class WatchedCache:
    """One kind kept current by a background list/watch loop (see the module docstring)."""

    def __init__(
        self,
        name: str,
        source: ListWatchSource,
        *,
        resync_seconds: float = DEFAULT_RESYNC_SECONDS,
        clock: Clock = time.monotonic,
        initial_backoff_seconds: float = 0.5,
    ) -> None:
        self.name = name
        self.store = ObjectStore()
        self.stats = CacheStats()
        self._source = source
        self._resync = resync_seconds
        self._clock = clock
        self._initial_backoff = initial_backoff_seconds
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._thread: threading.Thread | None = None
        self._version: str | None = None

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def wait_synced(self, timeout_seconds: float) -> bool:
        return self._synced.wait(timeout_seconds)

    def start(self) -> WatchedCache:
        self._thread = threading.Thread(
            target=self._run, name=f"kube-cache-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout_seconds: float = 5.0) -> None:
        self._stop.set()
        self._source.interrupt()
        if self._thread is not None:
            self._thread.join(timeout_seconds)

    def _relist(self) -> str:
        listed = self._source.list()
        self.store.replace(listed.items)
        self.stats.relists += 1
        self.stats.last_sync = self._clock()
        self._synced.set()
        LOG.debug(
            "%s: listed %d objects at %s", self.name, len(listed.items), listed.resource_version
        )
        return listed.resource_version

    def _resync_due(self) -> bool:
        last = self.stats.last_sync
        return last is None or self._clock() - last >= self._resync

    def run_once(self) -> None:
        """One list (unless a version to resume from is known) and one watch until it ends.
        Errors propagate; the version to resume from is kept across them."""
        if self._version is None:
            self._version = self._relist()
        self.stats.watches += 1
        for event in self._source.watch(self._version):
            if event.type == "ERROR":
                if event.code == 410:
                    LOG.info("%s: watch history expired (410 Gone), relisting", self.name)
                    self._version = None
                    return
                raise KubeRequestError(
                    f"{self.name}: watch error {event.code}: {event.message}", event.code
                )
            self.store.apply(event)
            if event.resource_version:
                self._version = event.resource_version
            if self._stop.is_set():
                return
            if self._resync_due():
                break
        if self._resync_due():
            self._version = None

    def _run(self) -> None:
        backoff = self._initial_backoff
        while not self._stop.is_set():
            started = self._clock()
            try:
                self.run_once()
                backoff = self._initial_backoff
                if self._clock() - started < 0.1:
                    # A server that ends watches at once must not turn this into a busy loop.
                    self._stop.wait(0.1)
            except KubeCacheError as err:
                self._fail(err, backoff)
                self._version = None
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            except Exception as err:  # a dropped connection surfaces as urllib3's errors
                if self._stop.is_set():
                    return
                # Resume from the last version: the watch replays the events since then.
                LOG.info("%s: watch dropped (%s), resuming", self.name, type(err).__name__)
                self.stats.errors += 1
                self._stop.wait(min(backoff, 1.0))
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _fail(self, err: BaseException, backoff: float) -> None:
        self.stats.errors += 1
        self.stats.last_error = str(err)
        LOG.warning("%s: %s; retrying in %.1fs", self.name, err, backoff)
        self._stop.wait(backoff)


# --- the resource catalog from discovery -------------------------------------------------------


class DiscoveryResourceCatalog:
    """A ``ResourceCatalog`` from the API server's discovery, refreshed in the background.

    Before the first successful discovery (and if it never succeeds) it answers from the
    built-in kinds; a failed refresh keeps the last good answer.
    """

    def __init__(
        self,
        api: KubeApi | None,
        *,
        interval_seconds: float = DEFAULT_DISCOVERY_INTERVAL_SECONDS,
        clock: Clock = time.time,
    ) -> None:
        self._api = api
        self._interval = interval_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._catalog = BuiltinResourceCatalog()
        self._versions: dict[GroupResource, str] = {
            info.group_resource: _builtin_version(info.group) for info in BUILTIN_RESOURCES
        }
        self.refreshed_at: float | None = None
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        """Read discovery now; raises KubeCacheError (keeping the old catalog) on failure."""
        if self._api is None:
            return
        documents: list[tuple[str, Mapping[str, Any]]] = [("v1", self._api.get_json("/api/v1"))]
        for group_version in preferred_group_versions(self._api.get_json("/apis")):
            if group_version.partition("/")[0] in SERVED_METRICS_GROUPS:
                # Our own APIs (through the aggregator) hold nothing rules name, and asking
                # for them while this worker starts would wait on ourselves.
                continue
            try:
                documents.append((group_version, self._api.get_json(f"/apis/{group_version}")))
            except KubeRequestError as err:
                # An unavailable aggregated API (503) must not hide every other group.
                LOG.info("discovery of %s skipped: %s", group_version, err)
        discovered = resources_from_discovery(documents)
        catalog = BuiltinResourceCatalog(d.info for d in discovered)
        versions = {d.info.group_resource: d.version for d in discovered}
        with self._lock:
            self._catalog = catalog
            self._versions = versions
            self.refreshed_at = self._clock()
            self.last_error = ""

    def start(self) -> DiscoveryResourceCatalog:
        self._thread = threading.Thread(target=self._run, name="kube-discovery", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except KubeCacheError as err:
                self.last_error = str(err)
                LOG.warning("resource discovery failed, keeping the last catalog: %s", err)
            self._stop.wait(self._interval)

    def _current(self) -> BuiltinResourceCatalog:
        with self._lock:
            return self._catalog

    def normalize(self, group: str, name: str) -> GroupResource | None:
        return self._current().normalize(group, name)

    def singular(self, gr: GroupResource) -> str:
        return self._current().singular(gr)

    def is_namespaced(self, gr: GroupResource) -> bool:
        return self._current().is_namespaced(gr)

    def kind(self, gr: GroupResource) -> str:
        return self._current().kind(gr)

    def version(self, gr: GroupResource) -> str:
        """The preferred version of ``gr``'s group; raises KeyError if unknown."""
        with self._lock:
            return self._versions[gr]


def _builtin_version(group: str) -> str:
    return {"": "v1", "extensions": "v1beta1"}.get(group, "v1")


def collection_path(gr: GroupResource, version: str, namespace: str | None) -> str:
    """``/api/v1/namespaces/NS/pods`` or ``/apis/apps/v1/deployments`` style list paths."""
    base = f"/api/{version}" if not gr.group else f"/apis/{gr.group}/{version}"
    if namespace:
        return f"{base}/namespaces/{namespace}/{gr.resource}"
    return f"{base}/{gr.resource}"


# --- what providers use ------------------------------------------------------------------------


class ClusterObjects:
    """Objects by resource, namespace and label selector: cached kinds from the watched stores,
    other resources listed on demand (cached for ``on_demand_ttl_seconds``)."""

    def __init__(
        self,
        *,
        pods: ObjectStore,
        nodes: ObjectStore,
        namespaces: ObjectStore,
        catalog: DiscoveryResourceCatalog,
        api: KubeApi | None = None,
        on_demand_ttl_seconds: float = DEFAULT_ON_DEMAND_TTL_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        self.pods = pods
        self.nodes = nodes
        self.namespaces = namespaces
        self.catalog = catalog
        self._api = api
        self._ttl = on_demand_ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._listed: dict[tuple[GroupResource, str], tuple[float, tuple[KubeObject, ...]]] = {}

    def select(
        self, gr: GroupResource, namespace: str | None, selector: LabelSelector
    ) -> list[KubeObject]:
        """Objects of ``gr`` in ``namespace`` (None: cluster-wide) matching ``selector``.

        Pods that have stopped (Succeeded, Failed) or are being deleted are left out: they
        have no live metrics, and a stale value would skew the HPA's average.
        """
        if gr == PODS:
            return [
                pod
                for pod in self.pods.select(namespace, selector)
                if pod.phase not in TERMINAL_POD_PHASES and not pod.deleting
            ]
        if gr == NODES:
            return self.nodes.select(None, selector)
        if gr == NAMESPACES:
            return self.namespaces.select(None, selector)
        listed = self._list_on_demand(gr, namespace)
        return sorted((o for o in listed if selector.matches(o.labels)), key=lambda o: o.key)

    def _list_on_demand(self, gr: GroupResource, namespace: str | None) -> tuple[KubeObject, ...]:
        if self._api is None:
            raise KubeRequestError(f"cannot list {gr}: no Kubernetes API configured")
        key = (gr, namespace or "")
        now = self._clock()
        with self._lock:
            cached = self._listed.get(key)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        try:
            version = self.catalog.version(gr)
            namespaced = self.catalog.is_namespaced(gr)
        except KeyError:
            raise KubeRequestError(
                f"the cluster has no resource {gr} (see kubectl api-resources)", 404
            ) from None
        path = collection_path(gr, version, namespace if namespaced else None)
        items = parse_object_list(self._api.get(path), f"GET {path}").items
        with self._lock:
            self._listed[key] = (now, items)
            # Bound the cache: forget entries past their TTL.
            for stale in [k for k, (at, _) in self._listed.items() if now - at >= self._ttl]:
                del self._listed[stale]
        return items

    def sizes(self) -> dict[str, int]:
        return {
            "pods": len(self.pods),
            "nodes": len(self.nodes),
            "namespaces": len(self.namespaces),
        }


@dataclass
class KubeCache:
    """The running caches and catalog, built by :func:`start_kube_cache`."""

    objects: ClusterObjects
    watched: tuple[WatchedCache, ...]
    catalog: DiscoveryResourceCatalog

    @property
    def synced(self) -> bool:
        return all(cache.synced for cache in self.watched)

    def wait_synced(self, timeout_seconds: float) -> bool:
        deadline = time.monotonic() + timeout_seconds
        return all(
            cache.wait_synced(max(0.0, deadline - time.monotonic())) for cache in self.watched
        )

    def stop(self) -> None:
        for cache in self.watched:
            cache.stop()
        self.catalog.stop()


WATCHED_PATHS: Final = (
    ("pods", "/api/v1/pods"),
    ("nodes", "/api/v1/nodes"),
    ("namespaces", "/api/v1/namespaces"),
)


def start_kube_cache(
    api_client: kube_client.ApiClient,
    *,
    resync_seconds: float = DEFAULT_RESYNC_SECONDS,
    watch_timeout_seconds: int = DEFAULT_WATCH_TIMEOUT_SECONDS,
    discovery_interval_seconds: float = DEFAULT_DISCOVERY_INTERVAL_SECONDS,
    on_demand_ttl_seconds: float = DEFAULT_ON_DEMAND_TTL_SECONDS,
) -> KubeCache:
    """Start the pod/node/namespace watches and periodic discovery in background threads."""
    api = KubeApi(api_client)
    watched = tuple(
        WatchedCache(
            name,
            KubeListWatch(api, path, watch_timeout_seconds),
            resync_seconds=resync_seconds,
        ).start()
        for name, path in WATCHED_PATHS
    )
    catalog = DiscoveryResourceCatalog(api, interval_seconds=discovery_interval_seconds).start()
    stores = {cache.name: cache.store for cache in watched}
    objects = ClusterObjects(
        pods=stores["pods"],
        nodes=stores["nodes"],
        namespaces=stores["namespaces"],
        catalog=catalog,
        api=api,
        on_demand_ttl_seconds=on_demand_ttl_seconds,
    )
    return KubeCache(objects, watched, catalog)
