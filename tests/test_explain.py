"""``kubemetrics-adapter explain`` end to end against a REAL Prometheus holding backfilled data,
with goldens for its text and JSON output, plus the CLI's --help goldens and exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from adapter.cli import build_parser, main
from adapter.explain import (
    KubernetesObjectLister,
    ObjectListError,
    run_explain,
)
from adapter.planner import ObjectRef
from adapter.prometheus import PrometheusSettings
from adapter.resources import PODS, GroupResource
from adapter.selectors import FieldSelector, LabelSelector, parse_label_selector
from tests.conftest import REPO_ROOT
from tests.prometheus_server import PrometheusServer, running_prometheus

# Relative to the repository (tests chdir there), so the goldens hold no machine paths.
RULES = "config/rules.yaml"
AT = 1714564800  # 2024-05-01T12:00:00Z: fixed, so the goldens hold the sample times
STEP = 15
CM = "/apis/custom.metrics.k8s.io/v1beta2"
EM = "/apis/external.metrics.k8s.io/v1beta1"
RM = "/apis/metrics.k8s.io/v1beta1"

# (namespace, pod, container, node, CPU cores used, memory bytes)
CONTAINERS = [
    ("default", "web-1", "app", "node-1", 0.25, 104857600),
    ("default", "web-1", "proxy", "node-1", 0.05, 20971520),
    ("default", "web-2", "app", "node-2", 0.5, 209715200),
    ("default", "worker-1", "app", "node-2", 1.0, 52428800),
    ("data", "db-0", "postgres", "node-1", 0.125, 1073741824),
]
NODES = [("node-1", 1.5, 4294967296), ("node-2", 2.0, 8589934592)]


def openmetrics() -> str:
    """Five minutes of kubestats_ samples every 15s up to AT (counters grow at the CPU rate)."""
    times = range(AT - 300, AT + 1, STEP)
    families: dict[str, list[str]] = {
        "kubestats_container_cpu_usage_seconds_total": [],
        "kubestats_container_memory_working_set_bytes": [],
        "kubestats_node_cpu_usage_seconds_total": [],
        "kubestats_node_memory_working_set_bytes": [],
    }
    for namespace, pod, container, node, cores, memory in CONTAINERS:
        labels = f'container="{container}",namespace="{namespace}",node="{node}",pod="{pod}"'
        for t in times:
            used = cores * (t - AT + 1000)
            families["kubestats_container_cpu_usage_seconds_total"].append(
                f"kubestats_container_cpu_usage_seconds_total{{{labels}}} {used} {t}"
            )
            families["kubestats_container_memory_working_set_bytes"].append(
                f"kubestats_container_memory_working_set_bytes{{{labels}}} {memory} {t}"
            )
    for node, cores, memory in NODES:
        for t in times:
            families["kubestats_node_cpu_usage_seconds_total"].append(
                f'kubestats_node_cpu_usage_seconds_total{{node="{node}"}}'
                f" {cores * (t - AT + 1000)} {t}"
            )
            families["kubestats_node_memory_working_set_bytes"].append(
                f'kubestats_node_memory_working_set_bytes{{node="{node}"}} {memory} {t}'
            )
    lines: list[str] = []
    for name, samples in families.items():
        lines.append(f"# TYPE {name} gauge")
        lines.extend(samples)
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(autouse=True)
def in_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)


@pytest.fixture(scope="module")
def prometheus_with_data(
    prometheus_binary: str, promtool: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    with running_prometheus(
        prometheus_binary,
        tmp_path_factory.mktemp("explain-prometheus"),
        openmetrics=openmetrics(),
        promtool=promtool,
        # The data is from a fixed day in the past: keep it.
        extra_args=("--storage.tsdb.retention.time=100y",),
    ) as server:
        yield server


class FakeLister:
    """The cluster's pods and nodes, with their labels, as a label-selector-evaluating fake."""

    OBJECTS = {
        PODS: [
            ObjectRef("default", "web-2"),
            ObjectRef("default", "web-1"),
            ObjectRef("default", "worker-1"),
            ObjectRef("data", "db-0"),
        ],
        GroupResource("", "nodes"): [ObjectRef(None, "node-1"), ObjectRef(None, "node-2")],
    }
    LABELS = {"web-1": {"app": "web"}, "web-2": {"app": "web"}, "worker-1": {"app": "worker"}}

    def list_objects(
        self,
        resource: GroupResource,
        namespace: str | None,
        label_selector: LabelSelector,
        field_selector: FieldSelector,
    ) -> list[ObjectRef]:
        return [
            ref
            for ref in self.OBJECTS.get(resource, [])
            if (namespace is None or ref.namespace == namespace)
            and label_selector.matches(self.LABELS.get(ref.name, {}))
            and field_selector.matches(
                {"metadata.name": ref.name, "metadata.namespace": ref.namespace or ""}
            )
        ]


