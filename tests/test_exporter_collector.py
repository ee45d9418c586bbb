"""The background collector against stand-in kubelets (simcluster) over HTTPS with a token:
cluster-wide mode with a hanging, a garbage and a healthy node, node list changes, every fault
case of issue 3 at the collector level, /pods failures, counter resets and the running thread."""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from prometheus_client.parser import text_string_to_metric_families as parse_text
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from exporter.collector import Collector, Snapshot, Target
from exporter.kubelet_client import KubeletAuth, KubeletClient
from exporter.nodes import KubeletTarget, kubelet_targets
from exporter.targets import ClusterTargets, KubeletPaths, StaticTargets
from simcluster.kubelet_server import Fault, KubeletFleet
from simcluster.model import ClusterSpec, generate_cluster

TOKEN = "s3cr3t-kubelet-token-value"
TIMEOUT = 1.0
EPOCH = 1_750_000_000

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (name, frozenset(labels.items()))


def samples_of(snapshot: Snapshot) -> Samples:
    text = snapshot.body(openmetrics=False, gzip_accepted=False)[0].decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in parse_text(text)
        for sample in family.samples
    }


def nodes_of(samples: Samples, name: str) -> set[str]:
    return {dict(labels)["node"] for metric, labels in samples if metric == name}


@dataclass
class Pki:
    ca: trustme.CA
    ca_file: Path
    other_ca_file: Path
    token_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1").configure_cert(context)
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.crt"))
    trustme.CA().cert_pem.write_to_path(str(directory / "other-ca.crt"))
    (directory / "token").write_text(TOKEN + "\n", encoding="utf-8")
    return Pki(ca, directory / "ca.crt", directory / "other-ca.crt", directory / "token")


def node_object(name: str, url: str) -> dict[str, Any]:
    port = int(url.rsplit(":", 1)[1])
    return {
        "metadata": {"name": name},
        "status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        },
    }


class StandInLister:
    """Node lister whose answer the test changes between rounds."""

    def __init__(self, nodes: Sequence[dict[str, Any]]) -> None:
        self.nodes = list(nodes)

    def list_nodes(self) -> list[dict[str, Any]]:
        return list(self.nodes)


def cluster_collector(
    lister: StandInLister, auth: KubeletAuth, *, timeout: float = TIMEOUT, workers: int = 8
) -> tuple[Collector, ClusterTargets]:
    def connect(target: KubeletTarget) -> KubeletClient:
        return KubeletClient(target.url, auth, timeout_seconds=timeout, max_body_bytes=16 << 20)

    targets = ClusterTargets(lister, kubelet_targets, connect)
    collector = Collector(
        targets,
        interval_seconds=60.0,
        timeout_seconds=timeout,
        max_concurrent_scrapes=workers,
    )
    return collector, targets


@pytest.fixture(scope="module")
def fleet(pki: Pki) -> Iterator[KubeletFleet]:
    cluster = generate_cluster(ClusterSpec(nodes=3, pods_per_node=4, seed=3), epoch=EPOCH)
    with KubeletFleet(
        cluster,
        clock=lambda: EPOCH + 3600.0,
        ssl_context=pki.server_context(),
        token=TOKEN,
    ) as running:
        yield running


@pytest.fixture
def three_nodes(fleet: KubeletFleet) -> Iterator[tuple[str, str, str]]:
    healthy, hanging, garbage = sorted(fleet.urls)
    fleet.set_fault(hanging, Fault.HANG)
    fleet.set_fault(garbage, Fault.GARBAGE)
    yield healthy, hanging, garbage
    for node in fleet.urls:
        fleet.set_fault(node, Fault.NONE)


