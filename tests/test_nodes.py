"""Kubelet target selection (pure) and NodeLister against a loopback stand-in API server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as kubernetes_client
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from exporter.nodes import (
    KubeletTarget,
    NodeLister,
    NodeListError,
    NodeTargetConfigError,
    TargetProblem,
    kubelet_targets,
    parse_address_types,
)


def node(
    name: str | None,
    addresses: list[tuple[str, str]] | None,
    port: Any = 10250,
) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if addresses is not None:
        status["addresses"] = [{"type": kind, "address": value} for kind, value in addresses]
    if port is not None:
        status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": port}}
    metadata = {"name": name} if name is not None else {}
    return {"kind": "Node", "metadata": metadata, "status": status}


ALL_KINDS = [
    ("Hostname", "node-a"),
    ("ExternalIP", "203.0.113.7"),
    ("InternalIP", "10.0.0.7"),
    ("InternalDNS", "node-a.internal"),
]

SELECTION_CASES = [
    pytest.param(
        [node("node-a", ALL_KINDS)],
        ("InternalIP", "ExternalIP", "Hostname"),
        ["https://10.0.0.7:10250"],
        id="internal-ip-first-by-default-order",
    ),
    pytest.param(
        [node("node-a", ALL_KINDS)],
        ("Hostname", "InternalIP"),
        ["https://node-a:10250"],
        id="hostname-first-when-asked",
    ),
    pytest.param(
        [node("node-a", ALL_KINDS)],
        ("ExternalDNS", "InternalDNS"),
        ["https://node-a.internal:10250"],
        id="falls-through-to-next-type",
    ),
    pytest.param(
        [node("node-a", [("InternalIP", "10.0.0.8"), ("InternalIP", "10.0.0.9")])],
        ("InternalIP",),
        ["https://10.0.0.8:10250"],
        id="first-address-of-a-type-wins",
    ),
    pytest.param(
        [node("node-a", [("InternalIP", ""), ("Hostname", "node-a")])],
        ("InternalIP", "Hostname"),
        ["https://node-a:10250"],
        id="empty-address-skipped",
    ),
    pytest.param(
        [node("node-a", [("InternalIP", "fd00::7")])],
        ("InternalIP",),
        ["https://[fd00::7]:10250"],
        id="ipv6-bracketed",
    ),
    pytest.param(
        [node("node-a", [("InternalIP", "10.0.0.7")], port=10255)],
        ("InternalIP",),
        ["https://10.0.0.7:10255"],
        id="node-status-port",
    ),
    pytest.param(
        [node("node-a", [("InternalIP", "10.0.0.7")], port=0)],
        ("InternalIP",),
        ["https://10.0.0.7:10250"],
        id="zero-port-means-default",
    ),
    pytest.param(
        [node("node-a", [("InternalIP", "10.0.0.7")], port=None)],
        ("InternalIP",),
        ["https://10.0.0.7:10250"],
        id="no-daemon-endpoints",
    ),
    pytest.param(
        [
            node("node-c", [("InternalIP", "10.0.0.3")]),
            node("node-a", [("InternalIP", "10.0.0.1")]),
            node("node-b", [("InternalIP", "10.0.0.2")]),
        ],
        ("InternalIP",),
        ["https://10.0.0.1:10250", "https://10.0.0.2:10250", "https://10.0.0.3:10250"],
        id="sorted-by-node-name",
    ),
]


@pytest.mark.parametrize(("nodes", "preferred", "urls"), SELECTION_CASES)
def test_target_selection(
    nodes: list[dict[str, Any]], preferred: tuple[str, ...], urls: list[str]
) -> None:
    selection = kubelet_targets(nodes, preferred)
    assert [target.url for target in selection.targets] == urls
    assert selection.problems == ()


def test_default_port_and_scheme_are_used() -> None:
    selection = kubelet_targets(
        [node("node-a", [("InternalIP", "127.0.0.1")], port=None)],
        default_port=18080,
        scheme="http",
    )
    assert selection.targets == (KubeletTarget("node-a", "http://127.0.0.1:18080"),)


PROBLEM_CASES = [
    pytest.param(node("node-x", None), "node-x", "has no address of the types", id="no-addresses"),
    pytest.param(
        node("node-x", [("ExternalIP", "203.0.113.9")]),
        "node-x",
        "(it has: ExternalIP)",
        id="only-unwanted-types",
    ),
    pytest.param(
        node("node-x", [("InternalIP", "10.0.0.1/24")]),
        "node-x",
        "has no address",
        id="malformed-address",
    ),
    pytest.param(
        node("node-x", [("InternalIP", "10.0.0.1")], port=70000),
        "node-x",
        "kubeletEndpoint.port is not a valid port",
        id="port-out-of-range",
    ),
    pytest.param(
        node("node-x", [("InternalIP", "10.0.0.1")], port="10250"),
        "node-x",
        "not a valid port",
        id="port-string",
    ),
    pytest.param(
        node(None, [("InternalIP", "10.0.0.1")]), "items[1]", "no metadata.name", id="no-name"
    ),
    pytest.param(
        {"metadata": {"name": "node-x"}, "status": {"addresses": "10.0.0.1"}},
        "node-x",
        "status.addresses is not a list",
        id="addresses-not-a-list",
    ),
]


@pytest.mark.parametrize(("bad_node", "problem_node", "message_part"), PROBLEM_CASES)
def test_unusable_nodes_are_problems_not_exceptions(
    bad_node: dict[str, Any], problem_node: str, message_part: str
) -> None:
    healthy = node("node-a", [("InternalIP", "10.0.0.7")])
    selection = kubelet_targets([healthy, bad_node], ("InternalIP", "Hostname"))
    assert selection.targets == (KubeletTarget("node-a", "https://10.0.0.7:10250"),)
    (problem,) = selection.problems
    assert isinstance(problem, TargetProblem)
    assert problem.node == problem_node
    assert message_part in problem.message


@pytest.mark.parametrize(
    ("arguments", "message_part"),
    [
        pytest.param({"preferred_address_types": ("InternalIp",)}, "InternalIp", id="typo-type"),
        pytest.param({"preferred_address_types": ()}, "at least one", id="no-types"),
        pytest.param({"scheme": "ftp"}, "http or https", id="scheme"),
        pytest.param({"default_port": 0}, "1-65535", id="port"),
    ],
)
def test_bad_settings_are_errors(arguments: dict[str, Any], message_part: str) -> None:
    with pytest.raises(NodeTargetConfigError, match=message_part):
        kubelet_targets([], **arguments)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("InternalIP,ExternalIP,Hostname", ("InternalIP", "ExternalIP", "Hostname")),
        pytest.param(" Hostname , InternalDNS ", ("Hostname", "InternalDNS"), id="spaces"),
    ],
)
def test_parse_address_types(text: str, expected: tuple[str, ...]) -> None:
    assert parse_address_types(text) == expected


def test_parse_address_types_rejects_unknown_names() -> None:
    with pytest.raises(NodeTargetConfigError, match="valid types are Hostname"):
        parse_address_types("InternalIP,LegacyHostIP")


# --- NodeLister against a stand-in API server ----------------------------------------------


@pytest.fixture
def apiserver() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


def lister(server: HTTPServer, label_selector: str | None = None) -> NodeLister:
    configuration = kubernetes_client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.port}"
    return NodeLister.from_configuration(
        configuration, label_selector=label_selector, timeout_seconds=5
    )


def node_list(names: list[str], continue_token: str = "") -> dict[str, Any]:
    return {
        "kind": "NodeList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "42", "continue": continue_token},
        "items": [node(name, [("InternalIP", "10.0.0.1")]) for name in names],
    }


def test_lists_nodes_with_selector_across_pages(apiserver: HTTPServer) -> None:
    pages = {"": node_list(["node-a", "node-b"], "page-2"), "page-2": node_list(["node-c"])}
    seen: list[dict[str, str]] = []

    def handler(request: Request) -> Response:
        seen.append(dict(request.args))
        page = pages[request.args.get("continue", "")]
        return Response(json.dumps(page), content_type="application/json")

    apiserver.expect_request("/api/v1/nodes").respond_with_handler(handler)
    nodes = lister(apiserver, "node-role.kubernetes.io/worker=").list_nodes()
    assert [item["metadata"]["name"] for item in nodes] == ["node-a", "node-b", "node-c"]
    # Raw JSON keys survive (the generated models would rename them).
    assert nodes[0]["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
    assert seen == [
        {"labelSelector": "node-role.kubernetes.io/worker=", "limit": "500"},
        {"labelSelector": "node-role.kubernetes.io/worker=", "limit": "500", "continue": "page-2"},
    ]


@pytest.mark.parametrize(
    ("status", "body", "message_part"),
    [
        pytest.param(403, "forbidden", "RBAC 'list' on 'nodes'", id="403"),
        pytest.param(401, "unauthorized", "not authenticated", id="401"),
        pytest.param(500, "boom", "HTTP 500", id="500"),
        pytest.param(200, "<html>", "not JSON", id="not-json"),
        pytest.param(200, '{"items": 3}', "not a NodeList", id="not-a-node-list"),
    ],
)
def test_list_failures_are_node_list_errors(
    apiserver: HTTPServer, status: int, body: str, message_part: str
) -> None:
    apiserver.expect_request("/api/v1/nodes").respond_with_data(body, status=status)
    with pytest.raises(NodeListError, match=message_part):
        lister(apiserver).list_nodes()


def test_unreachable_api_server_is_a_node_list_error(apiserver: HTTPServer) -> None:
    unreachable = lister(apiserver)
    apiserver.stop()
    with pytest.raises(NodeListError, match="cannot list nodes"):
        unreachable.list_nodes()
    apiserver.start()


def test_listed_nodes_feed_target_selection(apiserver: HTTPServer) -> None:
    apiserver.expect_request("/api/v1/nodes").respond_with_json(node_list(["node-b", "node-a"]))
    selection = kubelet_targets(lister(apiserver).list_nodes())
    assert [target.node_name for target in selection.targets] == ["node-a", "node-b"]