def explain(
    server: PrometheusServer,
    target: str,
    output: str = "text",
    lister: FakeLister | None = None,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = run_explain(
        config_file=RULES,
        prometheus_settings=PrometheusSettings(server.url, timeout=10.0),
        target=target,
        kubeconfig=None,
        output=output,
        at=float(AT),
        max_query_bytes=16384,
        stdout=stdout,
        stderr=stderr,
        lister=lister,
    )
    return code, stdout.getvalue(), stderr.getvalue()


# (golden name, request target, uses the fake cluster, expected exit code)
CASES = [
    (
        "custom-pods-star-unresolved",
        f"{CM}/namespaces/default/pods/%2A/container_memory_working_set_bytes"
        "?labelSelector=app%3Dweb",
        False,
        0,
    ),
    (
        "custom-pods-star-cluster",
        f"{CM}/namespaces/default/pods/%2A/container_cpu_usage_seconds_per_second"
        "?labelSelector=app%3Dweb",
        True,
        0,
    ),
    (
        "custom-one-pod",
        f"{CM}/namespaces/data/pods/db-0/container_memory_working_set_bytes",
        False,
        0,
    ),
    (
        "custom-namespace-metric",
        f"{CM}/namespaces/default/metrics/container_memory_working_set_bytes",
        False,
        0,
    ),
    (
        "custom-one-pod-no-data",
        f"{CM}/namespaces/default/pods/web-9/container_memory_working_set_bytes",
        False,
        1,
    ),
    (
        "custom-typo",
        f"{CM}/namespaces/default/pods/web-1/container_memory_working_set_byte",
        False,
        1,
    ),
    (
        "custom-wrong-resource",
        f"{CM}/namespaces/default/services/web/container_memory_working_set_bytes",
        False,
        1,
    ),
    ("external-all-nodes", f"{EM}/namespaces/default/node_cpu_usage_cores", False, 0),
    (
        "external-one-node",
        f"{EM}/namespaces/default/node_cpu_usage_cores?labelSelector=node%3Dnode-2",
        False,
        0,
    ),
    ("resource-pods-cluster", f"{RM}/namespaces/default/pods?labelSelector=app%3Dweb", True, 0),
    ("resource-pods-all-unresolved", f"{RM}/pods", False, 0),
    ("resource-node", f"{RM}/nodes/node-2", False, 0),
    ("bad-path", f"{CM}/namespaces/default/http_requests", False, 2),
    (
        "bad-selector",
        f"{CM}/namespaces/default/pods/web-1/container_memory_working_set_bytes"
        "?metricLabelSelector=a%3E1",
        False,
        2,
    ),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("name", "target", "cluster", "code"), CASES, ids=[c[0] for c in CASES])
def test_explain_against_real_prometheus(
    prometheus_with_data: PrometheusServer,
    golden: Callable[[str, str], None],
    name: str,
    target: str,
    cluster: bool,
    code: int,
) -> None:
    got_code, text, errors = explain(
        prometheus_with_data, target, lister=FakeLister() if cluster else None
    )
    assert errors == ""
    golden(f"explain/{name}.txt", text)
    assert got_code == code


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("name", "target"),
    [(c[0], c[1]) for c in CASES if c[0] in ("custom-pods-star-cluster", "custom-typo")],
    ids=["found", "not found"],
)
def test_explain_json(
    prometheus_with_data: PrometheusServer,
    golden: Callable[[str, str], None],
    name: str,
    target: str,
) -> None:
    _, text, _ = explain(prometheus_with_data, target, output="json", lister=FakeLister())
    document: dict[str, Any] = json.loads(text)
    assert set(document) >= {"request", "rule", "queries", "values", "error", "exitCode"}
    golden(f"explain/{name}.json", text)


