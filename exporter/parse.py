"""Kubelet Summary JSON -> ``exporter.model`` records. The only module that knows JSON keys.

Field names and units follow k8s.io/kubelet ``pkg/apis/stats/v1alpha1`` (``Summary``,
``NodeStats``, ``PodStats``, ``ContainerStats``, ...). The kubelet omits optional fields freely
(fresh containers, Windows nodes, cgroup v2, runtimes without ``usageNanoCores``): an absent or
``null`` field becomes ``None``, an absent or ``null`` list becomes empty, and a present 0 stays 0.

This runs once per node per collection round over some 5,000 JSON objects, so the happy path is
written for speed: each block's fields are read and type-checked together, and no location
string is built until something is wrong. A problem raises an internal ``_Misfit`` that every
enclosing level extends with its key on the way out; ``parse_summary`` turns it into the public
error with the full path.

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
from collections.abc import Callable
from datetime import datetime
from operator import itemgetter
from typing import Any, NoReturn, TypeVar

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

T = TypeVar("T")
JSONObject = dict[str, Any]

# Go's zero metav1.Time: the kubelet sends it for a time it never set.
_GO_ZERO_TIME_PREFIX = "0001-01-01T00:00:00"

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
_NUMBER_TYPES = frozenset((int, float, type(None)))
_read_fs = itemgetter(*_FS_KEYS)
_read_memory = itemgetter(*_MEMORY_KEYS)
_SixUints = tuple[int | None, int | None, int | None, int | None, int | None, int | None]


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


class _Misfit(Exception):  # noqa: N818 - internal, never leaves this module
    """A problem found somewhere below the current level; ``keys`` grows outwards."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.keys: list[str] = []

    def within(self, key: str) -> _Misfit:
        self.keys.append(key)
        return self

    def path(self) -> str:
        return ".".join(reversed(self.keys))


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
    try:
        return _Parser().summary(document)
    except _Misfit as misfit:
        raise SummaryStructureError(misfit.path(), misfit.problem) from None


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON (the kubelet never sends it)")


