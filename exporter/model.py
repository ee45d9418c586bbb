"""Typed, frozen records of one kubelet Summary (``/stats/summary``), in base units, and of
the outcome of scraping one kubelet.

Every optional kubelet field is ``None`` when the kubelet left it out; it never becomes 0.
Conversions happen in ``exporter.parse``: nanoseconds and core-nanoseconds become seconds,
nanocores become cores, percentages become ratios (0..1), RFC 3339 times become Unix seconds.
Nothing here knows JSON keys.
"""

from __future__ import annotations

from typing import NamedTuple

from exporter.pods import Pod


class PressureData(NamedTuple):
    """One line of a PSI file (``some`` or ``full``)."""

    total_seconds: float | None
    avg10_ratio: float | None
    avg60_ratio: float | None
    avg300_ratio: float | None


class Pressure(NamedTuple):
    """Pressure stall information for one resource (cpu, memory or io)."""

    some: PressureData | None
    full: PressureData | None


class CPUStats(NamedTuple):
    time: float | None
    usage_cores: float | None
    usage_seconds: float | None
    pressure: Pressure | None


class MemoryStats(NamedTuple):
    time: float | None
    available_bytes: int | None
    usage_bytes: int | None
    working_set_bytes: int | None
    rss_bytes: int | None
    page_faults: int | None
    major_page_faults: int | None
    pressure: Pressure | None


class IOStats(NamedTuple):
    time: float | None
    pressure: Pressure | None


class SwapStats(NamedTuple):
    time: float | None
    available_bytes: int | None
    usage_bytes: int | None


class InterfaceStats(NamedTuple):
    name: str
    rx_bytes: int | None
    rx_errors: int | None
    tx_bytes: int | None
    tx_errors: int | None


class NetworkStats(NamedTuple):
    """Network counters of a node or a pod.

    ``interfaces`` lists every interface; when the kubelet sent only the default interface (old
    kubelets, Windows) it is that one. ``default_interface`` is ``None`` when the kubelet found no
    default interface (it sends an empty name then).
    """

    time: float | None
    default_interface: str | None
    interfaces: tuple[InterfaceStats, ...]


class FsStats(NamedTuple):
    time: float | None
    available_bytes: int | None
    capacity_bytes: int | None
    used_bytes: int | None
    inodes_free: int | None
    inodes: int | None
    inodes_used: int | None


class VolumeStats(NamedTuple):
    """A pod volume. ``pvc_name`` is ``None`` unless the volume is a PersistentVolumeClaim."""

    name: str
    pvc_name: str | None
    pvc_namespace: str | None
    fs: FsStats


class RlimitStats(NamedTuple):
    time: float | None
    max_pid: int | None
    processes: int | None


class AcceleratorStats(NamedTuple):
    make: str
    model: str
    id: str
    memory_total_bytes: int | None
    memory_used_bytes: int | None
    duty_cycle_ratio: float | None


class ContainerStats(NamedTuple):
    """A pod's container, or a node's system container (kubelet, runtime, misc, pods, ...)."""

    name: str
    start_time: float | None
    cpu: CPUStats | None
    memory: MemoryStats | None
    io: IOStats | None
    swap: SwapStats | None
    rootfs: FsStats | None
    logs: FsStats | None
    accelerators: tuple[AcceleratorStats, ...]


class PodStats(NamedTuple):
    name: str
    namespace: str
    uid: str
    start_time: float | None
    containers: tuple[ContainerStats, ...]
    cpu: CPUStats | None
    memory: MemoryStats | None
    io: IOStats | None
    swap: SwapStats | None
    network: NetworkStats | None
    volumes: tuple[VolumeStats, ...]
    ephemeral_storage: FsStats | None
    process_count: int | None


class NodeStats(NamedTuple):
    name: str
    start_time: float | None
    system_containers: tuple[ContainerStats, ...]
    cpu: CPUStats | None
    memory: MemoryStats | None
    io: IOStats | None
    swap: SwapStats | None
    network: NetworkStats | None
    fs: FsStats | None
    image_fs: FsStats | None
    container_fs: FsStats | None
    rlimit: RlimitStats | None


class Summary(NamedTuple):
    node: NodeStats
    pods: tuple[PodStats, ...]


class ScrapeFailure(NamedTuple):
    """Why one kubelet could not be scraped. ``reason`` is a label value listed in
    ``exporter.source``; ``message`` is for logs and never holds a token."""

    reason: str
    message: str


class NodeResult(NamedTuple):
    """The outcome of scraping one kubelet: at most one of ``summary`` and ``failure`` is set
    (exactly one once the Summary was fetched), and likewise ``pods`` and ``pods_failure`` for
    ``/pods`` (both ``None`` when ``/pods`` is not read, e.g. for a saved payload).

    ``node`` names the scrape target for the exporter's self metrics; data metrics take their
    ``node`` label from the Summary's own ``nodeName``. ``scraped_at`` is the Unix time the
    Summary fetch finished, ``None`` when not recorded.
    """

    node: str
    summary: Summary | None
    failure: ScrapeFailure | None
    duration_seconds: float
    pods: tuple[Pod, ...] | None = None
    pods_failure: ScrapeFailure | None = None
    scraped_at: float | None = None


class CollectionRound(NamedTuple):
    """One background collection round over every target.

    In cluster-wide mode ``nodes`` is how many nodes the last successful listing returned
    (``None`` before one succeeded) and ``node_list_errors`` counts failed listings since the
    exporter started; outside it they are ``None`` and 0.
    """

    finished_at: float
    duration_seconds: float
    cluster_wide: bool = False
    nodes: int | None = None
    node_list_errors: int = 0


class PodPhase(NamedTuple):
    """One of the five pod phases, for the one-series-per-phase pod phase metric."""

    phase: str
    current: str | None


class ScrapeErrorCount(NamedTuple):
    """How many scrapes of ``node`` failed with ``reason`` since the exporter started."""

    node: str
    reason: str
    total: int