@pytest.mark.e2e
def test_cli_explain_against_real_prometheus(
    prometheus_with_data: PrometheusServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "explain",
            "--config",
            RULES,
            "--prometheus-url",
            prometheus_with_data.url,
            "--prometheus-header",
            "X-Scope-OrgID=team-a",
            "--time",
            "2024-05-01T12:00:00Z",
            f"{CM}/namespaces/data/pods/*/container_memory_working_set_bytes",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "  data/db-0  1073741824  at 2024-05-01T12:00:00Z" in out


def test_cli_explain_prometheus_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    code = main(
        [
            "explain",
            "--config",
            RULES,
            "--prometheus-url",
            "http://127.0.0.1:9",
            f"{CM}/namespaces/default/pods/web-1/container_memory_working_set_bytes",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "failed for" in out  # discovery failed, and says so
    assert "could not find the metric container_memory_working_set_bytes" in out


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["--prometheus-url", "ftp://x", "--time", "yesterday"], "neither unix seconds"),
        (["--prometheus-url", "ftp://x"], "must be an http:// or https:// URL"),
        (["--prometheus-url", "http://x", "--prometheus-header", "bad name=1"], "HTTP token"),
        (["--prometheus-url", "http://x", "--prometheus-timeout", "soon"], "--prometheus-timeout"),
        (["--prometheus-url", "http://x", "--time", "2024-05-01T12:00:00"], "time zone"),
        (["--prometheus-url", "http://x", "--max-query-bytes", "0"], "must be positive"),
    ],
    ids=["time", "url", "header", "timeout", "naive time", "max bytes"],
)
def test_cli_explain_usage_errors(
    argv: list[str], text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["explain", "--config", RULES, *argv, f"{RM}/nodes"])
    assert code == 2
    assert text in capsys.readouterr().err


def test_cli_explain_broken_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n- seriesQuery: x\n  metricsQueryy: y\n", encoding="utf-8")
    code = main(
        ["explain", "--config", str(rules), "--prometheus-url", "http://127.0.0.1:9", f"{RM}/nodes"]
    )
    assert code == 2
    assert "rules[0]" in capsys.readouterr().err


def test_cli_explain_missing_flags_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["explain", f"{RM}/nodes"])
    assert caught.value.code == 2
    assert "--config" in capsys.readouterr().err


def test_help_golden(golden: Callable[[str, str], None]) -> None:
    golden("adapter-help.txt", build_parser().format_help())


def test_explain_help_golden(golden: Callable[[str, str], None]) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["explain", "--help"])
    commands = next(a for a in parser._actions if a.dest == "command")
    explain_parser = commands.choices["explain"]  # type: ignore[index]
    golden("explain/help.txt", explain_parser.format_help())


def test_console_script_help_runs() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "adapter.cli", "explain", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0
    assert completed.stdout.startswith("usage: kubemetrics-adapter explain")


# --- the kubeconfig lister with the real kubernetes client against a loopback server -----------


def kubeconfig_for(httpserver: HTTPServer, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: "http://127.0.0.1:{httpserver.port}"}}
users:
- name: u
  user: {{token: not-a-real-token}}
contexts:
- name: x
  context: {{cluster: c, user: u}}
current-context: x
""",
        encoding="utf-8",
    )
    return path


def test_kubernetes_lister_core_and_group_resources(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request(
        "/api/v1/namespaces/default/pods", query_string="labelSelector=app%3Dweb"
    ).respond_with_json(
        {
            "kind": "PodList",
            "items": [
                {"metadata": {"name": "web-2", "namespace": "default"}},
                {"metadata": {"name": "web-1", "namespace": "default"}},
            ],
        }
    )
    httpserver.expect_request("/apis/apps").respond_with_json(
        {"kind": "APIGroup", "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}
    )
    httpserver.expect_request("/apis/apps/v1/namespaces/ns/deployments").respond_with_json(
        {"items": [{"metadata": {"name": "api", "namespace": "ns"}}]}
    )
    httpserver.expect_request("/api/v1/nodes").respond_with_json(
        {"items": [{"metadata": {"name": "node-1"}}]}
    )
    lister = KubernetesObjectLister(kubeconfig_for(httpserver, tmp_path))
    try:
        assert lister.list_objects(
            PODS, "default", parse_label_selector("app=web"), FieldSelector()
        ) == [ObjectRef("default", "web-2"), ObjectRef("default", "web-1")]
        assert lister.list_objects(
            GroupResource("apps", "deployments"), "ns", LabelSelector(), FieldSelector()
        ) == [ObjectRef("ns", "api")]
        assert lister.list_objects(
            GroupResource("", "nodes"), None, LabelSelector(), FieldSelector()
        ) == [ObjectRef(None, "node-1")]
    finally:
        lister.close()
    request = httpserver.log[0][0]
    assert request.headers["Authorization"] == "Bearer not-a-real-token"


def test_kubernetes_lister_errors_name_the_request(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/api/v1/namespaces/default/pods").respond_with_data(
        "forbidden", status=403
    )
    lister = KubernetesObjectLister(kubeconfig_for(httpserver, tmp_path))
    try:
        with pytest.raises(ObjectListError, match=r"listing pods in namespace default: .*403"):
            lister.list_objects(PODS, "default", LabelSelector(), FieldSelector())
    finally:
        lister.close()
