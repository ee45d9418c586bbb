"""Kubernetes caches: pure parsing, and list/watch/discovery against the loopback stand-in."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from adapter.kube_cache import (
    KubeCache,
    KubeObject,
    KubeRequestError,
    KubeResponseError,
    WatchEvent,
    object_from_json,
    parse_object_list,
    parse_watch_event,
    resources_from_discovery,
    split_lines,
    start_kube_cache,
)
from adapter.resources import GroupResource
from adapter.selectors import parse_label_selector
from tests.kube_apiserver_standin import KubeApiserverStandin, StandinState

SA_TOKEN = "cache-test-sa-token"
DEADLINE_SECONDS = 10.0


def pod(
    namespace: str, name: str, labels: dict[str, str], phase: str = "Running"
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"namespace": namespace, "name": name, "labels": labels},
        "status": {"phase": phase},
    }


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    pytest.fail(f"not within {DEADLINE_SECONDS}s: {what}")


# --- pure ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            b'{"type":"ADDED","object":{"metadata":{"name":"a","namespace":"n",'
            b'"resourceVersion":"7","labels":{"x":"1"}},"status":{"phase":"Pending"}}}',
            WatchEvent("ADDED", KubeObject("n", "a", {"x": "1"}, "Pending"), "7"),
            id="added-pod",
        ),
        pytest.param(
            b'{"type":"DELETED","object":{"metadata":{"name":"node-1","resourceVersion":"9",'
            b'"deletionTimestamp":"2024-05-01T12:00:00Z"}}}',
            WatchEvent("DELETED", KubeObject("", "node-1", {}, "", deleting=True), "9"),
            id="deleted-node",
        ),
        pytest.param(
            b'{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"12"}}}',
            WatchEvent("BOOKMARK", None, "12"),
            id="bookmark",
        ),
        pytest.param(
            b'{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old"}}',
            WatchEvent("ERROR", None, "", 410, "too old"),
            id="gone",
        ),
    ],
)
def test_parse_watch_event(line: bytes, expected: WatchEvent) -> None:
    assert parse_watch_event(line, "WATCH /api/v1/pods") == expected


@pytest.mark.parametrize(
    ("item", "message"),
    [
        pytest.param([], "an object must be a JSON object", id="not-object"),
        pytest.param({"kind": "Pod"}, "object without metadata", id="no-metadata"),
        pytest.param({"metadata": {"name": ""}}, "object without metadata.name", id="no-name"),
        pytest.param(
            {"metadata": {"name": "a", "labels": ["x"]}}, "a: malformed", id="labels-list"
        ),
    ],
)
def test_bad_objects_say_where(item: object, message: str) -> None:
    with pytest.raises(KubeResponseError, match=f"^GET /api/v1/pods: .*{message}"):
        object_from_json(item, "GET /api/v1/pods")


def test_list_and_bad_watch_lines() -> None:
    listed = parse_object_list(
        b'{"kind":"PodList","metadata":{"resourceVersion":"55"},"items":['
        b'{"metadata":{"name":"a","namespace":"n"}}]}',
        "GET /api/v1/pods",
    )
    assert listed.resource_version == "55"
    assert listed.items == (KubeObject("n", "a"),)
    with pytest.raises(KubeResponseError, match="unknown watch event"):
        parse_watch_event(b'{"type":"SURPRISE"}', "WATCH /api/v1/pods")
    with pytest.raises(KubeResponseError, match="not JSON"):
        parse_object_list(b"<html>", "GET /api/v1/pods")


@pytest.mark.parametrize(
    ("pending", "chunk", "lines", "rest"),
    [
        pytest.param(b"", b'{"a":1}\n{"b"', [b'{"a":1}'], b'{"b"', id="partial"),
        pytest.param(b'{"b"', b":2}\n\n", [b'{"b":2}'], b"", id="completed-and-blank"),
        pytest.param(b"", b"", [], b"", id="empty"),
    ],
)
def test_split_lines(pending: bytes, chunk: bytes, lines: list[bytes], rest: bytes) -> None:
    assert split_lines(pending, chunk) == (lines, rest)


def test_discovery_skips_subresources_and_prefers_earlier_groups() -> None:
    found = resources_from_discovery(
        [
            (
                "v1",
                {
                    "resources": [
                        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod"},
                        {"name": "pods/log", "namespaced": True, "kind": "Pod"},
                    ]
                },
            ),
            (
                "example.com/v1alpha1",
                {"resources": [{"name": "widgets", "namespaced": True, "kind": "Widget"}]},
            ),
        ]
    )
    assert [(d.info.group_resource, d.info.singular, d.version) for d in found] == [
        (GroupResource("", "pods"), "pod", "v1"),
        (GroupResource("example.com", "widgets"), "widget", "v1alpha1"),
    ]


# --- against the stand-in ----------------------------------------------------------------------


@pytest.fixture
def standin() -> Iterator[KubeApiserverStandin]:
    with KubeApiserverStandin(trustme.CA(), StandinState(SA_TOKEN)) as server:
        server.put("namespaces", {"metadata": {"name": "default"}})
        server.put("nodes", {"metadata": {"name": "node-a", "labels": {"zone": "z1"}}})
        server.put("pods", pod("default", "web-1", {"app": "web"}))
        yield server


@pytest.fixture
def cache(standin: KubeApiserverStandin, tmp_path: Path) -> Iterator[KubeCache]:
    ca_file = tmp_path / "ca.pem"
    standin.ca.cert_pem.write_to_path(str(ca_file))
    started = start_kube_cache(standin.api_client(ca_file), on_demand_ttl_seconds=0.0)
    try:
        assert started.wait_synced(DEADLINE_SECONDS)
        yield started
    finally:
        started.stop()


def _pod_names(cache: KubeCache) -> list[str]:
    return [p.name for p in cache.objects.pods.select(None, parse_label_selector(""))]


def test_initial_list_fills_every_store(cache: KubeCache) -> None:
    assert cache.objects.sizes() == {"pods": 1, "nodes": 1, "namespaces": 1}
    assert cache.objects.nodes.get("", "node-a") == KubeObject("", "node-a", {"zone": "z1"})


def test_watch_events_update_the_cache(cache: KubeCache, standin: KubeApiserverStandin) -> None:
    standin.put("pods", pod("default", "web-2", {"app": "web"}))
    wait_until(lambda: _pod_names(cache) == ["web-1", "web-2"], "web-2 added")
    standin.put("pods", pod("default", "web-2", {"app": "web"}, phase="Failed"))
    wait_until(
        lambda: (
            cache.objects.pods.get("default", "web-2") is not None
            and cache.objects.pods.get("default", "web-2").phase == "Failed"
        ),  # type: ignore[union-attr]
        "web-2 modified",
    )
    standin.delete("pods", "default", "web-1")
    wait_until(lambda: _pod_names(cache) == ["web-2"], "web-1 deleted")


def test_dropped_watch_resumes_and_later_events_still_arrive(
    cache: KubeCache, standin: KubeApiserverStandin
) -> None:
    wait_until(lambda: standin.state.watch_calls.get("pods", 0) == 1, "watch opened")
    lists_before = standin.state.list_calls["pods"]
    watches_before = standin.state.watch_calls["pods"]
    standin.drop_watches()
    wait_until(lambda: standin.state.watch_calls["pods"] > watches_before, "watch re-opened")
    standin.put("pods", pod("default", "after-drop", {"app": "web"}))
    wait_until(lambda: "after-drop" in _pod_names(cache), "event after the drop")
    # Resumed from the last resourceVersion: no full relist was needed.
    assert standin.state.list_calls["pods"] == lists_before


def test_expired_history_relists(cache: KubeCache, standin: KubeApiserverStandin) -> None:
    lists_before = standin.state.list_calls["pods"]
    # The pod is added while the watch is down and its event forgotten: only a relist sees it.
    with standin.state.changed:
        standin.state.watch_generation += 1
        standin.state.changed.notify_all()
    standin.put("pods", pod("default", "while-gone", {"app": "web"}))
    standin.compact()
    wait_until(lambda: "while-gone" in _pod_names(cache), "relist after 410")
    assert standin.state.list_calls["pods"] > lists_before
    standin.put("pods", pod("default", "after-relist", {"app": "web"}))
    wait_until(lambda: "after-relist" in _pod_names(cache), "watch after relist")


def test_select_leaves_out_stopped_pods(cache: KubeCache, standin: KubeApiserverStandin) -> None:
    standin.put("pods", pod("default", "done", {"app": "web"}, phase="Succeeded"))
    wait_until(lambda: "done" in _pod_names(cache), "done pod cached")
    selected = cache.objects.select(
        GroupResource("", "pods"), "default", parse_label_selector("app=web")
    )
    assert [p.name for p in selected] == ["web-1"]


def test_new_crd_appears_after_discovery_refresh(
    cache: KubeCache, standin: KubeApiserverStandin
) -> None:
    assert cache.catalog.normalize("", "widget") is None
    with standin.state.lock:
        standin.state.discovery["example.com/v1"] = [
            {
                "name": "widgets",
                "singularName": "widget",
                "namespaced": True,
                "kind": "Widget",
                "verbs": ["list"],
            }
        ]
    cache.catalog.refresh()
    widgets = GroupResource("example.com", "widgets")
    assert cache.catalog.normalize("", "widget") == widgets
    assert cache.catalog.kind(widgets) == "Widget"
    standin.put(
        "widgets.example.com",
        {"metadata": {"namespace": "default", "name": "w1", "labels": {"a": "1"}}},
    )
    standin.put("widgets.example.com", {"metadata": {"namespace": "default", "name": "w2"}})
    selected = cache.objects.select(widgets, "default", parse_label_selector("a=1"))
    assert [o.name for o in selected] == ["w1"]


def test_on_demand_list_of_unknown_resource_is_a_clear_error(cache: KubeCache) -> None:
    with pytest.raises(
        KubeRequestError, match=r"the cluster has no resource gadgets\.example\.com"
    ):
        cache.objects.select(
            GroupResource("example.com", "gadgets"), "default", parse_label_selector("")
        )
