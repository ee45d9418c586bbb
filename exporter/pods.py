"""The kubelet's ``/pods`` (a v1 PodList) as frozen records: phase, requests, limits, restarts.

Only the fields the exporter needs are read; everything else in the PodList is ignored. CPU is in
cores and memory in bytes (quantities are read exactly by ``exporter.quantity``). A request or limit
that the pod does not set is ``None``, never 0. A container that has no status yet (a pod still
being scheduled or pulling images) has ``None`` restart count, readiness and state.

Init containers are listed too, marked ``init=True``; a sidecar is an init container whose
``restartPolicy`` is ``Always`` (Kubernetes 1.28+). Ephemeral (debug) containers are ignored: they
cannot have resources.

Pure: bytes in, records out; no IO, no globals.

Exception tree::

    ValueError
     └── PodListParseError     the body is not a valid PodList; ``location`` says where
                               (``items[3](kube-system/coredns-x).spec.containers[0]...``) and
                               ``reason`` is ``invalid_json`` or ``invalid_data`` (the FetchError
                               reasons documented in exporter/source.py)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.quantity import QuantityError, parse_quantity

CONTAINER_STATES = ("running", "waiting", "terminated")


class PodListParseError(ValueError):
    """A ``/pods`` body that is not JSON, or JSON that does not have the PodList's shape."""

    def __init__(self, reason: str, location: str, problem: str) -> None:
        super().__init__(f"{location}: {problem}" if location else problem)
        self.reason = reason
        self.location = location


@dataclass(frozen=True, slots=True)
class ContainerResources:
    """CPU in cores and memory in bytes, as set in the pod spec; ``None`` when not set."""

    cpu_request_cores: float | None
    cpu_limit_cores: float | None
    memory_request_bytes: float | None
    memory_limit_bytes: float | None


@dataclass(frozen=True, slots=True)
class PodContainer:
    name: str
    init: bool
    sidecar: bool
    resources: ContainerResources
    restart_count: int | None
    ready: bool | None
    # One of CONTAINER_STATES, or None before the kubelet reported any state.
    state: str | None
    # Why the container waits or ended (CrashLoopBackOff, OOMKilled, Completed, ...).
    state_reason: str | None


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    uid: str | None
    node: str | None
    # Pending, Running, Succeeded, Failed, Unknown; None if the kubelet has not set it.
    phase: str | None
    containers: tuple[PodContainer, ...]


