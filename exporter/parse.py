"""Kubelet Summary JSON -> ``exporter.model`` records. The only module that knows JSON keys.

Field names and units follow k8s.io/kubelet ``pkg/apis/stats/v1alpha1`` (``Summary``,
``NodeStats``, ``PodStats``, ``ContainerStats``, ...). The kubelet omits optional fields freely
(fresh containers, Windows nodes, cgroup v2, runtimes without ``usageNanoCores``): an absent or
``null`` field becomes ``None``, an absent or ``null`` list becomes empty, and a present 0 stays 0.

Exception tree::

    SummaryParseError              the body is not a usable kubelet Summary; ``reason`` is the
    |                              label value for kubestats_exporter_scrape_errors_total
    +-- SummaryJSONError           not JSON at all (reason "invalid_json")
    +-- SummaryStructureError      JSON whose shape does not match the kubelet's types
                                   (reason "invalid_data"); ``path`` says where, e.g.
                                   ``pods[3].containers[0].cpu.usageCoreNanoSeconds``
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NoReturn

from exporter.model import (
    AcceleratorStats,
    ContainerStats,
    CPUStats,
    FsStats,
    InterfaceStats,
    IOStats,
    MemoryStats,
    NetworkStats,
    NodeStats,
    PodStats,
    Pressure,
    PressureData,
    RlimitStats,
    Summary,
    SwapStats,
    VolumeStats,
)

__all__ = [
    "SummaryJSONError",
    "SummaryParseError",
    "SummaryStructureError",
    "parse_summary",
]

_NANO = 1e9
# Go's zero metav1.Time: the kubelet sends it for a time it never set.
_GO_ZERO_TIME_PREFIX = "0001-01-01T00:00:00"

JSONObject = dict[str, Any]

_INTERFACE_KEYS = ("rxBytes", "rxErrors", "txBytes", "txErrors")
_FS_KEYS = ("availableBytes", "capacityBytes", "usedBytes", "inodesFree", "inodes", "inodesUsed")
_MEMORY_KEYS = (
    "availableBytes",
    "usageBytes",
    "workingSetBytes",
    "rssBytes",
    "pageFaults",
    "majorPageFaults",
)
_PSI_AVERAGE_KEYS = ("avg10", "avg60", "avg300")
_PSI_KEYS = ("total", *_PSI_AVERAGE_KEYS)
_NUMBER_TYPES = frozenset((int, float, type(None)))


class SummaryParseError(Exception):
    """The body is not a usable kubelet Summary."""

    reason = "invalid_data"


class SummaryJSONError(SummaryParseError):
    """The body is not JSON."""

    reason = "invalid_json"


class SummaryStructureError(SummaryParseError):
    """The JSON does not have the kubelet Summary's shape; ``path`` names the offending field."""

    reason = "invalid_data"

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


