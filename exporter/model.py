"""Typed, frozen records of one kubelet Summary (``/stats/summary``), in base units, and of
the outcome of scraping one kubelet.

Every optional kubelet field is ``None`` when the kubelet left it out; it never becomes 0.
Conversions happen in ``exporter.parse``: nanoseconds and core-nanoseconds become seconds,
nanocores become cores, percentages become ratios (0..1), RFC 3339 times become Unix seconds.
Nothing here knows JSON keys.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PressureData:
    """One line of a PSI file (``some`` or ``full``)."""

    total_seconds: float | None
    avg10_ratio: float | None
    avg60_ratio: float | None
    avg300_ratio: float | None


@dataclass(frozen=True, slots=True)
class Pressure:
    """Pressure stall information for one resource (cpu, memory or io)."""

    some: PressureData | None
    full: PressureData | None


@dataclass(frozen=True, slots=True)
class CPUStats:
    time: float | None
    usage_cores: float | None
    usage_seconds: float | None
    pressure: Pressure | None


@dataclass(frozen=True, slots=True)
class MemoryStats:
    time: float | None
    available_bytes: int | None
    usage_bytes: int | None
    working_set_bytes: int | None
    rss_bytes: int | None
    page_faults: int | None
    major_page_faults: int | None
    pressure: Pressure | None


@dataclass(frozen=True, slots=True)
class IOStats:
    time: float | None
    pressure: Pressure | None


@dataclass(frozen=True, slots=True)
class SwapStats:
    time: float | None
    available_bytes: int | None
    usage_bytes: int | None


@dataclass(frozen=True, slots=True)
class InterfaceStats:
    name: str
    rx_bytes: int | None
    rx_errors: int | None
    tx_bytes: int | None
    tx_errors: int | None


@dataclass(frozen=True, slots=True)
class NetworkStats:
    """Network counters of a node or a pod.

    ``interfaces`` lists every interface; when the kubelet sent only the default interface (old
    kubelets, Windows) it is that one. ``default_interface`` is ``None`` when the kubelet found no
    default interface (it sends an empty name then).
    """

    time: float | None
    default_interface: str | None
    interfaces: tuple[InterfaceStats, ...]


@dataclass(frozen=True, slots=True)
class FsStats:
    time: float | None
    available_bytes: int | None
    capacity_bytes: int | None
    used_bytes: int | None
    inodes_free: int | None
    inodes: int | None
    inodes_used: int | None


@dataclass(frozen=True, slots=True)
class VolumeStats:
    """A pod volume. ``pvc_name`` is ``None`` unless the volume is a PersistentVolumeClaim."""

    name: str
    pvc_name: str | None
    pvc_namespace: str | None
    fs: FsStats


@dataclass(frozen=True, slots=True)
class RlimitStats:
    time: float | None
    max_pid: int | None
    processes: int | None


@dataclass(frozen=True, slots=True)
class AcceleratorStats:
    make: str
    model: str
    id: str
    memory_total_bytes: int | None
    memory_used_bytes: int | None
    duty_cycle_ratio: float | None


@dataclass(frozen=True, slots=True)
class ContainerStats:
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


@dataclass(frozen=True, slots=True)
class PodStats:
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


@dataclass(frozen=True, slots=True)
class NodeStats:
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


@dataclass(frozen=True, slots=True)
class Summary:
    node: NodeStats
    pods: tuple[PodStats, ...]


@dataclass(frozen=True, slots=True)
class ScrapeFailure:
    """Why one kubelet could not be scraped. ``reason`` is a label value listed in
    ``exporter.source``; ``message`` is for logs and never holds a token."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class NodeResult:
    """The outcome of scraping one kubelet: exactly one of ``summary`` and ``failure`` is set.

    ``node`` names the scrape target for the exporter's self metrics; data metrics take their
    ``node`` label from the Summary's own ``nodeName``.
    """

    node: str
    summary: Summary | None
    failure: ScrapeFailure | None
    duration_seconds: float


@dataclass(frozen=True, slots=True)
class ScrapeErrorCount:
    """How many scrapes of ``node`` failed with ``reason`` since the exporter started."""

    node: str
    reason: str
    total: int