def parse_pod_list(body: bytes | str) -> tuple[Pod, ...]:
    """Records for every pod in a kubelet ``/pods`` body, in the kubelet's order."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise PodListParseError("invalid_json", "", f"/pods body is not JSON: {err}") from err
    root = _Node(document, "")
    root.require_mapping()
    kind = root.child("kind").optional_string()
    if kind is not None and kind != "PodList":
        raise PodListParseError("invalid_data", "kind", f"expected 'PodList', got {kind!r}")
    return tuple(_parse_pod(item) for item in root.child("items").list_items())


def _parse_pod(item: _Node) -> Pod:
    item.require_mapping()
    metadata = item.child("metadata")
    namespace = metadata.child("namespace").required_string()
    name = metadata.child("name").required_string()
    # From here on every location names the pod, so an error can be found in a 100-pod list.
    pod = item.renamed(f"{item.path}({namespace}/{name})")
    spec = pod.child("spec")
    status = pod.child("status")
    statuses = _statuses_by_name(status.child("containerStatuses"))
    init_statuses = _statuses_by_name(status.child("initContainerStatuses"))
    containers = [
        _parse_container(node, statuses, init=False)
        for node in spec.child("containers").list_items()
    ]
    containers += [
        _parse_container(node, init_statuses, init=True)
        for node in spec.child("initContainers").list_items()
    ]
    return Pod(
        namespace=namespace,
        name=name,
        uid=pod.child("metadata").child("uid").optional_string(),
        node=spec.child("nodeName").optional_string(),
        phase=status.child("phase").optional_string(),
        containers=tuple(containers),
    )


def _statuses_by_name(statuses: _Node) -> dict[str, _Node]:
    by_name: dict[str, _Node] = {}
    for status in statuses.list_items():
        by_name[status.child("name").required_string()] = status
    return by_name


def _parse_container(node: _Node, statuses: Mapping[str, _Node], *, init: bool) -> PodContainer:
    node.require_mapping()
    name = node.child("name").required_string()
    resources = node.child("resources")
    requests = resources.child("requests")
    limits = resources.child("limits")
    status = statuses.get(name)
    state: str | None = None
    state_reason: str | None = None
    restart_count: int | None = None
    ready: bool | None = None
    if status is not None:
        restart_count = status.child("restartCount").optional_int()
        ready = status.child("ready").optional_bool()
        state, state_reason = _container_state(status.child("state"))
    return PodContainer(
        name=name,
        init=init,
        sidecar=init and node.child("restartPolicy").optional_string() == "Always",
        resources=ContainerResources(
            cpu_request_cores=requests.child("cpu").optional_quantity(),
            cpu_limit_cores=limits.child("cpu").optional_quantity(),
            memory_request_bytes=requests.child("memory").optional_quantity(),
            memory_limit_bytes=limits.child("memory").optional_quantity(),
        ),
        restart_count=restart_count,
        ready=ready,
        state=state,
        state_reason=state_reason,
    )


def _container_state(state: _Node) -> tuple[str | None, str | None]:
    if state.value is None:
        return None, None
    state.require_mapping()
    # The API allows exactly one member; the first known one wins if a kubelet ever sends more.
    for candidate in CONTAINER_STATES:
        detail = state.child(candidate)
        if detail.value is not None:
            detail.require_mapping()
            return candidate, detail.child("reason").optional_string()
    return None, None


class _Node:
    """A JSON value and the path that leads to it, so that every error names its location."""

    __slots__ = ("path", "value")

    def __init__(self, value: Any, path: str) -> None:
        self.value = value
        self.path = path

    def renamed(self, path: str) -> _Node:
        return _Node(self.value, path)

    def child(self, key: str) -> _Node:
        path = f"{self.path}.{key}" if self.path else key
        if self.value is None:
            return _Node(None, path)
        self.require_mapping()
        return _Node(self.value.get(key), path)

    def fail(self, problem: str) -> PodListParseError:
        return PodListParseError("invalid_data", self.path or "(document)", problem)

    def require_mapping(self) -> None:
        if not isinstance(self.value, dict):
            raise self.fail(f"expected an object, got {_describe(self.value)}")

    def list_items(self) -> list[_Node]:
        """Elements of a JSON list; an absent or null list (Go's nil slice) is empty."""
        if self.value is None:
            return []
        if not isinstance(self.value, list):
            raise self.fail(f"expected a list, got {_describe(self.value)}")
        return [_Node(element, f"{self.path}[{index}]") for index, element in enumerate(self.value)]

    def required_string(self) -> str:
        if not isinstance(self.value, str) or not self.value:
            raise self.fail(f"expected a non-empty string, got {_describe(self.value)}")
        return self.value

    def optional_string(self) -> str | None:
        if self.value is None:
            return None
        if not isinstance(self.value, str):
            raise self.fail(f"expected a string, got {_describe(self.value)}")
        return self.value

    def optional_int(self) -> int | None:
        if self.value is None:
            return None
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self.fail(f"expected an integer, got {_describe(self.value)}")
        return self.value

    def optional_bool(self) -> bool | None:
        if self.value is None:
            return None
        if not isinstance(self.value, bool):
            raise self.fail(f"expected true or false, got {_describe(self.value)}")
        return self.value

    def optional_quantity(self) -> float | None:
        """A quantity in base units; like Go's Quantity, a bare JSON number is accepted too."""
        if self.value is None:
            return None
        if isinstance(self.value, bool) or not isinstance(self.value, str | int | float):
            raise self.fail(f"expected a quantity string, got {_describe(self.value)}")
        try:
            value = float(parse_quantity(str(self.value).strip()))
        except QuantityError as err:
            raise self.fail(str(err)) from err
        if not math.isfinite(value):
            raise self.fail(f"quantity {self.value!r} is too large")
        return value


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    text = json.dumps(value)
    return text if len(text) <= 40 else f"{type(value).__name__} {text[:37]}..."
