"""Which kubelets a collection round reads, as ``exporter.collector.TargetSource`` objects.

- ``StaticTargets``: one fixed target (``--kubelet-url``, or the local node in per-node mode).
- ``ClusterTargets``: every node the API server lists (``--all-nodes``). Each round lists the
  nodes again, so nodes that join are read and nodes that leave are dropped (their clients are
  closed). Clients are kept per (node, URL) between rounds, so connections are reused. A node that
  cannot become a target (no usable address) is a failed scrape with reason ``address``. When the
  listing fails, the previous targets are kept and the failure is counted.
- ``KubeletPaths``: a ``KubeletClient`` read at explicit paths (a ``--kubelet-url`` whose path is
  not ``/stats/summary``, or that carries a query).

Exceptions: none of its own; ``NodeListError`` is caught here (the edge) and counted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from exporter.collector import Target, TargetList
from exporter.model import ScrapeFailure
from exporter.nodes import KubeletTarget, NodeListError, TargetProblem, TargetSelection

__all__ = [
    "ClusterTargets",
    "KubeletPaths",
    "NodeSource",
    "StaticTargets",
    "proxy_targets",
]

logger = logging.getLogger(__name__)

_SUMMARY_PATH = "/stats/summary"


class NodeSource(Protocol):
    """Lists node objects as raw JSON (``exporter.nodes.NodeLister`` or a test stand-in)."""

    def list_nodes(self) -> list[dict[str, Any]]: ...


class KubeletConnection(Protocol):
    """What a target needs from ``exporter.kubelet_client.KubeletClient``."""

    def get(self, path: str) -> bytes: ...
    def close(self) -> None: ...


class KubeletPaths:
    """``/stats/summary`` and ``/pods`` of one kubelet client, at the given paths."""

    def __init__(
        self,
        client: KubeletConnection,
        summary_path: str = _SUMMARY_PATH,
        pods_path: str = "/pods",
    ) -> None:
        self.client = client
        self.summary_path = summary_path
        self.pods_path = pods_path

    @classmethod
    def split_url(cls, url: str) -> tuple[str, str, str | None]:
        """``https://h:p/x/stats/summary?q`` -> (``https://h:p``, ``/x/stats/summary?q``,
        ``/x/pods``). The ``/pods`` path is ``None`` when the URL does not end in the Summary
        path: then there is no telling where the kubelet's ``/pods`` is."""
        parts = urlsplit(url)
        path = parts.path or _SUMMARY_PATH
        summary_path = f"{path}?{parts.query}" if parts.query else path
        pods_path = None
        if path.rstrip("/").endswith(_SUMMARY_PATH):
            pods_path = path.rstrip("/")[: -len(_SUMMARY_PATH)] + "/pods"
        return f"{parts.scheme}://{parts.netloc}", summary_path, pods_path

    def fetch_summary(self) -> bytes:
        return self.client.get(self.summary_path)

    def fetch_pods(self) -> bytes:
        return self.client.get(self.pods_path)

    def close(self) -> None:
        self.client.close()


class StaticTargets:
    """Always the same one target."""

    def __init__(self, target: Target) -> None:
        self._list = TargetList((target,))

    def current(self) -> TargetList:
        return self._list


def proxy_targets(nodes: Sequence[Mapping[str, Any]], apiserver: str) -> TargetSelection:
    """Every named node, reached through ``<apiserver>/api/v1/nodes/<name>/proxy``: addresses
    and ports do not matter there, the API server knows how to reach its kubelets."""
    targets = []
    problems = []
    for index, node in enumerate(nodes):
        metadata = node.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        if isinstance(name, str) and name:
            url = f"{apiserver.rstrip('/')}/api/v1/nodes/{quote(name, safe='')}/proxy"
            targets.append(KubeletTarget(name, url))
        else:
            location = f"items[{index}]"
            problems.append(
                TargetProblem(location, f"{location}: node object has no metadata.name")
            )
    return TargetSelection(
        tuple(sorted(targets, key=lambda target: target.node_name)), tuple(problems)
    )


class ClusterTargets:
    """Every listed node, re-listed each round.

    ``select`` turns node objects into targets (``exporter.nodes.kubelet_targets`` with the
    address settings bound, or ``proxy_targets``); ``connect`` builds the client for one target.
    """

    def __init__(
        self,
        lister: NodeSource,
        select: Callable[[Sequence[Mapping[str, Any]]], TargetSelection],
        connect: Callable[[KubeletTarget], KubeletConnection],
    ) -> None:
        self._lister = lister
        self._select = select
        self._connect = connect
        self._lock = threading.Lock()
        self._clients: dict[KubeletTarget, KubeletPaths] = {}
        self._list: TargetList | None = None
        self._list_errors = 0

    def current(self) -> TargetList:
        with self._lock:
            try:
                nodes = self._lister.list_nodes()
            except NodeListError as err:
                self._list_errors += 1
                logger.warning("listing nodes failed, reading the previous nodes again: %s", err)
                previous = self._list or TargetList((), cluster_wide=True)
                return previous._replace(node_list_errors=self._list_errors)
            selection = self._select(nodes)
            for problem in selection.problems:
                logger.debug("node %s is not read: %s", problem.node, problem.message)
            targets: list[Target] = []
            problems = [
                (problem.node, ScrapeFailure("address", problem.message))
                for problem in selection.problems
            ]
            for kubelet in selection.targets:
                try:
                    targets.append(self._target(kubelet))
                except ValueError as err:  # KubeletConfigError: a URL the client refuses
                    problems.append((kubelet.node_name, ScrapeFailure("address", str(err))))
            self._list = TargetList(
                targets=tuple(targets),
                problems=tuple(problems),
                cluster_wide=True,
                nodes=len(nodes),
                node_list_errors=self._list_errors,
            )
            self._forget_except(set(selection.targets))
            return self._list

    def close(self) -> None:
        with self._lock:
            self._forget_except(set())

    def _target(self, target: KubeletTarget) -> Target:
        paths = self._clients.get(target)
        if paths is None:
            paths = KubeletPaths(self._connect(target))
            self._clients[target] = paths
        return Target(target.node_name, paths, paths)

    def _forget_except(self, keep: set[KubeletTarget]) -> None:
        for target in [target for target in self._clients if target not in keep]:
            self._clients.pop(target).close()
