"""Quantity parsing and the kubelet /pods parser, on real payloads and synthetic cases."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.pods import ContainerResources, Pod, PodContainer, PodListParseError, parse_pod_list
from exporter.quantity import QuantityError, parse_quantity
from tests.conftest import kubelet_fixture_paths

MI = 1024 * 1024

# --- quantities -----------------------------------------------------------------------------

# Expected values are apimachinery's own (pkg/api/resource/quantity_test.go TestQuantityParse).
VALID_QUANTITIES = [
    ("100m", "0.1"),
    ("1.5", "1.5"),
    ("128Mi", str(128 * MI)),
    ("1e3", "1000"),
    ("1G", "1000000000"),
    ("0.5Ki", "512"),
    ("0", "0"),
    ("0Mi", "0"),
    ("5n", "0.000000005"),
    ("4u", "0.000004"),
    ("8k", "8000"),
    ("50k", "50000"),
    ("300T", "300000000000000"),
    ("1E", "1000000000000000000"),
    ("12E", "12000000000000000000"),
    ("1E-3", "0.001"),
    ("1E6", "1000000"),
    ("1.3E+6", "1300000"),
    ("0.5e-2", "0.005"),
    ("100.035k", "100035"),
    ("7.123456M", "7123456"),
    ("6.987654321G", "6987654321"),
    ("1.01E", "1010000000000000000"),
    ("3Ei", str(3 * 2**60)),
    ("100.035Ki", "102435.84"),
    ("0.025Ti", "27487790694.4"),
    ("5M", "5000000"),
    ("-100m", "-0.1"),
    ("+1Gi", str(2**30)),
    # rounded away from zero to a whole nano-unit, like apimachinery
    ("3.001n", "0.000000004"),
    ("1.1E-9", "0.000000002"),
    ("0.0000000001", "0.000000001"),
    ("0.00000012345", "0.000000124"),
    ("-3.001n", "-0.000000004"),
    ("0.000000000001Ki", "0.000000002"),
    # binary values are capped at 2^63-1
    ("9Ei", str(2**63 - 1)),
    ("9223372036854775807Ki", str(2**63 - 1)),
    # forms apimachinery accepts even though nobody should write them
    (".001", "0.001"),
    (".0001k", "0.1"),
    ("1.", "1"),
    ("1.G", "1000000000"),
    (".", "0"),
    ("-.", "0"),
]


@pytest.mark.parametrize(
    ("text", "expected"), VALID_QUANTITIES, ids=[text for text, _ in VALID_QUANTITIES]
)
def test_quantity_is_parsed_exactly(text: str, expected: str) -> None:
    assert parse_quantity(text) == Decimal(expected)


INVALID_QUANTITIES = [
    ("", "empty"),
    ("1.1.M", "unexpected '.'"),
    ("1+1.0M", "unexpected '.'"),
    ("0.1mi", "unknown suffix 'mi'"),
    ("0.1am", "unexpected 'a'"),
    ("aoeu", "unexpected 'a'"),
    (".5i", "unknown suffix 'i'"),
    ("1i", "unknown suffix 'i'"),
    ("-3.01i", "unknown suffix 'i'"),
    ("-3.01e-", "unknown suffix 'e-'"),
    (" 1", "unexpected ' '"),
    ("1 ", "unexpected ' '"),
    ("1KB", "unexpected 'B'"),
    ("1kb", "unexpected 'b'"),
    ("1Mi5", "unknown suffix 'Mi5'"),
    ("1e99999999999", "too large"),
    ("100 m", "unexpected ' '"),
]


@pytest.mark.parametrize(
    ("text", "problem"), INVALID_QUANTITIES, ids=[repr(text) for text, _ in INVALID_QUANTITIES]
)
def test_invalid_quantity_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(QuantityError) as caught:
        parse_quantity(text)
    assert problem in str(caught.value)
    assert repr(text) in str(caught.value) or text == ""


DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15}
BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50}


@given(st.integers(min_value=0, max_value=10**15), st.sampled_from(sorted(DECIMAL_SUFFIXES)))
def test_integer_with_decimal_suffix_is_exact(number: int, suffix: str) -> None:
    assert parse_quantity(f"{number}{suffix}") == Decimal(number).scaleb(DECIMAL_SUFFIXES[suffix])


@given(st.integers(min_value=0, max_value=8191), st.sampled_from(sorted(BINARY_SUFFIXES)))
def test_integer_with_binary_suffix_is_exact(number: int, suffix: str) -> None:
    assert parse_quantity(f"{number}{suffix}") == number * 2 ** BINARY_SUFFIXES[suffix]


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=9, allow_nan=False))
def test_plain_decimal_round_trips(number: Decimal) -> None:
    assert parse_quantity(f"{number:f}") == number


# --- /pods on real payloads -----------------------------------------------------------------

POD_FIXTURES = kubelet_fixture_paths("pods")


def raw_items(path: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(path.read_bytes())["items"]
    return items


@pytest.mark.parametrize("path", POD_FIXTURES, ids=[path.name for path in POD_FIXTURES])
def test_real_pod_lists_parse_completely(path: Path) -> None:
    pods = parse_pod_list(path.read_bytes())
    items = raw_items(path)
    assert len(pods) == len(items) > 20
    for pod, item in zip(pods, items, strict=True):
        assert (pod.namespace, pod.name) == (
            item["metadata"]["namespace"],
            item["metadata"]["name"],
        )
        assert pod.uid == item["metadata"]["uid"]
        assert pod.node == item["spec"]["nodeName"]
        assert pod.phase == item["status"]["phase"]
        assert [c.name for c in pod.containers] == [c["name"] for c in item["spec"]["containers"]]
        for container, spec in zip(pod.containers, item["spec"]["containers"], strict=True):
            requests = spec.get("resources", {}).get("requests", {})
            limits = spec.get("resources", {}).get("limits", {})
            resources = container.resources
            # Set in the spec <=> a value here; never a 0 standing in for "not set".
            assert (resources.cpu_request_cores is None) == ("cpu" not in requests)
            assert (resources.memory_request_bytes is None) == ("memory" not in requests)
            assert (resources.cpu_limit_cores is None) == ("cpu" not in limits)
            assert (resources.memory_limit_bytes is None) == ("memory" not in limits)
            assert container.state in {"running", "waiting", "terminated"}
            assert container.restart_count is not None
            assert container.ready is not None


# Values read off the fixture files by hand (kubectl describe would show the same).
REAL_CONTAINERS = [
    (
        "pods-minikube-1.35.json",
        "kube-system/metrics-server-9d74bb658-c6nnt",
        PodContainer(
            name="metrics-server",
            init=False,
            sidecar=False,
            resources=ContainerResources(0.1, None, 200 * MI, None),
            restart_count=0,
            ready=True,
            state="running",
            state_reason=None,
        ),
    ),
    (
        "pods-minikube-1.35.json",
        "scraper/e2e-container-creating",
        PodContainer(
            name="alpine",
            init=False,
            sidecar=False,
            resources=ContainerResources(0.005, 0.005, 5_000_000, 5_000_000),
            restart_count=2,
            ready=False,
            state="terminated",
            state_reason="Completed",
        ),
    ),
    (
        "pods-minikube-1.35.json",
        "kube-system/coredns-7d764666f9-qdcxt",
        PodContainer(
            name="coredns",
            init=False,
            sidecar=False,
            resources=ContainerResources(0.1, None, 70 * MI, 170 * MI),
            restart_count=0,
            ready=True,
            state="running",
            state_reason=None,
        ),
    ),
    (
        "pods-minikube-1.31.json",
        "kube-system/storage-provisioner",
        PodContainer(
            name="storage-provisioner",
            init=False,
            sidecar=False,
            resources=ContainerResources(None, None, None, None),
            restart_count=1,
            ready=True,
            state="running",
            state_reason=None,
        ),
    ),
    (
        "pods-minikube-1.31.json",
        "scraper/e2e-hpa-5b6945fcbd-wt6ck",
        PodContainer(
            name="php-apache",
            init=False,
            sidecar=False,
            resources=ContainerResources(0.2, 0.5, None, None),
            restart_count=0,
            ready=True,
            state="running",
            state_reason=None,
        ),
    ),
]


@pytest.mark.parametrize(
    ("fixture", "pod_key", "expected"),
    REAL_CONTAINERS,
    ids=[f"{fixture}:{key}" for fixture, key, _ in REAL_CONTAINERS],
)
def test_real_container_records(fixture: str, pod_key: str, expected: PodContainer) -> None:
    (path,) = [path for path in POD_FIXTURES if path.name == fixture]
    pods = {f"{pod.namespace}/{pod.name}": pod for pod in parse_pod_list(path.read_bytes())}
    assert pods[pod_key].containers == (expected,)


@pytest.mark.parametrize("path", POD_FIXTURES, ids=[path.name for path in POD_FIXTURES])
def test_phases_of_real_pod_lists(path: Path) -> None:
    phases = sorted({pod.phase or "" for pod in parse_pod_list(path.read_bytes())})
    assert phases == ["Failed", "Running", "Succeeded"]


# --- /pods synthetic cases ------------------------------------------------------------------


def pod_list(*items: dict[str, Any]) -> bytes:
    return json.dumps({"kind": "PodList", "apiVersion": "v1", "items": list(items)}).encode()


def pod(
    containers: list[dict[str, Any]],
    *,
    init_containers: list[dict[str, Any]] | None = None,
    status: dict[str, Any] | None = None,
    name: str = "web-0",
) -> dict[str, Any]:
    spec: dict[str, Any] = {"nodeName": "node-a", "containers": containers}
    if init_containers is not None:
        spec["initContainers"] = init_containers
    item: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "shop", "uid": "u-1"},
        "spec": spec,
    }
    if status is not None:
        item["status"] = status
    return item


NO_RESOURCES = ContainerResources(None, None, None, None)

SYNTHETIC_CASES = [
    pytest.param(
        pod([{"name": "app"}]),
        (PodContainer("app", False, False, NO_RESOURCES, None, None, None, None),),
        id="no-resources-no-status-yet",
    ),
    pytest.param(
        pod([{"name": "app", "resources": {"requests": {"cpu": "250m"}, "limits": None}}]),
        (
            PodContainer(
                "app",
                False,
                False,
                ContainerResources(0.25, None, None, None),
                None,
                None,
                None,
                None,
            ),
        ),
        id="only-cpu-request-null-limits",
    ),
    pytest.param(
        pod([{"name": "app", "resources": {"requests": {"cpu": 2, "memory": 1.5e9}}}]),
        (
            PodContainer(
                "app",
                False,
                False,
                ContainerResources(2.0, None, 1.5e9, None),
                None,
                None,
                None,
                None,
            ),
        ),
        id="bare-json-numbers-as-go-accepts",
    ),
    pytest.param(
        pod(
            [{"name": "app", "resources": {"limits": {"memory": "1Gi"}}}],
            init_containers=[
                {"name": "migrate", "resources": {"requests": {"cpu": "1"}}},
                {"name": "proxy", "restartPolicy": "Always"},
            ],
            status={
                "phase": "Pending",
                "initContainerStatuses": [
                    {
                        "name": "migrate",
                        "restartCount": 3,
                        "ready": False,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    },
                    {"name": "proxy", "restartCount": 0, "ready": True, "state": {"running": {}}},
                ],
                "containerStatuses": [
                    {
                        "name": "app",
                        "restartCount": 0,
                        "ready": False,
                        "state": {"waiting": {"reason": "PodInitializing"}},
                    }
                ],
            },
        ),
        (
            PodContainer(
                "app",
                False,
                False,
                ContainerResources(None, None, None, 2**30),
                0,
                False,
                "waiting",
                "PodInitializing",
            ),
            PodContainer(
                "migrate",
                True,
                False,
                ContainerResources(1.0, None, None, None),
                3,
                False,
                "waiting",
                "CrashLoopBackOff",
            ),
            PodContainer("proxy", True, True, NO_RESOURCES, 0, True, "running", None),
        ),
        id="init-containers-and-sidecar",
    ),
    pytest.param(
        pod(
            [{"name": "app"}],
            status={
                "phase": "Failed",
                "containerStatuses": [
                    {
                        "name": "app",
                        "restartCount": 7,
                        "ready": False,
                        "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
                    }
                ],
            },
        ),
        (PodContainer("app", False, False, NO_RESOURCES, 7, False, "terminated", "OOMKilled"),),
        id="oom-killed",
    ),
    pytest.param(
        pod(
            [{"name": "app"}],
            status={"containerStatuses": [{"name": "app", "restartCount": 0, "state": {}}]},
        ),
        (PodContainer("app", False, False, NO_RESOURCES, 0, None, None, None),),
        id="empty-state",
    ),
    pytest.param(
        pod([{"name": "app"}], init_containers=None, status={"containerStatuses": None}),
        (PodContainer("app", False, False, NO_RESOURCES, None, None, None, None),),
        id="null-status-lists",
    ),
]


@pytest.mark.parametrize(("item", "expected"), SYNTHETIC_CASES)
def test_synthetic_pods(item: dict[str, Any], expected: tuple[PodContainer, ...]) -> None:
    (parsed,) = parse_pod_list(pod_list(item))
    assert parsed.containers == expected
    assert (parsed.namespace, parsed.name, parsed.uid, parsed.node) == (
        "shop",
        "web-0",
        "u-1",
        "node-a",
    )


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"kind":"PodList","apiVersion":"v1","items":null}', id="null-items"),
        pytest.param(b'{"kind":"PodList","apiVersion":"v1","items":[]}', id="empty-items"),
        pytest.param(b'{"apiVersion":"v1","metadata":{}}', id="no-items-key"),
    ],
)
def test_empty_pod_lists(body: bytes) -> None:
    assert parse_pod_list(body) == ()


def test_pod_without_status_has_no_phase() -> None:
    (parsed,) = parse_pod_list(pod_list(pod([{"name": "app"}])))
    assert parsed == Pod(
        "shop",
        "web-0",
        "u-1",
        "node-a",
        None,
        (PodContainer("app", False, False, NO_RESOURCES, None, None, None, None),),
    )


BAD_CONTAINER = [{"name": "app", "resources": {"limits": {"cpu": "two"}}}]

ERROR_CASES = [
    pytest.param(b"<html>502 Bad Gateway</html>", "invalid_json", "", "not JSON", id="html"),
    pytest.param(b'{"items": [', "invalid_json", "", "not JSON", id="truncated"),
    pytest.param(b"\xff\xfe", "invalid_json", "", "not JSON", id="not-utf8"),
    pytest.param(b"[]", "invalid_data", "(document)", "expected an object", id="a-list"),
    pytest.param(
        b'{"kind":"NodeList","items":[]}', "invalid_data", "kind", "'PodList'", id="wrong-kind"
    ),
    pytest.param(b'{"items": {}}', "invalid_data", "items", "expected a list", id="items-object"),
    pytest.param(
        b'{"items": [3]}', "invalid_data", "items[0]", "expected an object", id="item-int"
    ),
    pytest.param(
        pod_list({"metadata": {"namespace": "shop"}}),
        "invalid_data",
        "items[0].metadata.name",
        "non-empty string",
        id="pod-without-name",
    ),
    pytest.param(
        pod_list(pod([{"name": "ok"}], name="a"), pod(BAD_CONTAINER, name="b")),
        "invalid_data",
        "items[1](shop/b).spec.containers[0].resources.limits.cpu",
        "invalid quantity 'two'",
        id="bad-quantity-names-pod-and-field",
    ),
    pytest.param(
        pod_list(
            pod(
                [{"name": "app"}],
                init_containers=[{"name": "i", "resources": {"requests": {"memory": "1 Gi"}}}],
            )
        ),
        "invalid_data",
        "items[0](shop/web-0).spec.initContainers[0].resources.requests.memory",
        "unexpected ' '",
        id="bad-init-container-quantity",
    ),
    pytest.param(
        pod_list(pod([{"name": "app", "resources": {"requests": {"cpu": True}}}])),
        "invalid_data",
        "items[0](shop/web-0).spec.containers[0].resources.requests.cpu",
        "expected a quantity string, got true",
        id="boolean-quantity",
    ),
    pytest.param(
        pod_list(pod([{"name": "app", "resources": {"requests": {"cpu": "1e400"}}}])),
        "invalid_data",
        "resources.requests.cpu",
        "too large",
        id="quantity-beyond-float",
    ),
    pytest.param(
        pod_list(pod([{"image": "nginx"}])),
        "invalid_data",
        "items[0](shop/web-0).spec.containers[0].name",
        "non-empty string",
        id="container-without-name",
    ),
    pytest.param(
        pod_list(
            pod(
                [{"name": "app"}],
                status={"containerStatuses": [{"name": "app", "restartCount": "3"}]},
            )
        ),
        "invalid_data",
        "items[0](shop/web-0).status.containerStatuses[0].restartCount",
        "expected an integer",
        id="restart-count-string",
    ),
    pytest.param(
        pod_list(
            pod([{"name": "app"}], status={"containerStatuses": [{"name": "app", "ready": "yes"}]})
        ),
        "invalid_data",
        "status.containerStatuses[0].ready",
        "expected true or false",
        id="ready-string",
    ),
    pytest.param(
        pod_list(pod([{"name": "app"}], status={"phase": 3})),
        "invalid_data",
        "items[0](shop/web-0).status.phase",
        "expected a string",
        id="phase-number",
    ),
]


@pytest.mark.parametrize(("body", "reason", "location", "problem"), ERROR_CASES)
def test_bad_pod_lists_say_where(body: bytes, reason: str, location: str, problem: str) -> None:
    with pytest.raises(PodListParseError) as caught:
        parse_pod_list(body)
    assert caught.value.reason == reason
    assert location in caught.value.location
    assert problem in str(caught.value)
    if location:
        assert str(caught.value).startswith(caught.value.location)
