"""The metric table: every exported metric is one ``MetricDef`` row.

A row names the metric, its type and help, the *scope* it belongs to and a value extractor that
reads one record of that scope (``None`` = the kubelet did not send it = no sample). Identity
labels come from the scope alone (``SCOPE_LABELS``) and are added in ``exporter.collect``; a row
only declares labels that are not identity (``extra_labels``).

Most extractors are a ``Field``: an attribute path into the record (``cpu`` then
``usage_seconds``), declared as data rather than as a function so that ``exporter.collect`` can
look each block up once per entity for all the rows that read it. Rows that compute something
(a phase flag, a count) keep a plain function.

Naming: ``kubestats_`` + entity + quantity + base unit; counters end in ``_total``; seconds,
bytes, ratios. The names of CPU and memory working set, network, ephemeral storage, volume and
container start time are a contract with the adapter's default rules: do not rename them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar

from exporter.model import (
    AcceleratorStats,
    CollectionRound,
    ContainerStats,
    FsStats,
    InterfaceStats,
    NetworkStats,
    NodeResult,
    NodeStats,
    PodPhase,
    PodStats,
    ScrapeErrorCount,
    VolumeStats,
)
from exporter.pods import PodContainer

__all__ = ["METRICS", "SCOPE_LABELS", "Field", "MetricDef", "MetricType", "Scope"]

Value = int | float
R = TypeVar("R")


class MetricType(Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    # A constant 1 carrying facts in labels; "gauge" in text format 0.0.4, "info" in OpenMetrics.
    INFO = "info"


class Scope(Enum):
    """What one sample describes. The value is the record type its extractor reads."""

    NODE = "node"  # NodeStats
    SYSTEM_CONTAINER = "system_container"  # ContainerStats of node.systemContainers
    POD = "pod"  # PodStats
    CONTAINER = "container"  # ContainerStats of a pod
    NODE_INTERFACE = "node_interface"  # InterfaceStats of node.network
    POD_INTERFACE = "pod_interface"  # InterfaceStats of pod.network
    NODE_FILESYSTEM = "node_filesystem"  # FsStats: node.fs, runtime.imageFs, runtime.containerFs
    VOLUME = "volume"  # VolumeStats
    ACCELERATOR = "accelerator"  # AcceleratorStats of a container
    POD_PHASE = "pod_phase"  # PodPhase of a pod in the kubelet's /pods
    POD_CONTAINER = "pod_container"  # PodContainer (spec and status) of a pod in /pods
    SCRAPE = "scrape"  # NodeResult
    SCRAPE_ERROR = "scrape_error"  # ScrapeErrorCount
    COLLECTION = "collection"  # CollectionRound: the exporter as a whole, no labels


SCOPE_LABELS: dict[Scope, tuple[str, ...]] = {
    Scope.NODE: ("node",),
    Scope.SYSTEM_CONTAINER: ("node", "system_container"),
    Scope.POD: ("node", "namespace", "pod"),
    Scope.CONTAINER: ("node", "namespace", "pod", "container"),
    Scope.NODE_INTERFACE: ("node", "interface"),
    Scope.POD_INTERFACE: ("node", "namespace", "pod", "interface"),
    # filesystem is "root" (node.fs), "image" (runtime.imageFs) or "container"
    # (runtime.containerFs, split image filesystems since Kubernetes 1.29)
    Scope.NODE_FILESYSTEM: ("node", "filesystem"),
    # persistentvolumeclaim is "" when the volume is not a PVC
    Scope.VOLUME: ("node", "namespace", "pod", "volume", "persistentvolumeclaim"),
    Scope.ACCELERATOR: ("node", "namespace", "pod", "container", "accelerator", "make", "model"),
    # one series per phase (Pending, Running, Succeeded, Failed, Unknown), 1 for the current one
    Scope.POD_PHASE: ("node", "namespace", "pod", "phase"),
    Scope.POD_CONTAINER: ("node", "namespace", "pod", "container"),
    Scope.SCRAPE: ("node",),
    Scope.SCRAPE_ERROR: ("node", "reason"),
    Scope.COLLECTION: (),
}


@dataclass(frozen=True, slots=True)
class Field:
    """The value at ``record.<block...>.<name>``; ``None`` when a block on the way is ``None``
    (the kubelet left it out), so an absent block gives no sample rather than an error."""

    block: tuple[str, ...]
    name: str

    def __call__(self, record: object) -> Value | None:
        for attribute in self.block:
            record = getattr(record, attribute)
            if record is None:
                return None
        value: Value | None = getattr(record, self.name)
        return value


def _field(*path: str) -> Field:
    return Field(path[:-1], path[-1])


@dataclass(frozen=True, slots=True)
class MetricDef(Generic[R]):
    name: str
    type: MetricType
    help: str
    scope: Scope
    value: Callable[[R], Value | None]
    extra_labels: tuple[tuple[str, Callable[[R], str]], ...] = ()


class _Networked(Protocol):
    @property
    def network(self) -> NetworkStats | None: ...


def _gauge(
    name: str, help_text: str, scope: Scope, value: Callable[[Any], Value | None]
) -> MetricDef[Any]:
    return MetricDef(name, MetricType.GAUGE, help_text, scope, value)


def _counter(
    name: str, help_text: str, scope: Scope, value: Callable[[Any], Value | None]
) -> MetricDef[Any]:
    return MetricDef(name, MetricType.COUNTER, help_text, scope, value)


def _workload_rows(entity: str, scope: Scope, what: str) -> list[MetricDef[Any]]:
    """CPU, memory, swap, PSI and start time of a node, system container, pod or container."""
    p = f"kubestats_{entity}"
    rows = [
        _gauge(
            f"{p}_start_time_seconds",
            f"Unix time at which the kubelet started collecting stats for the {what}.",
            scope,
            _field("start_time"),
        ),
        _counter(
            f"{p}_cpu_usage_seconds_total",
            f"Cumulative CPU time consumed by the {what}, in core-seconds.",
            scope,
            _field("cpu", "usage_seconds"),
        ),
        _gauge(
            f"{p}_cpu_usage_cores",
            f"CPU usage of the {what} averaged over the kubelet's sample window, in cores.",
            scope,
            _field("cpu", "usage_cores"),
        ),
        _gauge(
            f"{p}_memory_available_bytes",
            f"Memory limit minus working set of the {what}; absent when it has no limit.",
            scope,
            _field("memory", "available_bytes"),
        ),
        _gauge(
            f"{p}_memory_usage_bytes",
            f"Total memory in use by the {what}, including all memory regardless of access time.",
            scope,
            _field("memory", "usage_bytes"),
        ),
        _gauge(
            f"{p}_memory_working_set_bytes",
            f"Working set memory of the {what}: recently accessed, dirty and kernel memory.",
            scope,
            _field("memory", "working_set_bytes"),
        ),
        _gauge(
            f"{p}_memory_rss_bytes",
            f"Anonymous and swap cache memory of the {what}, including transparent hugepages.",
            scope,
            _field("memory", "rss_bytes"),
        ),
        _counter(
            f"{p}_memory_page_faults_total",
            f"Cumulative number of minor page faults of the {what}.",
            scope,
            _field("memory", "page_faults"),
        ),
        _counter(
            f"{p}_memory_major_page_faults_total",
            f"Cumulative number of major page faults of the {what}.",
            scope,
            _field("memory", "major_page_faults"),
        ),
        _gauge(
            f"{p}_swap_available_bytes",
            f"Swap limit minus swap usage of the {what}; absent when it has no swap limit.",
            scope,
            _field("swap", "available_bytes"),
        ),
        _gauge(
            f"{p}_swap_usage_bytes",
            f"Swap memory in use by the {what}.",
            scope,
            _field("swap", "usage_bytes"),
        ),
    ]
    for resource in ("cpu", "memory", "io"):
        for kind, who in (("some", "at least one task"), ("full", "all non-idle tasks")):
            rows.append(
                _counter(
                    f"{p}_{resource}_pressure_{kind}_seconds_total",
                    f"Cumulative time {who} of the {what} stalled waiting for {resource} "
                    f"(PSI {kind}).",
                    scope,
                    _field(resource, "pressure", kind, "total_seconds"),
                )
            )
    return rows


def _interface_rows(entity: str, scope: Scope, what: str) -> list[MetricDef[Any]]:
    p = f"kubestats_{entity}_network"
    return [
        _counter(
            f"{p}_receive_bytes_total",
            f"Cumulative bytes received on a network interface of the {what}.",
            scope,
            _field("rx_bytes"),
        ),
        _counter(
            f"{p}_transmit_bytes_total",
            f"Cumulative bytes transmitted on a network interface of the {what}.",
            scope,
            _field("tx_bytes"),
        ),
        _counter(
            f"{p}_receive_errors_total",
            f"Cumulative receive errors on a network interface of the {what}.",
            scope,
            _field("rx_errors"),
        ),
        _counter(
            f"{p}_transmit_errors_total",
            f"Cumulative transmit errors on a network interface of the {what}.",
            scope,
            _field("tx_errors"),
        ),
    ]


def _default_interface_present(record: _Networked) -> Value | None:
    network = record.network
    return None if network is None or network.default_interface is None else 1


def _default_interface_name(record: _Networked) -> str:
    network = record.network
    return "" if network is None or network.default_interface is None else network.default_interface


def _default_interface_row(entity: str, scope: Scope, what: str) -> MetricDef[Any]:
    return MetricDef(
        f"kubestats_{entity}_network_default_interface_info",
        MetricType.INFO,
        f"The {what}'s default network interface, in the interface label; absent if none.",
        scope,
        _default_interface_present,
        extra_labels=(("interface", _default_interface_name),),
    )


def _fs_rows(prefix: str, scope: Scope, what: str, *fs: str) -> list[MetricDef[Any]]:
    """Filesystem rows; ``fs`` is the attribute path to the ``FsStats`` (empty: the record)."""
    return [
        _gauge(
            f"{prefix}_available_bytes",
            f"Bytes available on the filesystem holding {what}.",
            scope,
            _field(*fs, "available_bytes"),
        ),
        _gauge(
            f"{prefix}_capacity_bytes",
            f"Total bytes of the filesystem holding {what}.",
            scope,
            _field(*fs, "capacity_bytes"),
        ),
        _gauge(
            f"{prefix}_used_bytes",
            f"Bytes used by {what}.",
            scope,
            _field(*fs, "used_bytes"),
        ),
        _gauge(
            f"{prefix}_inodes",
            f"Total inodes of the filesystem holding {what}.",
            scope,
            _field(*fs, "inodes"),
        ),
        _gauge(
            f"{prefix}_inodes_free",
            f"Free inodes of the filesystem holding {what}.",
            scope,
            _field(*fs, "inodes_free"),
        ),
        _gauge(
            f"{prefix}_inodes_used",
            f"Inodes used by {what}.",
            scope,
            _field(*fs, "inodes_used"),
        ),
    ]


def _node_rows() -> list[MetricDef[Any]]:
    return [
        *_workload_rows("node", Scope.NODE, "node"),
        *_interface_rows("node", Scope.NODE_INTERFACE, "node"),
        _default_interface_row("node", Scope.NODE, "node"),
        *_fs_rows(
            "kubestats_node_filesystem",
            Scope.NODE_FILESYSTEM,
            "the node's root, image or container filesystem (label filesystem)",
        ),
        _gauge(
            "kubestats_node_pid_max",
            "Highest process ID the node's kernel hands out (rlimit maxpid).",
            Scope.NODE,
            _field("rlimit", "max_pid"),
        ),
        _gauge(
            "kubestats_node_processes",
            "Number of processes running on the node (rlimit curproc).",
            Scope.NODE,
            _field("rlimit", "processes"),
        ),
    ]


def _pod_rows() -> list[MetricDef[Any]]:
    return [
        *_workload_rows("pod", Scope.POD, "pod"),
        *_interface_rows("pod", Scope.POD_INTERFACE, "pod"),
        _default_interface_row("pod", Scope.POD, "pod"),
        *_fs_rows(
            "kubestats_pod_ephemeral_storage",
            Scope.POD,
            "the pod's ephemeral storage (containers' writable layers, logs, emptyDir volumes)",
            "ephemeral_storage",
        ),
        _gauge(
            "kubestats_pod_processes",
            "Number of processes running in the pod.",
            Scope.POD,
            _field("process_count"),
        ),
        *_fs_rows("kubestats_volume", Scope.VOLUME, "a pod volume", "fs"),
    ]


def _accelerator_rows() -> list[MetricDef[Any]]:
    return [
        _gauge(
            "kubestats_container_accelerator_memory_total_bytes",
            "Total memory of an accelerator (GPU) attached to the container.",
            Scope.ACCELERATOR,
            _field("memory_total_bytes"),
        ),
        _gauge(
            "kubestats_container_accelerator_memory_used_bytes",
            "Allocated memory of an accelerator (GPU) attached to the container.",
            Scope.ACCELERATOR,
            _field("memory_used_bytes"),
        ),
        _gauge(
            "kubestats_container_accelerator_duty_cycle_ratio",
            "Fraction of the last sample period (10s) an accelerator was busy.",
            Scope.ACCELERATOR,
            _field("duty_cycle_ratio"),
        ),
    ]


def _container_rows() -> list[MetricDef[Any]]:
    return [
        *_workload_rows("container", Scope.CONTAINER, "container"),
        *_fs_rows(
            "kubestats_container_rootfs",
            Scope.CONTAINER,
            "the container's writable layer",
            "rootfs",
        ),
        *_fs_rows("kubestats_container_logs", Scope.CONTAINER, "the container's logs", "logs"),
        *_accelerator_rows(),
    ]


def _phase_value(record: PodPhase) -> Value:
    return 1 if record.phase == record.current else 0


def _pod_status_rows() -> list[MetricDef[Any]]:
    return [
        _gauge(
            "kubestats_pod_phase",
            "1 for the pod's current phase (label phase), 0 for the four others; from /pods.",
            Scope.POD_PHASE,
            _phase_value,
        ),
    ]


def _pod_container_rows() -> list[MetricDef[Any]]:
    return [
        _gauge(
            "kubestats_container_cpu_request_cores",
            "CPU the container requests in its pod spec, in cores; absent when not set.",
            Scope.POD_CONTAINER,
            _field("resources", "cpu_request_cores"),
        ),
        _gauge(
            "kubestats_container_cpu_limit_cores",
            "CPU limit of the container in its pod spec, in cores; absent when not set.",
            Scope.POD_CONTAINER,
            _field("resources", "cpu_limit_cores"),
        ),
        _gauge(
            "kubestats_container_memory_request_bytes",
            "Memory the container requests in its pod spec, in bytes; absent when not set.",
            Scope.POD_CONTAINER,
            _field("resources", "memory_request_bytes"),
        ),
        _gauge(
            "kubestats_container_memory_limit_bytes",
            "Memory limit of the container in its pod spec, in bytes; absent when not set.",
            Scope.POD_CONTAINER,
            _field("resources", "memory_limit_bytes"),
        ),
        _counter(
            "kubestats_container_restarts_total",
            "Times the kubelet restarted the container (status restartCount); from /pods.",
            Scope.POD_CONTAINER,
            _field("restart_count"),
        ),
    ]


def _running_pods(record: NodeResult) -> Value | None:
    if record.pods is None:
        return None
    return sum(1 for pod in record.pods if pod.phase == "Running")


def _scrape_success(record: NodeResult) -> Value:
    return 1 if record.failure is None else 0


def _scrape_duration(record: NodeResult) -> Value:
    return record.duration_seconds


def _pods_scrape_success(record: NodeResult) -> Value | None:
    if record.pods is None and record.pods_failure is None:
        return None  # /pods is not read from this source
    return 1 if record.pods_failure is None else 0


def _scrape_errors(record: ScrapeErrorCount) -> Value:
    return record.total


def _exporter_rows() -> list[MetricDef[Any]]:
    return [
        _gauge(
            "kubestats_node_running_pods",
            "Pods in phase Running on the node, from the kubelet's /pods.",
            Scope.SCRAPE,
            _running_pods,
        ),
        _gauge(
            "kubestats_cluster_nodes",
            "Nodes the API server listed (matching --node-selector); cluster-wide mode only.",
            Scope.COLLECTION,
            _field("nodes"),
        ),
        _gauge(
            "kubestats_exporter_scrape_success",
            "1 if the last scrape of the node's kubelet Summary API succeeded, else 0.",
            Scope.SCRAPE,
            _scrape_success,
        ),
        _gauge(
            "kubestats_exporter_scrape_duration_seconds",
            "Seconds the last scrape of the node's kubelet took (fetch and parse).",
            Scope.SCRAPE,
            _scrape_duration,
        ),
        _gauge(
            "kubestats_exporter_scrape_timestamp_seconds",
            "Unix time the last scrape of the node's kubelet Summary API finished.",
            Scope.SCRAPE,
            _field("scraped_at"),
        ),
        _gauge(
            "kubestats_exporter_pods_scrape_success",
            "1 if the last read of the node's kubelet /pods succeeded, else 0.",
            Scope.SCRAPE,
            _pods_scrape_success,
        ),
        _counter(
            "kubestats_exporter_scrape_errors_total",
            "Failed scrapes of the node's kubelet since the exporter started, by reason.",
            Scope.SCRAPE_ERROR,
            _scrape_errors,
        ),
        _gauge(
            "kubestats_exporter_last_collection_timestamp_seconds",
            "Unix time the last complete collection round finished: the age of /metrics.",
            Scope.COLLECTION,
            _field("finished_at"),
        ),
        _gauge(
            "kubestats_exporter_collection_duration_seconds",
            "Seconds the last collection round took, all nodes together.",
            Scope.COLLECTION,
            _field("duration_seconds"),
        ),
        _counter(
            "kubestats_exporter_node_list_errors_total",
            "Failed node listings since the exporter started (cluster-wide mode).",
            Scope.COLLECTION,
            lambda r: r.node_list_errors if r.cluster_wide else None,
        ),
    ]


# Rows of the same record types are kept together so the exposition reads node, system
# containers, pods, volumes, containers, then the exporter's own metrics.
METRICS: tuple[MetricDef[Any], ...] = (
    *_node_rows(),
    *_workload_rows("system_container", Scope.SYSTEM_CONTAINER, "system container"),
    *_pod_rows(),
    *_pod_status_rows(),
    *_container_rows(),
    *_pod_container_rows(),
    *_exporter_rows(),
)

# Records each scope's extractors read; collect relies on this mapping being complete.
SCOPE_RECORD_TYPES: dict[Scope, type] = {
    Scope.NODE: NodeStats,
    Scope.SYSTEM_CONTAINER: ContainerStats,
    Scope.POD: PodStats,
    Scope.CONTAINER: ContainerStats,
    Scope.NODE_INTERFACE: InterfaceStats,
    Scope.POD_INTERFACE: InterfaceStats,
    Scope.NODE_FILESYSTEM: FsStats,
    Scope.VOLUME: VolumeStats,
    Scope.ACCELERATOR: AcceleratorStats,
    Scope.POD_PHASE: PodPhase,
    Scope.POD_CONTAINER: PodContainer,
    Scope.SCRAPE: NodeResult,
    Scope.SCRAPE_ERROR: ScrapeErrorCount,
    Scope.COLLECTION: CollectionRound,
}
