"""Scrape results -> metric families, in a deterministic order.

``collect`` takes the outcome of scraping any number of kubelets (one for a DaemonSet exporter,
every node in cluster-wide mode) and walks the metric table once. Entities are enumerated per
scope with their identity labels rendered once, then every row of that scope reads its value from
each entity's record; a ``None`` value means no sample. Output order: table order, then nodes by
name, pods by namespace and name, containers, interfaces and volumes by name.

When the kubelet lists two pods with the same namespace and name (a pod being replaced, or a
static pod restarting), or a pod lists one container name twice, only the one started last is
kept: otherwise the exposition would carry duplicate series, which Prometheus rejects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from exporter.exposition import MetricFamily, escape_label_value
from exporter.metrics import METRICS, SCOPE_LABELS, MetricDef, Scope
from exporter.model import (
    CollectionRound,
    ContainerStats,
    NetworkStats,
    NodeResult,
    NodeStats,
    PodPhase,
    PodStats,
    ScrapeErrorCount,
    Summary,
)
from exporter.pods import Pod

__all__ = ["collect"]

Entity = tuple[str, Any]  # (rendered identity labels, record)
T = TypeVar("T")

# The phases of a v1 Pod, in the order the API documents them.
POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
_NODE_FILESYSTEMS = (("root", "fs"), ("image", "image_fs"), ("container", "container_fs"))


def collect(
    results: Sequence[NodeResult],
    error_totals: Mapping[tuple[str, str], int],
    table: Sequence[MetricDef[Any]] = METRICS,
    collection: CollectionRound | None = None,
) -> list[MetricFamily]:
    """Metric families for ``results`` (one per scraped kubelet), the exporter's error counts
    (``(node, reason) -> failures so far``) and, from the background collector, the round that
    produced them. Families without samples are left out."""
    entities = _entities(results, error_totals)
    if collection is not None:
        entities[Scope.COLLECTION].append(("", collection))
    families: list[MetricFamily] = []
    for row in table:
        samples = _samples(row, entities[row.scope])
        if samples:
            families.append(MetricFamily(row.name, row.type.value, row.help, samples))
    return families


def _samples(row: MetricDef[Any], entities: Sequence[Entity]) -> list[tuple[str, int | float]]:
    value_of = row.value
    samples: list[tuple[str, int | float]] = []
    if row.extra_labels:
        for labels, record in entities:
            value = value_of(record)
            if value is not None:
                extra = ",".join(
                    f'{name}="{escape_label_value(read(record))}"'
                    for name, read in row.extra_labels
                )
                samples.append((f"{labels},{extra}", value))
        return samples
    return [
        (labels, value) for labels, record in entities if (value := value_of(record)) is not None
    ]


def _labels(scope: Scope, values: Sequence[str]) -> str:
    return ",".join(
        f'{name}="{escape_label_value(value)}"'
        for name, value in zip(SCOPE_LABELS[scope], values, strict=True)
    )


def _entities(
    results: Sequence[NodeResult], error_totals: Mapping[tuple[str, str], int]
) -> dict[Scope, list[Entity]]:
    entities: dict[Scope, list[Entity]] = {scope: [] for scope in Scope}
    summaries = sorted(
        (result.summary for result in results if result.summary is not None),
        key=lambda summary: summary.node.name,
    )
    for summary in summaries:
        _add_summary(entities, summary)
    by_node = sorted(results, key=lambda result: result.node)
    for result in by_node:
        if result.pods:
            node = result.summary.node.name if result.summary is not None else result.node
            _add_pod_list(entities, node, result.pods)
    for result in by_node:
        entities[Scope.SCRAPE].append((_labels(Scope.SCRAPE, (result.node,)), result))
    for (node, reason), total in sorted(error_totals.items()):
        entities[Scope.SCRAPE_ERROR].append(
            (_labels(Scope.SCRAPE_ERROR, (node, reason)), ScrapeErrorCount(node, reason, total))
        )
    return entities


def _add_summary(entities: dict[Scope, list[Entity]], summary: Summary) -> None:
    node: NodeStats = summary.node
    node_labels = _labels(Scope.NODE, (node.name,))
    entities[Scope.NODE].append((node_labels, node))
    for system_container in _by_name(node.system_containers, lambda c: c.name):
        entities[Scope.SYSTEM_CONTAINER].append(
            (_labels(Scope.SYSTEM_CONTAINER, (node.name, system_container.name)), system_container)
        )
    for interface in _interfaces(node.network):
        entities[Scope.NODE_INTERFACE].append(
            (f'{node_labels},interface="{escape_label_value(interface.name)}"', interface)
        )
    for filesystem, attribute in _NODE_FILESYSTEMS:
        stats = getattr(node, attribute)
        if stats is not None:
            entities[Scope.NODE_FILESYSTEM].append(
                (_labels(Scope.NODE_FILESYSTEM, (node.name, filesystem)), stats)
            )
    pods = _newest_unique(summary.pods, lambda p: (p.namespace, p.name))
    for pod in pods:
        _add_pod(entities, node.name, pod)


def _add_pod(entities: dict[Scope, list[Entity]], node: str, pod: PodStats) -> None:
    pod_labels = _labels(Scope.POD, (node, pod.namespace, pod.name))
    entities[Scope.POD].append((pod_labels, pod))
    for interface in _interfaces(pod.network):
        entities[Scope.POD_INTERFACE].append(
            (f'{pod_labels},interface="{escape_label_value(interface.name)}"', interface)
        )
    for volume in _by_name(pod.volumes, lambda v: v.name):
        pvc = volume.pvc_name or ""
        entities[Scope.VOLUME].append(
            (
                f'{pod_labels},volume="{escape_label_value(volume.name)}",'
                f'persistentvolumeclaim="{escape_label_value(pvc)}"',
                volume,
            )
        )
    for container in _newest_unique(pod.containers, lambda c: c.name):
        _add_container(entities, pod_labels, container)


def _add_container(
    entities: dict[Scope, list[Entity]], pod_labels: str, container: ContainerStats
) -> None:
    container_labels = f'{pod_labels},container="{escape_label_value(container.name)}"'
    entities[Scope.CONTAINER].append((container_labels, container))
    for accelerator in sorted(container.accelerators, key=lambda a: a.id):
        entities[Scope.ACCELERATOR].append(
            (
                f'{container_labels},accelerator="{escape_label_value(accelerator.id)}",'
                f'make="{escape_label_value(accelerator.make)}",'
                f'model="{escape_label_value(accelerator.model)}"',
                accelerator,
            )
        )


def _add_pod_list(entities: dict[Scope, list[Entity]], node: str, pods: Sequence[Pod]) -> None:
    """Phases, requests, limits and restarts from ``/pods``. Plain init containers are left out:
    they have finished before the pod runs, so their requests are not what it uses; sidecars
    (init containers that keep running) are kept."""
    for pod in _by_name(pods, lambda p: f"{p.namespace}/{p.name}"):
        pod_labels = _labels(Scope.POD, (node, pod.namespace, pod.name))
        if pod.phase is not None:
            for phase in POD_PHASES:
                entities[Scope.POD_PHASE].append(
                    (f'{pod_labels},phase="{phase}"', PodPhase(phase, pod.phase))
                )
        running = [c for c in pod.containers if not c.init or c.sidecar]
        for container in _by_name(running, lambda c: c.name):
            entities[Scope.POD_CONTAINER].append(
                (f'{pod_labels},container="{escape_label_value(container.name)}"', container)
            )


def _interfaces(network: NetworkStats | None) -> Iterable[Any]:
    if network is None:
        return ()
    return _by_name(network.interfaces, lambda i: i.name)


def _by_name(items: Iterable[T], name: Callable[[T], str]) -> list[T]:
    """Sorted by name; of items sharing a name only the first is kept (no duplicate series)."""
    seen: dict[str, T] = {}
    for item in items:
        seen.setdefault(name(item), item)
    return [seen[key] for key in sorted(seen)]


def _newest_unique(items: Iterable[Any], key: Callable[[Any], Any]) -> list[Any]:
    """Sorted by ``key``; of items sharing a key only the one with the latest start time."""
    chosen: dict[Any, Any] = {}
    for item in items:
        k = key(item)
        current = chosen.get(k)
        if current is None or _started(item) > _started(current):
            chosen[k] = item
    return [chosen[k] for k in sorted(chosen)]


def _started(item: PodStats | ContainerStats) -> float:
    return item.start_time if item.start_time is not None else float("-inf")
