"""Kubernetes group-resources and the catalog that normalizes them.

Rules name resources loosely (``pod``, ``pods``, ``Pod``, ``deployment`` in group ``apps``), and
labels found in Prometheus are turned into resources through a template. prometheus-adapter
normalizes both through the cluster's RESTMapper. Here the same questions go through the small
:class:`ResourceCatalog` protocol: :class:`BuiltinResourceCatalog` knows the built-in kinds, and a
catalog backed by the API server's discovery (so CRDs work) can implement the same protocol.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Protocol

__all__ = [
    "BUILTIN_RESOURCES",
    "NAMESPACES",
    "NODES",
    "PERSISTENT_VOLUMES",
    "PODS",
    "BuiltinResourceCatalog",
    "GroupResource",
    "ResourceCatalog",
    "ResourceInfo",
]


@dataclass(frozen=True, order=True)
class GroupResource:
    """A plural resource and its API group (``""`` for the core group)."""

    group: str
    resource: str

    def __str__(self) -> str:
        # Kubernetes' schema.GroupResource.String(): "pods", "deployments.apps".
        return self.resource if not self.group else f"{self.resource}.{self.group}"

    @classmethod
    def parse(cls, text: str) -> GroupResource:
        """Inverse of ``str()``: ``deployments.apps`` → (apps, deployments)."""
        resource, _, group = text.partition(".")
        return cls(group, resource)


NAMESPACES: Final = GroupResource("", "namespaces")
NODES: Final = GroupResource("", "nodes")
PERSISTENT_VOLUMES: Final = GroupResource("", "persistentvolumes")
PODS: Final = GroupResource("", "pods")


class ResourceCatalog(Protocol):
    """What the rules need to know about the cluster's resources."""

    def normalize(self, group: str, name: str) -> GroupResource | None:
        """The group-resource for a plural, singular or kind ``name`` (any case), or None.

        An empty ``group`` searches every group, preferring the earlier ones (core first), as
        a Kubernetes priority RESTMapper does.
        """
        ...

    def singular(self, gr: GroupResource) -> str:
        """The singular resource name (``pods`` → ``pod``); raises KeyError if unknown."""
        ...

    def is_namespaced(self, gr: GroupResource) -> bool:
        """Whether objects of ``gr`` live in a namespace; raises KeyError if unknown."""
        ...

    def kind(self, gr: GroupResource) -> str:
        """The kind (``pods`` → ``Pod``); raises KeyError if unknown."""
        ...


@dataclass(frozen=True)
class ResourceInfo:
    """One resource a catalog knows."""

    group: str
    resource: str
    singular: str
    kind: str
    namespaced: bool

    @property
    def group_resource(self) -> GroupResource:
        return GroupResource(self.group, self.resource)


def _r(group: str, resource: str, kind: str, *, namespaced: bool = True) -> ResourceInfo:
    return ResourceInfo(group, resource, kind.lower(), kind, namespaced)


# Ordered by preference: when a name exists in several groups (ingresses in networking.k8s.io
# and the legacy extensions group) the first one wins, as in a cluster's priority RESTMapper.
BUILTIN_RESOURCES: Final[tuple[ResourceInfo, ...]] = (
    _r("", "pods", "Pod"),
    _r("", "services", "Service"),
    _r("", "namespaces", "Namespace", namespaced=False),
    _r("", "nodes", "Node", namespaced=False),
    _r("", "persistentvolumes", "PersistentVolume", namespaced=False),
    _r("", "persistentvolumeclaims", "PersistentVolumeClaim"),
    _r("", "configmaps", "ConfigMap"),
    _r("", "secrets", "Secret"),
    _r("", "endpoints", "Endpoints"),
    _r("", "events", "Event"),
    _r("", "limitranges", "LimitRange"),
    _r("", "resourcequotas", "ResourceQuota"),
    _r("", "serviceaccounts", "ServiceAccount"),
    _r("", "replicationcontrollers", "ReplicationController"),
    _r("", "podtemplates", "PodTemplate"),
    _r("apps", "deployments", "Deployment"),
    _r("apps", "statefulsets", "StatefulSet"),
    _r("apps", "daemonsets", "DaemonSet"),
    _r("apps", "replicasets", "ReplicaSet"),
    _r("apps", "controllerrevisions", "ControllerRevision"),
    _r("batch", "jobs", "Job"),
    _r("batch", "cronjobs", "CronJob"),
    _r("autoscaling", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    _r("networking.k8s.io", "ingresses", "Ingress"),
    _r("networking.k8s.io", "networkpolicies", "NetworkPolicy"),
    _r("networking.k8s.io", "ingressclasses", "IngressClass", namespaced=False),
    _r("policy", "poddisruptionbudgets", "PodDisruptionBudget"),
    _r("discovery.k8s.io", "endpointslices", "EndpointSlice"),
    _r("storage.k8s.io", "storageclasses", "StorageClass", namespaced=False),
    _r("storage.k8s.io", "volumeattachments", "VolumeAttachment", namespaced=False),
    _r("rbac.authorization.k8s.io", "roles", "Role"),
    _r("rbac.authorization.k8s.io", "rolebindings", "RoleBinding"),
    _r("rbac.authorization.k8s.io", "clusterroles", "ClusterRole", namespaced=False),
    _r("rbac.authorization.k8s.io", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    _r("coordination.k8s.io", "leases", "Lease"),
    _r("scheduling.k8s.io", "priorityclasses", "PriorityClass", namespaced=False),
    # Legacy groups still named by old rules files (removed from clusters in 1.16 / 1.22).
    _r("extensions", "deployments", "Deployment"),
    _r("extensions", "daemonsets", "DaemonSet"),
    _r("extensions", "replicasets", "ReplicaSet"),
    _r("extensions", "ingresses", "Ingress"),
    _r("extensions", "networkpolicies", "NetworkPolicy"),
)


class BuiltinResourceCatalog:
    """A :class:`ResourceCatalog` over a fixed list (the built-in kinds by default).

    Pass ``resources`` to describe another cluster, e.g. built-ins plus some CRDs, or a reduced
    set that reproduces a particular RESTMapper in tests.
    """

    def __init__(self, resources: Iterable[ResourceInfo] = BUILTIN_RESOURCES) -> None:
        self._resources = tuple(resources)
        self._by_gr = {info.group_resource: info for info in self._resources}

    def normalize(self, group: str, name: str) -> GroupResource | None:
        wanted = name.lower()
        if not wanted:
            return None
        for info in self._resources:
            if group and info.group != group:
                continue
            if wanted in (info.resource, info.singular, info.kind.lower()):
                return info.group_resource
        return None

    def singular(self, gr: GroupResource) -> str:
        return self._by_gr[gr].singular

    def is_namespaced(self, gr: GroupResource) -> bool:
        return self._by_gr[gr].namespaced

    def kind(self, gr: GroupResource) -> str:
        return self._by_gr[gr].kind