def test_cluster_mode_serves_healthy_nodes_and_bounds_the_round_by_the_timeout(
    fleet: KubeletFleet,
    three_nodes: tuple[str, str, str],
    pki: Pki,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    healthy, hanging, garbage = three_nodes
    lister = StandInLister([node_object(n, u) for n, u in fleet.urls.items()])
    auth = KubeletAuth(token_file=pki.token_file, ca_file=pki.ca_file)
    collector, targets = cluster_collector(lister, auth)
    try:
        started = time.monotonic()
        snapshot = collector.collect_round()
        elapsed = time.monotonic() - started
    finally:
        collector.stop()
        targets.close()
    # Summary and /pods of all three nodes run side by side: one timeout, not the sum of four.
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT * 2.5
    samples = samples_of(snapshot)
    assert nodes_of(samples, "kubestats_node_cpu_usage_seconds_total") == {healthy}
    assert nodes_of(samples, "kubestats_container_cpu_request_cores") == {healthy}
    assert samples[key("kubestats_exporter_scrape_success", node=healthy)] == 1
    assert samples[key("kubestats_exporter_pods_scrape_success", node=healthy)] == 1
    for node, reason in ((hanging, "timeout"), (garbage, "invalid_json")):
        assert samples[key("kubestats_exporter_scrape_success", node=node)] == 0
        assert samples[key("kubestats_exporter_scrape_errors_total", node=node, reason=reason)] == 1
        assert (
            samples[
                key("kubestats_exporter_scrape_errors_total", node=node, reason=f"pods_{reason}")
            ]
            == 1
        )
    assert samples[key("kubestats_cluster_nodes")] == 3
    assert samples[key("kubestats_exporter_node_list_errors_total")] == 0
    assert samples[key("kubestats_exporter_collection_duration_seconds")] == pytest.approx(
        elapsed, abs=0.5
    )
    assert (
        abs(samples[key("kubestats_exporter_last_collection_timestamp_seconds")] - time.time()) < 60
    )
    assert fleet.request_count(healthy, "/stats/summary") >= 1
    assert TOKEN not in caplog.text
    assert f"node {hanging} failed (timeout)" in caplog.text


def test_node_list_changes_between_rounds_and_departed_nodes_disappear(
    fleet: KubeletFleet, three_nodes: tuple[str, str, str], pki: Pki
) -> None:
    healthy, hanging, garbage = three_nodes
    fleet.set_fault(hanging, Fault.NONE)
    urls = fleet.urls
    lister = StandInLister(
        [node_object(healthy, urls[healthy]), node_object(garbage, urls[garbage])]
    )
    auth = KubeletAuth(token_file=pki.token_file, ca_file=pki.ca_file)
    collector, targets = cluster_collector(lister, auth)
    try:
        first = samples_of(collector.collect_round())
        lister.nodes = [node_object(healthy, urls[healthy]), node_object(hanging, urls[hanging])]
        second = samples_of(collector.collect_round())
    finally:
        collector.stop()
        targets.close()
    assert nodes_of(first, "kubestats_exporter_scrape_success") == {healthy, garbage}
    assert (
        key("kubestats_exporter_scrape_errors_total", node=garbage, reason="invalid_json") in first
    )
    # The garbage node left: every series of it is gone, its error count included.
    assert all(dict(labels).get("node") != garbage for _, labels in second)
    assert nodes_of(second, "kubestats_node_cpu_usage_seconds_total") == {healthy, hanging}
    assert second[key("kubestats_cluster_nodes")] == 2


def test_failed_node_listing_keeps_the_previous_nodes(fleet: KubeletFleet, pki: Pki) -> None:
    from exporter.nodes import NodeListError  # noqa: PLC0415

    class FlakyLister(StandInLister):
        fail = False

        def list_nodes(self) -> list[dict[str, Any]]:
            if self.fail:
                raise NodeListError("listing nodes was forbidden (HTTP 403 Forbidden)")
            return super().list_nodes()

    lister = FlakyLister([node_object(n, u) for n, u in fleet.urls.items()])
    auth = KubeletAuth(token_file=pki.token_file, ca_file=pki.ca_file)
    collector, targets = cluster_collector(lister, auth)
    try:
        collector.collect_round()
        lister.fail = True
        samples = samples_of(collector.collect_round())
    finally:
        collector.stop()
        targets.close()
    assert nodes_of(samples, "kubestats_node_cpu_usage_seconds_total") == set(fleet.urls)
    assert samples[key("kubestats_exporter_node_list_errors_total")] == 1


def test_node_without_usable_address_is_an_address_failure(fleet: KubeletFleet, pki: Pki) -> None:
    name, url = sorted(fleet.urls.items())[0]
    hostless = {"metadata": {"name": "no-address"}, "status": {"addresses": []}}
    lister = StandInLister([node_object(name, url), hostless])
    collector, targets = cluster_collector(
        lister, KubeletAuth(token_file=pki.token_file, ca_file=pki.ca_file)
    )
    try:
        samples = samples_of(collector.collect_round())
    finally:
        collector.stop()
        targets.close()
    assert samples[key("kubestats_exporter_scrape_success", node=name)] == 1
    assert samples[key("kubestats_exporter_scrape_success", node="no-address")] == 0
    assert (
        samples[key("kubestats_exporter_scrape_errors_total", node="no-address", reason="address")]
        == 1
    )


# (id, auth from the pki, expected reason or None for success)
TLS_CASES: list[tuple[str, Callable[[Pki], KubeletAuth], str | None]] = [
    ("verified", lambda p: KubeletAuth(token_file=p.token_file, ca_file=p.ca_file), None),
    ("wrong-ca", lambda p: KubeletAuth(token_file=p.token_file, ca_file=p.other_ca_file), "tls"),
    ("insecure", lambda p: KubeletAuth(token_file=p.token_file, insecure_skip_verify=True), None),
    ("no-token", lambda p: KubeletAuth(ca_file=p.ca_file), "unauthorized"),
]


@pytest.mark.parametrize(
    ("make_auth", "reason"), [c[1:] for c in TLS_CASES], ids=[c[0] for c in TLS_CASES]
)
def test_tls_and_token_per_node_mode(
    fleet: KubeletFleet,
    pki: Pki,
    make_auth: Callable[[Pki], KubeletAuth],
    reason: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    name, url = sorted(fleet.urls.items())[0]
    client = KubeletClient(url, make_auth(pki), timeout_seconds=5.0)
    paths = KubeletPaths(client)
    collector = Collector(
        StaticTargets(Target(name, paths, paths)),
        interval_seconds=60.0,
        timeout_seconds=5.0,
        max_concurrent_scrapes=2,
    )
    try:
        samples = samples_of(collector.collect_round())
    finally:
        collector.stop()
        client.close()
    if reason is None:
        assert samples[key("kubestats_exporter_scrape_success", node=name)] == 1
        assert samples[key("kubestats_node_running_pods", node=name)] >= 1
    else:
        assert samples[key("kubestats_exporter_scrape_success", node=name)] == 0
        assert samples[key("kubestats_exporter_scrape_errors_total", node=name, reason=reason)] == 1
    if reason == "tls":
        assert "not signed by the CA in" in caplog.text
    assert TOKEN not in caplog.text


FLEET_FAULTS = [
    (Fault.HANG, "timeout"),
    (Fault.RESET, "connection"),
    (Fault.ERROR, "http_status"),
    (Fault.TRUNCATED, "connection"),
    (Fault.GARBAGE, "invalid_json"),
]


@pytest.mark.parametrize(("fault", "reason"), FLEET_FAULTS, ids=[f.value for f, _ in FLEET_FAULTS])
def test_fleet_fault_is_a_reason_and_the_other_nodes_are_served(
    fleet: KubeletFleet, pki: Pki, fault: Fault, reason: str
) -> None:
    faulty, *others = sorted(fleet.urls)
    fleet.set_fault(faulty, fault)
    lister = StandInLister([node_object(n, u) for n, u in fleet.urls.items()])
    collector, targets = cluster_collector(
        lister, KubeletAuth(token_file=pki.token_file, ca_file=pki.ca_file)
    )
    try:
        samples = samples_of(collector.collect_round())
    finally:
        fleet.set_fault(faulty, Fault.NONE)
        collector.stop()
        targets.close()
    assert samples[key("kubestats_exporter_scrape_errors_total", node=faulty, reason=reason)] == 1
    assert samples[key("kubestats_exporter_scrape_success", node=faulty)] == 0
    assert nodes_of(samples, "kubestats_node_cpu_usage_seconds_total") == set(others)


def single(server: HTTPServer, *, max_body: int = 16 << 20) -> Collector:
    client = KubeletClient(
        server.url_for("/").rstrip("/"),
        KubeletAuth(),
        timeout_seconds=TIMEOUT,
        max_body_bytes=max_body,
    )
    paths = KubeletPaths(client)
    return Collector(
        StaticTargets(Target("n1", paths, paths)),
        interval_seconds=60.0,
        timeout_seconds=TIMEOUT,
        max_concurrent_scrapes=2,
    )


SUMMARY = (Path(__file__).parent / "fixtures/kubelet/summary-minikube-1.35.json").read_bytes()
PODS = (Path(__file__).parent / "fixtures/kubelet/pods-minikube-1.35.json").read_bytes()


def fifty_megabytes(request: Request) -> Response:
    chunk = b" " * (1 << 20)
    return Response((chunk for _ in range(50)), content_type="application/json")


STATUS_FAULTS: list[tuple[str, Callable[[Any], None], str]] = [
    ("401", lambda h: h.respond_with_data("Unauthorized", status=401), "unauthorized"),
    ("403", lambda h: h.respond_with_data("Forbidden (user=x)", status=403), "unauthorized"),
    ("500", lambda h: h.respond_with_data("boom", status=500), "http_status"),
    ("50MB", lambda h: h.respond_with_handler(fifty_megabytes), "too_large"),
    ("truncated-json", lambda h: h.respond_with_data(SUMMARY[: len(SUMMARY) // 2]), "invalid_json"),
    ("wrong-shape", lambda h: h.respond_with_json({"node": {"nodeName": 7}}), "invalid_data"),
]


@pytest.mark.parametrize(
    ("answer", "reason"), [c[1:] for c in STATUS_FAULTS], ids=[c[0] for c in STATUS_FAULTS]
)
def test_summary_fault_reasons_and_pods_metrics_survive(
    httpserver: HTTPServer, answer: Callable[[Any], None], reason: str
) -> None:
    answer(httpserver.expect_request("/stats/summary"))
    httpserver.expect_request("/pods").respond_with_data(PODS, content_type="application/json")
    collector = single(httpserver)
    try:
        samples = samples_of(collector.collect_round())
    finally:
        collector.stop()
    assert samples[key("kubestats_exporter_scrape_errors_total", node="n1", reason=reason)] == 1
    assert samples[key("kubestats_exporter_scrape_success", node="n1")] == 0
    assert samples[key("kubestats_exporter_pods_scrape_success", node="n1")] == 1
    assert nodes_of(samples, "kubestats_container_restarts_total") == {"n1"}


POD_FAULTS = [
    *STATUS_FAULTS[:-1],
    (
        "wrong-shape",
        lambda h: h.respond_with_json({"kind": "PodList", "items": [{"metadata": {}}]}),
        "invalid_data",
    ),
]


@pytest.mark.parametrize(
    ("answer", "reason"), [c[1:] for c in POD_FAULTS], ids=[c[0] for c in POD_FAULTS]
)
def test_failing_pods_is_its_own_reason_and_keeps_the_summary_metrics(
    httpserver: HTTPServer, answer: Callable[[Any], None], reason: str
) -> None:
    httpserver.expect_request("/stats/summary").respond_with_data(SUMMARY)
    answer(httpserver.expect_request("/pods"))
    collector = single(httpserver)
    try:
        samples = samples_of(collector.collect_round())
    finally:
        collector.stop()
    node = "datagen-1-35"  # the Summary's nodeName labels its data metrics
    assert samples[key("kubestats_exporter_scrape_success", node="n1")] == 1
    assert samples[key("kubestats_exporter_pods_scrape_success", node="n1")] == 0
    assert (
        samples[key("kubestats_exporter_scrape_errors_total", node="n1", reason=f"pods_{reason}")]
        == 1
    )
    assert key("kubestats_node_cpu_usage_seconds_total", node=node) in samples
    assert not any(name == "kubestats_container_cpu_request_cores" for name, _ in samples)


class SequenceSource:
    """Returns the given bodies in turn: a kubelet whose container restarted between rounds."""

    def __init__(self, bodies: Sequence[bytes]) -> None:
        self.bodies = list(bodies)

    def fetch_summary(self) -> bytes:
        return self.bodies.pop(0)


def test_counter_resets_pass_through_unchanged() -> None:
    import json  # noqa: PLC0415

    document = json.loads(SUMMARY)
    container = document["pods"][0]["containers"][0]
    before = container["cpu"]["usageCoreNanoSeconds"]
    restarted = json.loads(SUMMARY)
    restarted["pods"][0]["containers"][0]["cpu"]["usageCoreNanoSeconds"] = 1_000_000_000
    source = SequenceSource([json.dumps(document).encode(), json.dumps(restarted).encode()])
    collector = Collector(
        StaticTargets(Target("n1", source)),
        interval_seconds=60.0,
        timeout_seconds=1.0,
        max_concurrent_scrapes=1,
    )
    pod = document["pods"][0]["podRef"]
    series = key(
        "kubestats_container_cpu_usage_seconds_total",
        node=document["node"]["nodeName"],
        namespace=pod["namespace"],
        pod=pod["name"],
        container=container["name"],
    )
    try:
        first = samples_of(collector.collect_round())
        second = samples_of(collector.collect_round())
    finally:
        collector.stop()
    assert first[series] == pytest.approx(before / 1e9)
    assert second[series] == 1.0  # lower than before: Prometheus' rate() handles the reset


def test_background_thread_collects_every_interval_and_stops(tmp_path: Path) -> None:
    calls: list[float] = []
    done = threading.Event()

    class CountingSource:
        def fetch_summary(self) -> bytes:
            calls.append(time.monotonic())
            if len(calls) >= 3:
                done.set()
            return SUMMARY

    collector = Collector(
        StaticTargets(Target("n1", CountingSource())),
        interval_seconds=0.1,
        timeout_seconds=1.0,
        max_concurrent_scrapes=1,
    )
    assert collector.snapshot() is None
    collector.start()
    try:
        assert done.wait(10.0)
        assert collector.ready
    finally:
        collector.stop()
    count = len(calls)
    time.sleep(0.3)
    assert len(calls) == count  # no round after stop()


def test_two_scrapes_of_one_round_share_one_fetch_and_one_render(tmp_path: Path) -> None:
    source = SequenceSource([SUMMARY])  # a second fetch would fail with IndexError
    collector = Collector(
        StaticTargets(Target("n1", source)),
        interval_seconds=60.0,
        timeout_seconds=1.0,
        max_concurrent_scrapes=1,
    )
    snapshot = collector.collect_round()
    collector.stop()
    first = snapshot.body(openmetrics=False, gzip_accepted=True)
    second = snapshot.body(openmetrics=False, gzip_accepted=True)
    assert first[1]
    assert first[0] is second[0]
    assert snapshot.body(openmetrics=True, gzip_accepted=False)[0].endswith(b"# EOF\n")
