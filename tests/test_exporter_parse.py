"""Parsing the kubelet Summary: absent vs zero, nulls, Windows and cgroup v2, broken input."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from exporter.collect import collect
from exporter.model import NodeResult, Summary
from exporter.parse import (
    SummaryJSONError,
    SummaryParseError,
    SummaryStructureError,
    parse_summary,
)


def payload(node: dict[str, Any] | None = None, pods: Any = None) -> bytes:
    document: dict[str, Any] = {"node": {"nodeName": "n1", **(node or {})}}
    if pods is not None:
        document["pods"] = pods
    return json.dumps(document).encode()


def pod(**fields: Any) -> dict[str, Any]:
    return {"podRef": {"name": "web", "namespace": "shop", "uid": "u1"}, **fields}


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "app", **fields}


def exposed(summary: Summary) -> dict[tuple[str, str], int | float]:
    """(metric name, label string) -> value, for the data metrics of one Summary."""
    families = collect([NodeResult("n1", summary, None, 0.0)], {})
    return {
        (family.name, labels): value
        for family in families
        if not family.name.startswith("kubestats_exporter_")
        for labels, value in family.samples
    }


POD = 'node="n1",namespace="shop",pod="web"'
CONTAINER = f'{POD},container="app"'

# (id, body, check on the parsed Summary)
VALID_CASES: list[tuple[str, bytes, Callable[[Summary], object]]] = [
    (
        "minimal-node-no-pods",
        payload(),
        lambda s: s.pods == () and s.node.cpu is None and s.node.network is None,
    ),
    ("pods-null-is-empty", payload(pods=None), lambda s: s.pods == ()),
    (
        "containers-and-volume-null",
        payload(pods=[pod(containers=None, volume=None)]),
        lambda s: s.pods[0].containers == () and s.pods[0].volumes == (),
    ),
    (
        "absent-blocks-are-none",
        payload(pods=[pod(containers=[container()])]),
        lambda s: (
            s.pods[0].containers[0].cpu is None
            and s.pods[0].containers[0].rootfs is None
            and s.pods[0].ephemeral_storage is None
            and s.pods[0].process_count is None
        ),
    ),
    (
        "zero-stays-zero",
        payload({"cpu": {"usageNanoCores": 0, "usageCoreNanoSeconds": 0}}),
        lambda s: (
            s.node.cpu is not None and s.node.cpu.usage_cores == 0 and s.node.cpu.usage_seconds == 0
        ),
    ),
    (
        "missing-usage-nano-cores-is-none",
        payload({"cpu": {"usageCoreNanoSeconds": 2_500_000_000}}),
        lambda s: (
            s.node.cpu is not None
            and s.node.cpu.usage_cores is None
            and s.node.cpu.usage_seconds == 2.5
        ),
    ),
    (
        "null-time-block-old-kubelet",
        payload(pods=[pod(containers=[container(rootfs={"time": None})])]),
        lambda s: (
            s.pods[0].containers[0].rootfs is not None
            and s.pods[0].containers[0].rootfs.used_bytes is None
            and s.pods[0].containers[0].rootfs.time is None
        ),
    ),
    (
        "go-zero-time-is-none",
        payload({"startTime": "0001-01-01T00:00:00Z"}),
        lambda s: s.node.start_time is None,
    ),
    (
        "rfc3339-time-to-unix-seconds",
        payload({"startTime": "2026-06-26T09:18:15Z"}),
        lambda s: s.node.start_time == 1782465495.0,
    ),
    (
        "pvc-reference",
        payload(
            pods=[
                pod(
                    volume=[
                        {
                            "name": "data",
                            "usedBytes": 5,
                            "pvcRef": {"name": "db", "namespace": "shop"},
                        },
                        {"name": "tmp", "usedBytes": 1},
                    ]
                )
            ]
        ),
        lambda s: (
            [(v.name, v.pvc_name, v.fs.used_bytes) for v in s.pods[0].volumes]
            == [("data", "db", 5), ("tmp", None, 1)]
        ),
    ),
    (
        "psi-total-microseconds-to-seconds-avg-percent-to-ratio",
        payload({"cpu": {"psi": {"some": {"total": 1_500_000, "avg10": 50, "avg60": 2.5}}}}),
        lambda s: (
            s.node.cpu is not None
            and s.node.cpu.pressure is not None
            and s.node.cpu.pressure.some is not None
            and s.node.cpu.pressure.some.total_seconds == 1.5
            and s.node.cpu.pressure.some.avg10_ratio == 0.5
            and s.node.cpu.pressure.some.avg60_ratio == 0.025
            and s.node.cpu.pressure.some.avg300_ratio is None
            and s.node.cpu.pressure.full is None
        ),
    ),
    (
        "default-interface-only-windows",
        payload({"network": {"name": "", "rxBytes": 10, "txBytes": 20}}),
        lambda s: (
            s.node.network is not None
            and s.node.network.default_interface is None
            and [(i.name, i.rx_bytes, i.rx_errors) for i in s.node.network.interfaces]
            == [("", 10, None)]
        ),
    ),
    (
        "interfaces-list-wins-over-inline-default",
        payload(
            {
                "network": {
                    "name": "eth0",
                    "rxBytes": 1,
                    "interfaces": [{"name": "eth0", "rxBytes": 1}, {"name": "cbr0", "rxBytes": 2}],
                }
            }
        ),
        lambda s: (
            s.node.network is not None
            and s.node.network.default_interface == "eth0"
            and [i.name for i in s.node.network.interfaces] == ["eth0", "cbr0"]
        ),
    ),
    (
        "runtime-image-and-container-fs",
        payload({"runtime": {"imageFs": {"usedBytes": 7}, "containerFs": {"usedBytes": 8}}}),
        lambda s: (
            s.node.image_fs is not None
            and s.node.image_fs.used_bytes == 7
            and s.node.container_fs is not None
            and s.node.container_fs.used_bytes == 8
        ),
    ),
    (
        "accelerator-duty-cycle-percent-to-ratio",
        payload(
            pods=[
                pod(
                    containers=[
                        container(
                            accelerators=[
                                {
                                    "make": "nvidia",
                                    "model": "tesla-t4",
                                    "id": "GPU-1",
                                    "memoryTotal": 16,
                                    "memoryUsed": 4,
                                    "dutyCycle": 25,
                                }
                            ]
                        )
                    ]
                )
            ]
        ),
        lambda s: s.pods[0].containers[0].accelerators[0].duty_cycle_ratio == 0.25,
    ),
    (
        "user-defined-metrics-null-ignored",
        payload(pods=[pod(containers=[container(userDefinedMetrics=None)])]),
        lambda s: s.pods[0].containers[0].name == "app",
    ),
]


@pytest.mark.parametrize(
    ("body", "check"), [c[1:] for c in VALID_CASES], ids=[c[0] for c in VALID_CASES]
)
def test_valid_payload(body: bytes, check: Callable[[Summary], object]) -> None:
    assert check(parse_summary(body))


# (id, body, expected exception type, expected message)
INVALID_CASES: list[tuple[str, bytes, type[SummaryParseError], str]] = [
    (
        "truncated-json",
        b'{"node": {"nodeName": "n1"',
        SummaryJSONError,
        "body is not JSON: Expecting ',' delimiter at line 1 column 27",
    ),
    ("empty-body", b"", SummaryJSONError, "body is not JSON: Expecting value at line 1 column 1"),
    (
        "html-error-page",
        b"<html>502 Bad Gateway</html>",
        SummaryJSONError,
        "body is not JSON: Expecting value at line 1 column 1",
    ),
    (
        "nan-constant",
        b'{"node": {"nodeName": "n1", "cpu": {"usageNanoCores": NaN}}}',
        SummaryJSONError,
        "body is not JSON: NaN is not valid JSON (the kubelet never sends it)",
    ),
    ("not-utf8", b"\xff\xfe\xfa", SummaryJSONError, "body is not JSON"),
    ("document-is-a-list", b"[]", SummaryStructureError, "(document): expected object, got []"),
    ("node-missing", b'{"pods": []}', SummaryStructureError, "node: missing (required)"),
    (
        "node-name-missing",
        b'{"node": {}}',
        SummaryStructureError,
        "node.nodeName: missing (required)",
    ),
    (
        "pods-is-object",
        payload(pods={"a": 1}),
        SummaryStructureError,
        '(document).pods: expected list, got {"a": 1}',
    ),
    (
        "pod-ref-missing",
        payload(pods=[{"containers": []}]),
        SummaryStructureError,
        "pods[0].podRef: missing (required)",
    ),
    (
        "container-cpu-string",
        payload(pods=[pod(containers=[container(cpu={"usageCoreNanoSeconds": "abc"})])]),
        SummaryStructureError,
        'pods[0].containers[0].cpu.usageCoreNanoSeconds: expected non-negative integer, got "abc"',
    ),
    (
        "negative-counter",
        payload({"memory": {"workingSetBytes": -1}}),
        SummaryStructureError,
        "node.memory.workingSetBytes: expected non-negative integer, got -1",
    ),
    (
        "boolean-is-not-a-number",
        payload({"fs": {"usedBytes": True}}),
        SummaryStructureError,
        "node.fs.usedBytes: expected non-negative integer, got true",
    ),
    (
        "float-bytes",
        payload({"swap": {"swapUsageBytes": 1.5}}),
        SummaryStructureError,
        "node.swap.swapUsageBytes: expected non-negative integer, got 1.5",
    ),
    (
        "cpu-block-is-a-number",
        payload({"cpu": 5}),
        SummaryStructureError,
        "node.cpu: expected object, got 5",
    ),
    (
        "bad-time",
        payload({"startTime": "yesterday"}),
        SummaryStructureError,
        'node.startTime: expected RFC 3339 time string, got "yesterday"',
    ),
    (
        "psi-average-string",
        payload(pods=[pod(memory={"psi": {"full": {"total": 1, "avg60": "x"}}})]),
        SummaryStructureError,
        'pods[0].memory.psi.full.avg60: expected number, got "x"',
    ),
    (
        "interface-list-element",
        payload({"network": {"interfaces": [{"name": "eth0"}, 3]}}),
        SummaryStructureError,
        "node.network.interfaces[1]: expected object, got 3",
    ),
    (
        "pvc-name-missing",
        payload(pods=[pod(volume=[{"name": "data", "pvcRef": {}}])]),
        SummaryStructureError,
        "pods[0].volume[0].pvcRef.name: missing (required)",
    ),
    (
        "long-value-is-shortened",
        payload({"rlimit": {"maxpid": "x" * 100}}),
        SummaryStructureError,
        'node.rlimit.maxpid: expected integer, got "' + "x" * 56 + "...",
    ),
]


@pytest.mark.parametrize(
    ("body", "error_type", "message"),
    [c[1:] for c in INVALID_CASES],
    ids=[c[0] for c in INVALID_CASES],
)
def test_invalid_payload_raises_one_clear_error(
    body: bytes, error_type: type[SummaryParseError], message: str
) -> None:
    with pytest.raises(error_type) as caught:
        parse_summary(body)
    assert str(caught.value).startswith(message)
    assert caught.value.reason == (
        "invalid_json" if error_type is SummaryJSONError else "invalid_data"
    )


# Absent fields yield no sample; zeros yield a 0 sample (cgroup v2 misconfiguration, Windows).
# (id, body, metric name, label string, expected value or None for "no sample")
SAMPLE_CASES: list[tuple[str, bytes, str, str, float | None]] = [
    (
        "cgroup-v2-zero-cpu-is-a-zero-sample",
        payload({"cpu": {"usageCoreNanoSeconds": 0}, "memory": {"workingSetBytes": 0}}),
        "kubestats_node_cpu_usage_seconds_total",
        'node="n1"',
        0,
    ),
    (
        "cgroup-v2-zero-working-set-is-a-zero-sample",
        payload({"memory": {"workingSetBytes": 0}}),
        "kubestats_node_memory_working_set_bytes",
        'node="n1"',
        0,
    ),
    (
        "no-usage-nano-cores-no-cores-sample",
        payload(pods=[pod(containers=[container(cpu={"usageCoreNanoSeconds": 5})])]),
        "kubestats_container_cpu_usage_cores",
        CONTAINER,
        None,
    ),
    (
        "fresh-container-without-cpu-has-no-cpu-sample",
        payload(pods=[pod(containers=[container(memory={"workingSetBytes": 10})])]),
        "kubestats_container_cpu_usage_seconds_total",
        CONTAINER,
        None,
    ),
    (
        "fresh-container-memory-sample",
        payload(pods=[pod(containers=[container(memory={"workingSetBytes": 10})])]),
        "kubestats_container_memory_working_set_bytes",
        CONTAINER,
        10,
    ),
    (
        "windows-no-inodes-no-inode-sample",
        payload({"fs": {"usedBytes": 3, "capacityBytes": 9}}),
        "kubestats_node_filesystem_inodes_free",
        'node="n1",filesystem="root"',
        None,
    ),
    (
        "windows-fs-used-bytes",
        payload({"fs": {"usedBytes": 3, "capacityBytes": 9}}),
        "kubestats_node_filesystem_used_bytes",
        'node="n1",filesystem="root"',
        3,
    ),
    (
        "windows-empty-interface-name",
        payload(pods=[pod(network={"name": "", "rxBytes": 10})]),
        "kubestats_pod_network_receive_bytes_total",
        f'{POD},interface=""',
        10,
    ),
    (
        "windows-absent-tx-errors",
        payload(pods=[pod(network={"name": "", "rxBytes": 10})]),
        "kubestats_pod_network_transmit_errors_total",
        f'{POD},interface=""',
        None,
    ),
    (
        "no-default-interface-no-info",
        payload(pods=[pod(network={"name": "", "rxBytes": 10})]),
        "kubestats_pod_network_default_interface_info",
        f'{POD},interface=""',
        None,
    ),
    (
        "default-interface-info",
        payload({"network": {"name": "eth0", "interfaces": [{"name": "eth0"}]}}),
        "kubestats_node_network_default_interface_info",
        'node="n1",interface="eth0"',
        1,
    ),
    (
        "volume-without-pvc-has-empty-label",
        payload(pods=[pod(volume=[{"name": "tmp", "usedBytes": 4}])]),
        "kubestats_volume_used_bytes",
        f'{POD},volume="tmp",persistentvolumeclaim=""',
        4,
    ),
    (
        "volume-pvc-label",
        payload(pods=[pod(volume=[{"name": "data", "usedBytes": 4, "pvcRef": {"name": "db"}}])]),
        "kubestats_volume_used_bytes",
        f'{POD},volume="data",persistentvolumeclaim="db"',
        4,
    ),
    (
        "pod-process-count",
        payload(pods=[pod(process_stats={"process_count": 0})]),
        "kubestats_pod_processes",
        POD,
        0,
    ),
    (
        "system-container-label",
        payload(
            {"systemContainers": [{"name": "kubelet", "cpu": {"usageCoreNanoSeconds": 10**9}}]}
        ),
        "kubestats_system_container_cpu_usage_seconds_total",
        'node="n1",system_container="kubelet"',
        1.0,
    ),
    (
        "container-fs-label",
        payload({"runtime": {"containerFs": {"inodesUsed": 12}}}),
        "kubestats_node_filesystem_inodes_used",
        'node="n1",filesystem="container"',
        12,
    ),
    (
        "label-values-are-escaped",
        payload(pods=[pod(volume=[{"name": 'we"ird\\', "usedBytes": 1}])]),
        "kubestats_volume_used_bytes",
        f'{POD},volume="we\\"ird\\\\",persistentvolumeclaim=""',
        1,
    ),
]


@pytest.mark.parametrize(
    ("body", "name", "labels", "expected"),
    [c[1:] for c in SAMPLE_CASES],
    ids=[c[0] for c in SAMPLE_CASES],
)
def test_absent_means_no_sample_and_zero_means_zero(
    body: bytes, name: str, labels: str, expected: float | None
) -> None:
    samples = exposed(parse_summary(body))
    if expected is None:
        assert (name, labels) not in samples
        # The entity itself is still exposed, so the absence is the field's, not the entity's.
        assert any(key[1] == labels for key in samples) or name.endswith("_info")
    else:
        assert samples[(name, labels)] == expected


def test_duplicate_pods_keep_the_newest() -> None:
    old = pod(startTime="2026-01-01T00:00:00Z", memory={"workingSetBytes": 1})
    new = pod(startTime="2026-01-02T00:00:00Z", memory={"workingSetBytes": 2})
    samples = exposed(parse_summary(payload(pods=[new, old])))
    assert samples[("kubestats_pod_memory_working_set_bytes", POD)] == 2
