"""Golden exposition for every real kubelet payload, checked by two independent parsers and
promtool, with values spot-checked against the raw JSON (read here without exporter.parse)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.collect import collect
from exporter.exposition import render_openmetrics, render_text
from exporter.model import NodeResult
from exporter.parse import parse_summary
from exporter.pods import parse_pod_list
from tests.conftest import kubelet_fixture_paths

SUMMARIES = kubelet_fixture_paths("summary")
IDS = [path.stem for path in SUMMARIES]


def exposition(path: Path, *, openmetrics: bool = False) -> str:
    summary = parse_summary(path.read_bytes())
    # Fixed duration and error counts: the golden must not depend on the machine's speed.
    result = NodeResult(summary.node.name, summary, None, 0.25)
    families = collect([result], {(summary.node.name, "timeout"): 2})
    return render_openmetrics(families) if openmetrics else render_text(families)


def samples_by_key(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in parse_text(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return samples


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (name, frozenset(labels.items()))


def test_there_are_payloads() -> None:
    assert len(SUMMARIES) >= 3


@pytest.mark.parametrize("path", SUMMARIES, ids=IDS)
def test_golden_exposition(path: Path, golden: Any) -> None:
    golden(f"exporter/{path.stem}.prom", exposition(path))


@pytest.mark.parametrize("path", SUMMARIES, ids=IDS)
def test_golden_openmetrics(path: Path, golden: Any) -> None:
    text = exposition(path, openmetrics=True)
    golden(f"exporter/{path.stem}.openmetrics", text)
    from_openmetrics = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in parse_openmetrics(text)
        for sample in family.samples
    }
    assert from_openmetrics == samples_by_key(exposition(path))


@pytest.mark.parametrize("path", SUMMARIES, ids=IDS)
def test_promtool_accepts_exposition(path: Path, promtool: str, tmp_path: Path) -> None:
    target = tmp_path / "metrics.prom"
    target.write_text(exposition(path), encoding="utf-8")
    with target.open("rb") as stdin:
        completed = subprocess.run(
            [promtool, "check", "metrics"],
            stdin=stdin,
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout == b"", completed.stdout
    assert completed.stderr == b"", completed.stderr


@pytest.mark.parametrize("path", SUMMARIES, ids=IDS)
def test_values_equal_the_payload(path: Path) -> None:
    raw = json.loads(path.read_bytes())
    samples = samples_by_key(exposition(path))
    node = raw["node"]
    name = node["nodeName"]

    assert samples[key("kubestats_node_cpu_usage_seconds_total", node=name)] == pytest.approx(
        node["cpu"]["usageCoreNanoSeconds"] / 1e9
    )
    assert samples[key("kubestats_node_cpu_usage_cores", node=name)] == pytest.approx(
        node["cpu"]["usageNanoCores"] / 1e9
    )
    assert (
        samples[key("kubestats_node_memory_working_set_bytes", node=name)]
        == node["memory"]["workingSetBytes"]
    )
    assert (
        samples[key("kubestats_node_filesystem_used_bytes", node=name, filesystem="image")]
        == node["runtime"]["imageFs"]["usedBytes"]
    )
    for interface in node["network"]["interfaces"]:
        assert (
            samples[
                key(
                    "kubestats_node_network_transmit_bytes_total",
                    node=name,
                    interface=interface["name"],
                )
            ]
            == interface["txBytes"]
        )

    checked_containers = checked_volumes = 0
    for pod in raw["pods"]:
        ref = {"node": name, "namespace": pod["podRef"]["namespace"], "pod": pod["podRef"]["name"]}
        if "workingSetBytes" in pod.get("memory", {}):
            assert (
                samples[key("kubestats_pod_memory_working_set_bytes", **ref)]
                == pod["memory"]["workingSetBytes"]
            )
        if "usedBytes" in pod.get("ephemeral-storage", {}):
            assert (
                samples[key("kubestats_pod_ephemeral_storage_used_bytes", **ref)]
                == pod["ephemeral-storage"]["usedBytes"]
            )
        for volume in pod.get("volume") or []:
            pvc = volume.get("pvcRef", {}).get("name", "")
            labels = {**ref, "volume": volume["name"], "persistentvolumeclaim": pvc}
            assert samples[key("kubestats_volume_used_bytes", **labels)] == volume["usedBytes"]
            checked_volumes += 1
        for container in pod["containers"]:
            labels = {**ref, "container": container["name"]}
            cpu = container.get("cpu", {})
            series = key("kubestats_container_cpu_usage_seconds_total", **labels)
            if "usageCoreNanoSeconds" in cpu:
                assert samples[series] == pytest.approx(cpu["usageCoreNanoSeconds"] / 1e9)
            else:
                assert series not in samples
            assert (
                samples[key("kubestats_container_memory_working_set_bytes", **labels)]
                == container["memory"]["workingSetBytes"]
            )
            assert (
                samples[key("kubestats_container_rootfs_used_bytes", **labels)]
                == (container["rootfs"]["usedBytes"])
            )
            checked_containers += 1
    assert checked_containers > 10
    assert checked_volumes > 0 or path.stem == "summary-minikube-1.35"

    assert samples[key("kubestats_exporter_scrape_success", node=name)] == 1
    assert samples[key("kubestats_exporter_scrape_errors_total", node=name, reason="timeout")] == 2


def test_psi_and_start_time_conversions() -> None:
    path = next(p for p in SUMMARIES if p.stem == "summary-minikube-1.35")
    samples = samples_by_key(exposition(path))
    # node.cpu.psi.full.total = 32884223 microseconds; node.startTime = 2026-06-26T09:18:15Z
    assert samples[
        key("kubestats_node_cpu_pressure_full_seconds_total", node="datagen-1-35")
    ] == pytest.approx(32.884223)
    assert samples[key("kubestats_node_start_time_seconds", node="datagen-1-35")] == 1782465495
    assert samples[key("kubestats_node_pid_max", node="datagen-1-35")] == 62639
    assert samples[key("kubestats_node_processes", node="datagen-1-35")] == 814
    assert (
        samples[
            key(
                "kubestats_node_network_default_interface_info",
                node="datagen-1-35",
                interface="eth0",
            )
        ]
        == 1
    )


def test_gke_system_containers() -> None:
    path = next(p for p in SUMMARIES if p.stem == "summary-gke-docker-2019")
    raw = json.loads(path.read_bytes())
    samples = samples_by_key(exposition(path))
    node = raw["node"]["nodeName"]
    for system_container in raw["node"]["systemContainers"]:
        series = key(
            "kubestats_system_container_memory_working_set_bytes",
            node=node,
            system_container=system_container["name"],
        )
        assert samples[series] == system_container["memory"]["workingSetBytes"]


PODS = kubelet_fixture_paths("pods")
POD_METRICS = {
    "kubestats_pod_phase",
    "kubestats_container_cpu_request_cores",
    "kubestats_container_cpu_limit_cores",
    "kubestats_container_memory_request_bytes",
    "kubestats_container_memory_limit_bytes",
    "kubestats_container_restarts_total",
    "kubestats_node_running_pods",
    "kubestats_exporter_pods_scrape_success",
}


def pods_exposition(path: Path) -> str:
    pods = parse_pod_list(path.read_bytes())
    result = NodeResult("minikube", None, None, 0.25, pods=pods)
    families = [family for family in collect([result], {}) if family.name in POD_METRICS]
    return render_text(families)


@pytest.mark.parametrize("path", PODS, ids=[path.stem for path in PODS])
def test_golden_pods_exposition(path: Path, golden: Any, promtool: str, tmp_path: Path) -> None:
    text = pods_exposition(path)
    golden(f"exporter/{path.stem}.prom", text)
    assert {sample.name for family in parse_text(text) for sample in family.samples} == POD_METRICS
    target = tmp_path / "pods.prom"
    target.write_text(text, encoding="utf-8")
    with target.open("rb") as stdin:
        completed = subprocess.run(
            [promtool, "check", "metrics"],
            stdin=stdin,
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.parametrize("path", PODS, ids=[path.stem for path in PODS])
def test_pods_values_equal_the_payload(path: Path) -> None:
    """Requests, limits and restarts read back against the raw PodList (without exporter.pods'
    records): quantities in their simplest spellings, the ones these fixtures use."""
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}

    def quantity(text: str) -> float:
        for suffix in ("Ki", "Mi", "Gi", "m", "k", "M", "G"):
            if text.endswith(suffix):
                return float(text[: -len(suffix)]) * units[suffix]
        return float(text)

    samples = samples_by_key(pods_exposition(path))
    checked = 0
    running = 0
    for item in json.loads(path.read_bytes())["items"]:
        ref = {"node": "minikube", "namespace": item["metadata"]["namespace"]}
        ref["pod"] = item["metadata"]["name"]
        running += item["status"].get("phase") == "Running"
        for phase in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
            expected = 1 if item["status"]["phase"] == phase else 0
            assert samples[key("kubestats_pod_phase", **ref, phase=phase)] == expected
        statuses = {s["name"]: s for s in item["status"].get("containerStatuses", [])}
        for container in item["spec"]["containers"]:
            labels = {**ref, "container": container["name"]}
            resources = container.get("resources", {})
            for kind, word in (("requests", "request"), ("limits", "limit")):
                for resource, unit in (("cpu", "cores"), ("memory", "bytes")):
                    series = key(f"kubestats_container_{resource}_{word}_{unit}", **labels)
                    given = resources.get(kind, {}).get(resource)
                    if given is None:
                        assert series not in samples
                    else:
                        assert samples[series] == pytest.approx(quantity(given))
                        checked += 1
            status = statuses.get(container["name"])
            if status is not None:
                restarts = key("kubestats_container_restarts_total", **labels)
                assert samples[restarts] == status["restartCount"]
    assert checked > 5
    assert samples[key("kubestats_node_running_pods", node="minikube")] == running
