"""Discovery documents: goldens, official client models, scopes, and the 406 negotiation rule."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes.client import ApiClient

from adapter.discovery_docs import (
    CustomMetricResource,
    ScopeConflictError,
    UnknownGroupError,
    api_group,
    api_group_list,
    custom_metrics_resource_list,
    external_metrics_resource_list,
    metrics_resource_list,
    negotiate_discovery,
)

ALL_GROUPS = ["external.metrics.k8s.io", "metrics.k8s.io", "custom.metrics.k8s.io"]
CUSTOM_METRICS = [
    CustomMetricResource("pods", "http_requests", True),
    CustomMetricResource("namespaces", "http_requests", False),
    CustomMetricResource("deployments.apps", "queue_length", True),
    CustomMetricResource("nodes", "node_load1", False),
    CustomMetricResource("pods", "http_requests", True),
]

DOCUMENTS: list[tuple[str, Callable[[], dict[str, Any]], str]] = [
    ("apis-all", lambda: api_group_list(ALL_GROUPS), "V1APIGroupList"),
    ("apis-resource-only", lambda: api_group_list(["metrics.k8s.io"]), "V1APIGroupList"),
    ("apis-none", lambda: api_group_list([]), "V1APIGroupList"),
    ("group-metrics", lambda: api_group("metrics.k8s.io"), "V1APIGroup"),
    ("group-custom", lambda: api_group("custom.metrics.k8s.io"), "V1APIGroup"),
    ("group-external", lambda: api_group("external.metrics.k8s.io"), "V1APIGroup"),
    ("resources-metrics-v1beta1", metrics_resource_list, "V1APIResourceList"),
    *[
        (
            f"resources-custom-{version}",
            lambda version=version: custom_metrics_resource_list(version, CUSTOM_METRICS),
            "V1APIResourceList",
        )
        for version in ("v1beta2", "v1beta1")
    ],
    (
        "resources-custom-empty",
        lambda: custom_metrics_resource_list("v1beta2", []),
        "V1APIResourceList",
    ),
    (
        "resources-external-v1beta1",
        lambda: external_metrics_resource_list(["queue_depth", "kafka_lag", "queue_depth"]),
        "V1APIResourceList",
    ),
]


@pytest.fixture
def k8s_client() -> Iterator[ApiClient]:
    client = ApiClient()
    yield client
    client.close()


@pytest.mark.parametrize(
    ("name", "build", "model"), DOCUMENTS, ids=[name for name, _, _ in DOCUMENTS]
)
def test_discovery_goldens_decode_with_official_models(
    golden: Callable[[str, str], None],
    k8s_client: ApiClient,
    name: str,
    build: Callable[[], dict[str, Any]],
    model: str,
) -> None:
    document = build()
    decoded = k8s_client.deserialize(json.dumps(document), model, "application/json")
    assert k8s_client.sanitize_for_serialization(decoded) == document
    golden(f"objects/discovery/{name}.json", json.dumps(document, indent=2) + "\n")


def test_custom_metrics_prefer_v1beta2() -> None:
    group = api_group("custom.metrics.k8s.io")
    assert group["preferredVersion"] == {
        "groupVersion": "custom.metrics.k8s.io/v1beta2",
        "version": "v1beta2",
    }
    assert [v["version"] for v in group["versions"]] == ["v1beta2", "v1beta1"]


def test_custom_entries_are_unique_sorted_and_shaped_like_the_walkthrough() -> None:
    resources = custom_metrics_resource_list("v1beta1", CUSTOM_METRICS)["resources"]
    assert [r["name"] for r in resources] == [
        "deployments.apps/queue_length",
        "namespaces/http_requests",
        "nodes/node_load1",
        "pods/http_requests",
    ]
    assert resources[3] == {
        "name": "pods/http_requests",
        "singularName": "",
        "namespaced": True,
        "kind": "MetricValueList",
        "verbs": ["get"],
    }


def test_one_resource_with_two_scopes_is_rejected_with_names() -> None:
    entries = [
        CustomMetricResource("widgets.example.com", "a", True),
        CustomMetricResource("widgets.example.com", "b", False),
    ]
    with pytest.raises(ScopeConflictError, match=r"'widgets.example.com' is namespaced=True.*'b'"):
        custom_metrics_resource_list("v1beta2", entries)


UNKNOWN_GROUPS: list[tuple[str, Callable[[], object], str]] = [
    ("group", lambda: api_group("apps"), "'apps' is not served"),
    ("group-list", lambda: api_group_list(["metrics.k8s.io", "batch"]), "batch are not served"),
    ("version", lambda: custom_metrics_resource_list("v1", []), "custom.metrics.k8s.io/v1 is not"),
]


@pytest.mark.parametrize(
    ("build", "message"), [c[1:] for c in UNKNOWN_GROUPS], ids=[c[0] for c in UNKNOWN_GROUPS]
)
def test_unknown_groups_and_versions_are_named(build: Callable[[], object], message: str) -> None:
    with pytest.raises(UnknownGroupError, match=message):
        build()


AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
NEGOTIATION_CASES = [
    ("aggregator-1.30", f"{AGGREGATED_V2},{AGGREGATED_V2BETA1}", "not_acceptable"),
    ("aggregator-1.28", AGGREGATED_V2BETA1, "not_acceptable"),
    ("aggregated-with-spaces", f"{AGGREGATED_V2.replace(';', '; ')}", "not_acceptable"),
    ("kubectl-1.30", f"{AGGREGATED_V2},{AGGREGATED_V2BETA1},application/json", "json"),
    ("plain-json", "application/json", "json"),
    ("json-charset", "application/json; charset=utf-8", "json"),
    ("json-upper-case", "Application/JSON", "json"),
    ("protobuf-then-any", "application/vnd.kubernetes.protobuf, */*", "json"),
    ("application-wildcard", "application/*", "json"),
    ("missing", None, "json"),
    ("empty", "", "json"),
    ("json-refused", "application/json;q=0", "not_acceptable"),
    ("table-only", "application/json;as=Table;v=v1;g=meta.k8s.io", "not_acceptable"),
    ("protobuf-only", "application/vnd.kubernetes.protobuf", "not_acceptable"),
    ("yaml-only", "application/yaml", "not_acceptable"),
    ("json-low-q", f"{AGGREGATED_V2},application/json;q=0.5", "json"),
]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [c[1:] for c in NEGOTIATION_CASES],
    ids=[c[0] for c in NEGOTIATION_CASES],
)
def test_discovery_negotiation(accept: str | None, expected: str) -> None:
    assert negotiate_discovery(accept) == expected
