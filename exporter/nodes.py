"""Which kubelets to scrape in cluster-wide mode: node objects -> ``https://ADDRESS:PORT`` targets.

``kubelet_targets`` is pure and follows metrics-server: for each address type in priority order,
the node's first address of that type wins; the port is the node's
``status.daemonEndpoints.kubeletEndpoint.port`` when set (non-zero), else the default (10250).
A node without a usable address or with a malformed object is a ``TargetProblem`` that the caller
logs and counts; it never stops the other nodes from being scraped.

``NodeLister`` is the thin IO part: it lists nodes (optionally by label selector) with the official
``kubernetes`` client and returns the raw JSON objects.

Exception tree::

    ValueError
     └── NodeTargetConfigError    unknown address type, scheme or port in the settings
    NodeListError                 the API server could not list nodes (message says why)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ADDRESS_TYPES = ("Hostname", "InternalDNS", "InternalIP", "ExternalDNS", "ExternalIP")
# The order metrics-server's manifests and Helm chart use (its built-in default starts with
# Hostname, which needs node names to resolve from the exporter's pod).
DEFAULT_PREFERRED_ADDRESS_TYPES = ("InternalIP", "ExternalIP", "Hostname")
DEFAULT_KUBELET_PORT = 10250
_LIST_PAGE_SIZE = 500
# 2,000 pages of 500 is a million nodes: far beyond any cluster, so hitting it means a bug.
_MAX_LIST_PAGES = 2000


class NodeTargetConfigError(ValueError):
    """Settings for choosing kubelet addresses that cannot work."""


class NodeListError(Exception):
    """Nodes could not be listed from the API server."""


@dataclass(frozen=True, slots=True)
class KubeletTarget:
    node_name: str
    url: str


@dataclass(frozen=True, slots=True)
class TargetProblem:
    # The node's name, or ``items[i]`` when the object has no name.
    node: str
    message: str


@dataclass(frozen=True, slots=True)
class TargetSelection:
    """Targets sorted by node name, and the nodes that could not become targets."""

    targets: tuple[KubeletTarget, ...]
    problems: tuple[TargetProblem, ...]


def parse_address_types(text: str) -> tuple[str, ...]:
    """``"InternalIP,Hostname"`` -> ``("InternalIP", "Hostname")``, for the settings flag."""
    types = tuple(part.strip() for part in text.split(",") if part.strip())
    _check_address_types(types)
    return types


def kubelet_targets(
    nodes: Sequence[Mapping[str, Any]],
    preferred_address_types: Sequence[str] = DEFAULT_PREFERRED_ADDRESS_TYPES,
    default_port: int = DEFAULT_KUBELET_PORT,
    scheme: str = "https",
) -> TargetSelection:
    """One kubelet URL per node (no path), choosing the address as metrics-server does."""
    _check_address_types(preferred_address_types)
    if scheme not in ("http", "https"):
        raise NodeTargetConfigError(f"kubelet scheme must be http or https, got {scheme!r}")
    if not _is_port(default_port):
        raise NodeTargetConfigError(f"kubelet port must be 1-65535, got {default_port!r}")
    targets: list[KubeletTarget] = []
    problems: list[TargetProblem] = []
    for index, node in enumerate(nodes):
        outcome = _target_for(
            node, f"items[{index}]", preferred_address_types, default_port, scheme
        )
        if isinstance(outcome, KubeletTarget):
            targets.append(outcome)
        else:
            problems.append(outcome)
    return TargetSelection(
        targets=tuple(sorted(targets, key=lambda target: target.node_name)),
        problems=tuple(problems),
    )


def _target_for(
    node: Mapping[str, Any],
    location: str,
    preferred_address_types: Sequence[str],
    default_port: int,
    scheme: str,
) -> KubeletTarget | TargetProblem:
    metadata = node.get("metadata") if isinstance(node, Mapping) else None
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str) or not name:
        return TargetProblem(location, f"{location}: node object has no metadata.name")
    status = node.get("status")
    status = status if isinstance(status, Mapping) else {}
    addresses = status.get("addresses") or []
    if not isinstance(addresses, list):
        return TargetProblem(name, f"node {name}: status.addresses is not a list")
    address = _preferred_address(addresses, preferred_address_types)
    if address is None:
        present = sorted(
            {str(entry.get("type")) for entry in addresses if isinstance(entry, Mapping)}
        )
        return TargetProblem(
            name,
            f"node {name} has no address of the types {','.join(preferred_address_types)} "
            f"(it has: {','.join(present) or 'none'}); adjust --kubelet-preferred-address-types",
        )
    port = _kubelet_port(status, default_port)
    if port is None:
        return TargetProblem(
            name, f"node {name}: status.daemonEndpoints.kubeletEndpoint.port is not a valid port"
        )
    host = f"[{address}]" if ":" in address else address
    return KubeletTarget(node_name=name, url=f"{scheme}://{host}:{port}")


def _preferred_address(addresses: list[Any], preferred: Sequence[str]) -> str | None:
    for address_type in preferred:
        for entry in addresses:
            if not isinstance(entry, Mapping) or entry.get("type") != address_type:
                continue
            address = entry.get("address")
            # metrics-server would take an empty or malformed address and fail later with a
            # confusing URL error; skipping it lets the next address type serve.
            if isinstance(address, str) and address and not set(address) & set(" /?#@[]"):
                return address
    return None


def _kubelet_port(status: Mapping[str, Any], default_port: int) -> int | None:
    endpoints = status.get("daemonEndpoints")
    endpoint = endpoints.get("kubeletEndpoint") if isinstance(endpoints, Mapping) else None
    port = endpoint.get("Port") if isinstance(endpoint, Mapping) else None
    # The Go type's JSON key is "Port" (capital P); "port" is accepted as tools rewrite it.
    if port is None and isinstance(endpoint, Mapping):
        port = endpoint.get("port")
    if port is None or port == 0:
        return default_port
    return port if _is_port(port) else None


def _is_port(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def _check_address_types(types: Sequence[str]) -> None:
    if not types:
        raise NodeTargetConfigError("at least one kubelet address type is needed")
    unknown = [address_type for address_type in types if address_type not in ADDRESS_TYPES]
    if unknown:
        raise NodeTargetConfigError(
            f"unknown kubelet address type(s) {', '.join(unknown)}; "
            f"valid types are {', '.join(ADDRESS_TYPES)}"
        )


class NodeLister:
    """Lists nodes through ``kubernetes.client.CoreV1Api`` and returns the raw JSON objects."""

    def __init__(
        self,
        core_v1: Any,
        *,
        label_selector: str | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        self._core_v1 = core_v1
        self._label_selector = label_selector or None
        self._timeout = timeout_seconds

    @classmethod
    def from_configuration(
        cls, configuration: Any, *, label_selector: str | None = None, timeout_seconds: float = 10.0
    ) -> NodeLister:
        """A lister using a ``kubernetes.client.Configuration`` (see kubelet_client's loader)."""
        from kubernetes import client as kubernetes_client  # noqa: PLC0415 - heavy, only this mode

        core_v1 = kubernetes_client.CoreV1Api(kubernetes_client.ApiClient(configuration))
        return cls(core_v1, label_selector=label_selector, timeout_seconds=timeout_seconds)

    def list_nodes(self) -> list[dict[str, Any]]:
        """All nodes (matching the selector), following ``continue`` tokens page by page."""
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

        nodes: list[dict[str, Any]] = []
        continue_token: str | None = None
        for _page in range(_MAX_LIST_PAGES):
            arguments: dict[str, Any] = {
                "limit": _LIST_PAGE_SIZE,
                "_preload_content": False,
                "_request_timeout": self._timeout,
            }
            if self._label_selector:
                arguments["label_selector"] = self._label_selector
            if continue_token:
                arguments["_continue"] = continue_token
            try:
                response = self._core_v1.list_node(**arguments)
                document = json.loads(response.data)
            except ApiException as err:
                raise NodeListError(_api_error_message(err)) from err
            except ValueError as err:
                raise NodeListError(
                    f"listing nodes returned a body that is not JSON: {err}"
                ) from err
            except Exception as err:
                # urllib3 and socket errors from inside the kubernetes client: this is the edge.
                raise NodeListError(f"cannot list nodes: {type(err).__name__}: {err}") from err
            if not isinstance(document, dict) or not isinstance(document.get("items", []), list):
                raise NodeListError("listing nodes returned something that is not a NodeList")
            nodes += [item for item in document.get("items") or [] if isinstance(item, dict)]
            metadata = document.get("metadata")
            continue_token = metadata.get("continue") if isinstance(metadata, dict) else None
            if not continue_token:
                return nodes
        raise NodeListError(f"listing nodes did not finish after {_MAX_LIST_PAGES} pages")


def _api_error_message(err: Any) -> str:
    status = getattr(err, "status", None)
    reason = getattr(err, "reason", "")
    if status == 403:
        return (
            f"listing nodes was forbidden (HTTP 403 {reason}): the exporter's service account "
            "needs RBAC 'list' on 'nodes'"
        )
    if status == 401:
        return f"listing nodes was not authenticated (HTTP 401 {reason}): check the credentials"
    return f"listing nodes failed: HTTP {status} {reason}"