def parse_summary(body: bytes | str) -> Summary:
    """Parse a ``/stats/summary`` body. Raises one ``SummaryParseError`` saying what and where."""
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise SummaryJSONError(
            f"body is not JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from err
    except (UnicodeDecodeError, ValueError) as err:
        raise SummaryJSONError(f"body is not JSON: {err}") from err
    return _Parser().summary(document)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON (the kubelet never sends it)")


def _describe(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _wrong(where: str, key: str, expected: str, value: object) -> SummaryStructureError:
    return SummaryStructureError(f"{where}.{key}", f"expected {expected}, got {_describe(value)}")


def _object(parent: JSONObject, key: str, where: str) -> JSONObject | None:
    value = parent.get(key)
    if value is None or type(value) is dict:
        return value
    raise _wrong(where, key, "object", value)


def _list(parent: JSONObject, key: str, where: str) -> list[Any]:
    value = parent.get(key)
    if value is None:
        return []
    if type(value) is list:
        return value
    raise _wrong(where, key, "list", value)


def _uint(parent: JSONObject, key: str, where: str) -> int | None:
    value = parent.get(key)
    if value is None:
        return None
    if type(value) is int and value >= 0:
        return value
    raise _wrong(where, key, "non-negative integer", value)


def _int(parent: JSONObject, key: str, where: str) -> int | None:
    value = parent.get(key)
    if value is None or type(value) is int:
        return value
    raise _wrong(where, key, "integer", value)


def _uints(parent: JSONObject, keys: tuple[str, ...], where: str) -> list[int | None]:
    """Several unsigned fields at once: one call instead of one per field (hot path)."""
    values = list(map(parent.get, keys))
    for key, value in zip(keys, values, strict=True):
        if value is not None and (type(value) is not int or value < 0):
            raise _wrong(where, key, "non-negative integer", value)
    return values


def _number(parent: JSONObject, key: str, where: str) -> float | None:
    value = parent.get(key)
    if value is None:
        return None
    if type(value) is int or type(value) is float:
        return float(value)
    raise _wrong(where, key, "number", value)


def _is_number(value: object) -> bool:
    return value is None or type(value) is int or type(value) is float


def _nanos_as_seconds(parent: JSONObject, key: str, where: str) -> float | None:
    value = _uint(parent, key, where)
    return None if value is None else value / _NANO


def _percent_as_ratio(parent: JSONObject, key: str, where: str) -> float | None:
    value = _number(parent, key, where)
    return None if value is None else value / 100


def _string(parent: JSONObject, key: str, where: str, *, required: bool) -> str:
    value = parent.get(key)
    if type(value) is str:
        return value
    if value is None and not required:
        return ""
    if value is None:
        raise SummaryStructureError(f"{where}.{key}", "missing (required)")
    raise _wrong(where, key, "string", value)


def _element(value: object, where: str) -> JSONObject:
    if type(value) is dict:
        return value
    raise SummaryStructureError(where, f"expected object, got {_describe(value)}")


class _Parser:
    """One parse. Holds a memo of parsed times: a Summary repeats the same few timestamps."""

    def __init__(self) -> None:
        self._times: dict[str, float | None] = {}

    def summary(self, document: object) -> Summary:
        root = _element(document, "(document)")
        node = _object(root, "node", "(document)")
        if node is None:
            raise SummaryStructureError("node", "missing (required)")
        pods = tuple(
            self.pod(_element(raw, f"pods[{i}]"), f"pods[{i}]")
            for i, raw in enumerate(_list(root, "pods", "(document)"))
        )
        return Summary(node=self.node(node, "node"), pods=pods)

    def time(self, parent: JSONObject, key: str, where: str) -> float | None:
        value = parent.get(key)
        if value is None:
            return None
        if type(value) is not str:
            raise _wrong(where, key, "RFC 3339 time string", value)
        try:
            return self._times[value]
        except KeyError:
            pass
        if value.startswith(_GO_ZERO_TIME_PREFIX):
            seconds = None
        else:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                raise _wrong(where, key, "RFC 3339 time string", value) from None
            if parsed.tzinfo is None:
                raise _wrong(where, key, "RFC 3339 time with a zone", value)
            seconds = parsed.timestamp()
        self._times[value] = seconds
        return seconds

    def node(self, raw: JSONObject, where: str) -> NodeStats:
        runtime = _object(raw, "runtime", where)
        runtime_where = f"{where}.runtime"
        return NodeStats(
            name=_string(raw, "nodeName", where, required=True),
            start_time=self.time(raw, "startTime", where),
            system_containers=self.containers(raw, "systemContainers", where),
            cpu=self.cpu(raw, where),
            memory=self.memory(raw, where),
            io=self.io(raw, where),
            swap=self.swap(raw, where),
            network=self.network(raw, where),
            fs=self.fs(raw, "fs", where),
            image_fs=None if runtime is None else self.fs(runtime, "imageFs", runtime_where),
            container_fs=(
                None if runtime is None else self.fs(runtime, "containerFs", runtime_where)
            ),
            rlimit=self.rlimit(raw, where),
        )

    def pod(self, raw: JSONObject, where: str) -> PodStats:
        ref = _object(raw, "podRef", where)
        if ref is None:
            raise SummaryStructureError(f"{where}.podRef", "missing (required)")
        ref_where = f"{where}.podRef"
        process = _object(raw, "process_stats", where)
        volumes = tuple(
            self.volume(_element(item, f"{where}.volume[{i}]"), f"{where}.volume[{i}]")
            for i, item in enumerate(_list(raw, "volume", where))
        )
        return PodStats(
            name=_string(ref, "name", ref_where, required=True),
            namespace=_string(ref, "namespace", ref_where, required=True),
            uid=_string(ref, "uid", ref_where, required=False),
            start_time=self.time(raw, "startTime", where),
            containers=self.containers(raw, "containers", where),
            cpu=self.cpu(raw, where),
            memory=self.memory(raw, where),
            io=self.io(raw, where),
            swap=self.swap(raw, where),
            network=self.network(raw, where),
            volumes=volumes,
            ephemeral_storage=self.fs(raw, "ephemeral-storage", where),
            process_count=(
                None
                if process is None
                else _uint(process, "process_count", f"{where}.process_stats")
            ),
        )

    def containers(self, parent: JSONObject, key: str, where: str) -> tuple[ContainerStats, ...]:
        return tuple(
            self.container(_element(item, f"{where}.{key}[{i}]"), f"{where}.{key}[{i}]")
            for i, item in enumerate(_list(parent, key, where))
        )

    def container(self, raw: JSONObject, where: str) -> ContainerStats:
        accelerators = tuple(
            self.accelerator(
                _element(item, f"{where}.accelerators[{i}]"), f"{where}.accelerators[{i}]"
            )
            for i, item in enumerate(_list(raw, "accelerators", where))
        )
        return ContainerStats(
            name=_string(raw, "name", where, required=True),
            start_time=self.time(raw, "startTime", where),
            cpu=self.cpu(raw, where),
            memory=self.memory(raw, where),
            io=self.io(raw, where),
            swap=self.swap(raw, where),
            rootfs=self.fs(raw, "rootfs", where),
            logs=self.fs(raw, "logs", where),
            accelerators=accelerators,
        )

    def accelerator(self, raw: JSONObject, where: str) -> AcceleratorStats:
        return AcceleratorStats(
            make=_string(raw, "make", where, required=False),
            model=_string(raw, "model", where, required=False),
            id=_string(raw, "id", where, required=False),
            memory_total_bytes=_uint(raw, "memoryTotal", where),
            memory_used_bytes=_uint(raw, "memoryUsed", where),
            duty_cycle_ratio=_percent_as_ratio(raw, "dutyCycle", where),
        )

    def cpu(self, parent: JSONObject, where: str) -> CPUStats | None:
        raw = _object(parent, "cpu", where)
        if raw is None:
            return None
        where = f"{where}.cpu"
        return CPUStats(
            time=self.time(raw, "time", where),
            usage_cores=_nanos_as_seconds(raw, "usageNanoCores", where),
            usage_seconds=_nanos_as_seconds(raw, "usageCoreNanoSeconds", where),
            pressure=self.pressure(raw, where),
        )

    def memory(self, parent: JSONObject, where: str) -> MemoryStats | None:
        raw = _object(parent, "memory", where)
        if raw is None:
            return None
        where = f"{where}.memory"
        available, usage, working_set, rss, page_faults, major_page_faults = _uints(
            raw, _MEMORY_KEYS, where
        )
        return MemoryStats(
            time=self.time(raw, "time", where),
            available_bytes=available,
            usage_bytes=usage,
            working_set_bytes=working_set,
            rss_bytes=rss,
            page_faults=page_faults,
            major_page_faults=major_page_faults,
            pressure=self.pressure(raw, where),
        )

    def io(self, parent: JSONObject, where: str) -> IOStats | None:
        raw = _object(parent, "io", where)
        if raw is None:
            return None
        where = f"{where}.io"
        return IOStats(time=self.time(raw, "time", where), pressure=self.pressure(raw, where))

    def pressure(self, parent: JSONObject, where: str) -> Pressure | None:
        raw = _object(parent, "psi", where)
        if raw is None:
            return None
        where = f"{where}.psi"
        return Pressure(
            some=self.pressure_data(raw, "some", where),
            full=self.pressure_data(raw, "full", where),
        )

    def pressure_data(self, parent: JSONObject, key: str, where: str) -> PressureData | None:
        raw = _object(parent, key, where)
        if raw is None:
            return None
        where = f"{where}.{key}"
        # The kubelet's type comment says nanoseconds, but it copies the kernel's PSI "total",
        # which is microseconds: cAdvisor and the OpenTelemetry kubeletstats receiver both divide
        # by 1e6, and the 1.35 fixture's node cpu total (32884223) only makes sense as ~33 s.
        total, avg10, avg60, avg300 = map(raw.get, _PSI_KEYS)
        # One combined check on the hot path; the field-by-field checks below only run to name
        # the offending field.
        if not (
            (total is None or (type(total) is int and total >= 0))
            and type(avg10) in _NUMBER_TYPES
            and type(avg60) in _NUMBER_TYPES
            and type(avg300) in _NUMBER_TYPES
        ):
            _uint(raw, "total", where)
            for average_key in _PSI_AVERAGE_KEYS:
                _number(raw, average_key, where)  # raises, naming the first bad field
        return PressureData(
            None if total is None else total / 1e6,
            None if avg10 is None else avg10 / 100,
            None if avg60 is None else avg60 / 100,
            None if avg300 is None else avg300 / 100,
        )

    def swap(self, parent: JSONObject, where: str) -> SwapStats | None:
        raw = _object(parent, "swap", where)
        if raw is None:
            return None
        where = f"{where}.swap"
        return SwapStats(
            time=self.time(raw, "time", where),
            available_bytes=_uint(raw, "swapAvailableBytes", where),
            usage_bytes=_uint(raw, "swapUsageBytes", where),
        )

    def network(self, parent: JSONObject, where: str) -> NetworkStats | None:
        raw = _object(parent, "network", where)
        if raw is None:
            return None
        where = f"{where}.network"
        interfaces = tuple(
            self.interface(_element(item, f"{where}.interfaces[{i}]"), f"{where}.interfaces[{i}]")
            for i, item in enumerate(_list(raw, "interfaces", where))
        )
        default = self.interface(raw, where)
        if not interfaces and _has_counters(default):
            interfaces = (default,)
        return NetworkStats(
            time=self.time(raw, "time", where),
            default_interface=default.name or None,
            interfaces=interfaces,
        )

    def interface(self, raw: JSONObject, where: str) -> InterfaceStats:
        rx_bytes, rx_errors, tx_bytes, tx_errors = _uints(raw, _INTERFACE_KEYS, where)
        return InterfaceStats(
            name=_string(raw, "name", where, required=False),
            rx_bytes=rx_bytes,
            rx_errors=rx_errors,
            tx_bytes=tx_bytes,
            tx_errors=tx_errors,
        )

    def fs(self, parent: JSONObject, key: str, where: str) -> FsStats | None:
        raw = _object(parent, key, where)
        if raw is None:
            return None
        return self.fs_fields(raw, f"{where}.{key}")

    def fs_fields(self, raw: JSONObject, where: str) -> FsStats:
        available, capacity, used, inodes_free, inodes, inodes_used = _uints(raw, _FS_KEYS, where)
        return FsStats(
            time=self.time(raw, "time", where),
            available_bytes=available,
            capacity_bytes=capacity,
            used_bytes=used,
            inodes_free=inodes_free,
            inodes=inodes,
            inodes_used=inodes_used,
        )

    def volume(self, raw: JSONObject, where: str) -> VolumeStats:
        pvc = _object(raw, "pvcRef", where)
        pvc_where = f"{where}.pvcRef"
        return VolumeStats(
            name=_string(raw, "name", where, required=False),
            pvc_name=None if pvc is None else _string(pvc, "name", pvc_where, required=True),
            pvc_namespace=(
                None if pvc is None else _string(pvc, "namespace", pvc_where, required=False)
            ),
            fs=self.fs_fields(raw, where),
        )

    def rlimit(self, parent: JSONObject, where: str) -> RlimitStats | None:
        raw = _object(parent, "rlimit", where)
        if raw is None:
            return None
        where = f"{where}.rlimit"
        return RlimitStats(
            time=self.time(raw, "time", where),
            max_pid=_int(raw, "maxpid", where),
            processes=_int(raw, "curproc", where),
        )


def _has_counters(interface: InterfaceStats) -> bool:
    return bool(interface.name) or any(
        value is not None
        for value in (
            interface.rx_bytes,
            interface.rx_errors,
            interface.tx_bytes,
            interface.tx_errors,
        )
    )