def _describe(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _wrong(key: str, expected: str, value: object) -> _Misfit:
    return _Misfit(f"expected {expected}, got {_describe(value)}").within(key)


def _missing(key: str) -> _Misfit:
    return _Misfit("missing (required)").within(key)


def _object(raw: object) -> JSONObject:
    """A list element that must be an object; the list adds the element's index."""
    if type(raw) is dict:
        return raw
    raise _Misfit(f"expected object, got {_describe(raw)}")


def _check_absent(raw: object, key: str) -> None:
    """Off the hot path: a block that is not an object must be absent (or null)."""
    if raw is not None:
        raise _wrong(key, "object", raw)


def _block(raw: object, key: str) -> JSONObject | None:
    if raw is None or type(raw) is dict:
        return raw
    raise _wrong(key, "object", raw)


def _each(parent: JSONObject, key: str, parse: Callable[[Any], T]) -> tuple[T, ...]:
    """Every element of the list ``parent[key]`` parsed; an absent or null list is empty."""
    items = parent.get(key)
    if items is None:
        return ()
    if type(items) is not list:
        raise _wrong(key, "list", items)
    try:
        return tuple(map(parse, items))
    except _Misfit:
        # Parsing is pure, so the slow path parses again one by one to name the element.
        for index, item in enumerate(items):
            try:
                parse(item)
            except _Misfit as misfit:
                raise misfit.within(f"{key}[{index}]") from None
        raise


def _uints(raw: JSONObject, keys: tuple[str, ...]) -> tuple[Any, ...]:
    """Unsigned integer fields (or ``None``), read and checked together."""
    values = tuple(map(raw.get, keys))
    for key, value in zip(keys, values, strict=True):
        if value is not None and (type(value) is not int or value < 0):
            raise _wrong(key, "non-negative integer", value)
    return values


def _six_uints(
    raw: JSONObject, keys: tuple[str, ...], read: Callable[[JSONObject], Any]
) -> _SixUints:
    """The six unsigned fields of a memory or filesystem block, ``read`` = itemgetter(*keys).

    The hot path of a parse (two filesystems and a memory block per container): when all six
    are present, non-negative integers, one C-level read and one expression check them all;
    anything else (a field left out, null, or wrong) takes the field-by-field path.
    """
    try:
        values: tuple[Any, ...] = read(raw)
    except KeyError:
        return _uints(raw, keys)
    a, b, c, d, e, f = values
    if (
        type(a) is int
        and type(b) is int
        and type(c) is int
        and type(d) is int
        and type(e) is int
        and type(f) is int
        and min(values) >= 0
    ):
        return values
    return _uints(raw, keys)


def _two_uints(raw: JSONObject, first: str, second: str) -> tuple[int | None, int | None]:
    a = raw.get(first)
    b = raw.get(second)
    if (a is None or (type(a) is int and a >= 0)) and (b is None or (type(b) is int and b >= 0)):
        return a, b
    return _uint(raw, first), _uint(raw, second)  # raises, naming the bad field


def _uint(raw: JSONObject, key: str) -> int | None:
    value = raw.get(key)
    if value is None or (type(value) is int and value >= 0):
        return value
    raise _wrong(key, "non-negative integer", value)


def _int(raw: JSONObject, key: str) -> int | None:
    value = raw.get(key)
    if value is None or type(value) is int:
        return value
    raise _wrong(key, "integer", value)


def _number(raw: JSONObject, key: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if type(value) is int or type(value) is float:
        return float(value)
    raise _wrong(key, "number", value)


def _string(raw: JSONObject, key: str) -> str:
    """An optional string: absent or null is ""."""
    value = raw.get(key)
    if type(value) is str:
        return value
    if value is None:
        return ""
    raise _wrong(key, "string", value)


def _required_string(raw: JSONObject, key: str) -> str:
    value = raw.get(key)
    if type(value) is str:
        return value
    if value is None:
        raise _missing(key)
    raise _wrong(key, "string", value)


def _seconds(nanos: int | None) -> float | None:
    return None if nanos is None else nanos / 1e9


class _Parser:
    """One parse. Holds a memo of parsed times: a Summary repeats the same few timestamps."""

    def __init__(self) -> None:
        self._times: dict[object, float | None] = {None: None}

    def summary(self, document: object) -> Summary:
        if type(document) is not dict:
            raise _Misfit(f"expected object, got {_describe(document)}").within("(document)")
        node = document.get("node")
        if node is None:
            raise _missing("node")
        pods = document.get("pods")
        if pods is not None and type(pods) is not list:
            raise _wrong("pods", "list", pods).within("(document)")
        parsed_pods = _each(document, "pods", self.pod)
        try:
            return Summary(self.node(_object(node)), parsed_pods)
        except _Misfit as misfit:
            raise misfit.within("node") from None

    def time(self, raw: JSONObject, key: str) -> float | None:
        value = raw.get(key)
        try:
            return self._times[value]
        except (KeyError, TypeError):
            pass
        if type(value) is not str:
            raise _wrong(key, "RFC 3339 time string", value)
        if value.startswith(_GO_ZERO_TIME_PREFIX):
            seconds = None
        else:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                raise _wrong(key, "RFC 3339 time string", value) from None
            if parsed.tzinfo is None:
                raise _wrong(key, "RFC 3339 time with a zone", value)
            seconds = parsed.timestamp()
        self._times[value] = seconds
        return seconds

    def node(self, raw: JSONObject) -> NodeStats:
        name = _required_string(raw, "nodeName")
        runtime = _block(raw.get("runtime"), "runtime")
        try:
            image_fs = None if runtime is None else self.fs(runtime, "imageFs")
            container_fs = None if runtime is None else self.fs(runtime, "containerFs")
        except _Misfit as misfit:
            raise misfit.within("runtime") from None
        return NodeStats(
            name,
            self.time(raw, "startTime"),
            _each(raw, "systemContainers", self.container),
            self.cpu(raw),
            self.memory(raw),
            self.io(raw),
            self.swap(raw),
            self.network(raw),
            self.fs(raw, "fs"),
            image_fs,
            container_fs,
            self.rlimit(raw),
        )

    def pod(self, raw: object) -> PodStats:
        raw = _object(raw)
        ref = _block(raw.get("podRef"), "podRef")
        if ref is None:
            raise _missing("podRef")
        try:
            name = _required_string(ref, "name")
            namespace = _required_string(ref, "namespace")
            uid = _string(ref, "uid")
        except _Misfit as misfit:
            raise misfit.within("podRef") from None
        process = _block(raw.get("process_stats"), "process_stats")
        try:
            process_count = None if process is None else _uint(process, "process_count")
        except _Misfit as misfit:
            raise misfit.within("process_stats") from None
        return PodStats(
            name,
            namespace,
            uid,
            self.time(raw, "startTime"),
            _each(raw, "containers", self.container),
            self.cpu(raw),
            self.memory(raw),
            self.io(raw),
            self.swap(raw),
            self.network(raw),
            _each(raw, "volume", self.volume),
            self.fs(raw, "ephemeral-storage"),
            process_count,
        )

    def container(self, raw: object) -> ContainerStats:
        raw = _object(raw)
        return ContainerStats(
            _required_string(raw, "name"),
            self.time(raw, "startTime"),
            self.cpu(raw),
            self.memory(raw),
            self.io(raw),
            self.swap(raw),
            self.fs(raw, "rootfs"),
            self.fs(raw, "logs"),
            _each(raw, "accelerators", self.accelerator),
        )

    def accelerator(self, raw: object) -> AcceleratorStats:
        raw = _object(raw)
        duty_cycle = _number(raw, "dutyCycle")
        return AcceleratorStats(
            _string(raw, "make"),
            _string(raw, "model"),
            _string(raw, "id"),
            _uint(raw, "memoryTotal"),
            _uint(raw, "memoryUsed"),
            None if duty_cycle is None else duty_cycle / 100,
        )

    def cpu(self, parent: JSONObject) -> CPUStats | None:
        raw = parent.get("cpu")
        if type(raw) is not dict:
            _check_absent(raw, "cpu")
            return None
        try:
            cores, seconds = _two_uints(raw, "usageNanoCores", "usageCoreNanoSeconds")
            return CPUStats(
                self.time(raw, "time"), _seconds(cores), _seconds(seconds), self.pressure(raw)
            )
        except _Misfit as misfit:
            raise misfit.within("cpu") from None

    def memory(self, parent: JSONObject) -> MemoryStats | None:
        raw = parent.get("memory")
        if type(raw) is not dict:
            _check_absent(raw, "memory")
            return None
        try:
            available, usage, working_set, rss, page_faults, major_page_faults = _six_uints(
                raw, _MEMORY_KEYS, _read_memory
            )
            return MemoryStats(
                self.time(raw, "time"),
                available,
                usage,
                working_set,
                rss,
                page_faults,
                major_page_faults,
                self.pressure(raw),
            )
        except _Misfit as misfit:
            raise misfit.within("memory") from None

    def io(self, parent: JSONObject) -> IOStats | None:
        raw = parent.get("io")
        if type(raw) is not dict:
            _check_absent(raw, "io")
            return None
        try:
            return IOStats(self.time(raw, "time"), self.pressure(raw))
        except _Misfit as misfit:
            raise misfit.within("io") from None

    def pressure(self, parent: JSONObject) -> Pressure | None:
        raw = parent.get("psi")
        if type(raw) is not dict:
            _check_absent(raw, "psi")
            return None
        try:
            return Pressure(_pressure_data(raw, "some"), _pressure_data(raw, "full"))
        except _Misfit as misfit:
            raise misfit.within("psi") from None

    def swap(self, parent: JSONObject) -> SwapStats | None:
        raw = parent.get("swap")
        if type(raw) is not dict:
            _check_absent(raw, "swap")
            return None
        try:
            return SwapStats(
                self.time(raw, "time"), *_two_uints(raw, "swapAvailableBytes", "swapUsageBytes")
            )
        except _Misfit as misfit:
            raise misfit.within("swap") from None

    def network(self, parent: JSONObject) -> NetworkStats | None:
        raw = parent.get("network")
        if type(raw) is not dict:
            _check_absent(raw, "network")
            return None
        try:
            interfaces = _each(raw, "interfaces", _interface)
            default = _interface(raw)
            if not interfaces and _has_counters(default):
                interfaces = (default,)
            return NetworkStats(self.time(raw, "time"), default.name or None, interfaces)
        except _Misfit as misfit:
            raise misfit.within("network") from None

    def fs(self, parent: JSONObject, key: str) -> FsStats | None:
        raw = parent.get(key)
        if type(raw) is not dict:
            _check_absent(raw, key)
            return None
        try:
            return self.fs_fields(raw)
        except _Misfit as misfit:
            raise misfit.within(key) from None

    def fs_fields(self, raw: JSONObject) -> FsStats:
        return FsStats(self.time(raw, "time"), *_six_uints(raw, _FS_KEYS, _read_fs))

    def volume(self, raw: object) -> VolumeStats:
        raw = _object(raw)
        pvc = _block(raw.get("pvcRef"), "pvcRef")
        try:
            pvc_name = None if pvc is None else _required_string(pvc, "name")
            pvc_namespace = None if pvc is None else _string(pvc, "namespace")
        except _Misfit as misfit:
            raise misfit.within("pvcRef") from None
        return VolumeStats(_string(raw, "name"), pvc_name, pvc_namespace, self.fs_fields(raw))

    def rlimit(self, parent: JSONObject) -> RlimitStats | None:
        raw = parent.get("rlimit")
        if type(raw) is not dict:
            _check_absent(raw, "rlimit")
            return None
        try:
            return RlimitStats(self.time(raw, "time"), _int(raw, "maxpid"), _int(raw, "curproc"))
        except _Misfit as misfit:
            raise misfit.within("rlimit") from None


def _pressure_data(parent: JSONObject, key: str) -> PressureData | None:
    raw = parent.get(key)
    if type(raw) is not dict:
        _check_absent(raw, key)
        return None
    # The kubelet's type comment says nanoseconds, but it copies the kernel's PSI "total",
    # which is microseconds: cAdvisor and the OpenTelemetry kubeletstats receiver both divide
    # by 1e6, and the 1.35 fixture's node cpu total (32884223) only makes sense as ~33 s.
    total = raw.get("total")
    avg10 = raw.get("avg10")
    avg60 = raw.get("avg60")
    avg300 = raw.get("avg300")
    # One combined check on the hot path; the field-by-field checks below only run to name
    # the offending field.
    if not (
        (total is None or (type(total) is int and total >= 0))
        and type(avg10) in _NUMBER_TYPES
        and type(avg60) in _NUMBER_TYPES
        and type(avg300) in _NUMBER_TYPES
    ):
        try:
            _uint(raw, "total")
            for average_key in _PSI_AVERAGE_KEYS:
                _number(raw, average_key)  # raises, naming the first bad field
        except _Misfit as misfit:
            raise misfit.within(key) from None
    return PressureData(
        None if total is None else total / 1e6,
        None if avg10 is None else avg10 / 100,
        None if avg60 is None else avg60 / 100,
        None if avg300 is None else avg300 / 100,
    )


def _interface(raw: object) -> InterfaceStats:
    raw = _object(raw)
    return InterfaceStats(_string(raw, "name"), *_uints(raw, _INTERFACE_KEYS))


def _has_counters(interface: InterfaceStats) -> bool:
    return bool(interface.name) or any(value is not None for value in interface[1:])
