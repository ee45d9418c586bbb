"""Flags, settings validation, --help golden, and the README metric table against the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from exporter.cli import build_parser, main, settings_from_args, targets_for
from exporter.collector import Target
from exporter.metrics import METRICS, SCOPE_LABELS, MetricType
from exporter.settings import Settings, SettingsError, parse_duration
from exporter.source import FileSource
from exporter.targets import KubeletPaths
from tests.conftest import REPO_ROOT


def settings(*argv: str, environ: dict[str, str] | None = None) -> Settings:
    return settings_from_args(build_parser().parse_args(argv), environ or {})


def test_help_golden(golden: Any) -> None:
    golden("exporter/help.txt", build_parser().format_help())


def test_console_script_help_runs() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "exporter.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )
    assert completed.returncode == 0
    assert completed.stdout == build_parser().format_help()


def only_target(got: Settings, service_account_dir: Path) -> Target:
    (target,) = targets_for(got, service_account_dir=service_account_dir).current().targets
    return target


def test_defaults(tmp_path: Path) -> None:
    got = settings("--kubelet-url", "https://10.0.0.1:10250/stats/summary")
    assert got == Settings(
        kubelet_url="https://10.0.0.1:10250/stats/summary",
        kubelet_file=None,
        kubelet_timeout_seconds=10.0,
        kubelet_max_body_bytes=64 * 1024 * 1024,
        listen_host="",
        listen_port=9787,
        node_name=None,
        log_level="info",
    )
    assert got.target_name == "10.0.0.1"
    target = only_target(got, tmp_path)
    assert isinstance(target.summary, KubeletPaths)
    assert (target.summary.summary_path, target.pods) == ("/stats/summary", target.summary)
    assert target.name_from_summary


def test_file_url_and_node_name(tmp_path: Path) -> None:
    got = settings(
        "--kubelet-url",
        f"file://{tmp_path}/my%20summary.json",
        "--listen-address",
        "[::1]:0",
        environ={"NODE_NAME": "worker-1"},
    )
    assert got.kubelet_file == tmp_path / "my summary.json"
    assert (got.listen_host, got.listen_port, got.node_name) == ("::1", 0, "worker-1")
    target = only_target(got, tmp_path)
    assert isinstance(target.summary, FileSource)
    assert (target.node, target.pods, target.name_from_summary) == ("worker-1", None, False)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("500ms", 0.5), ("1m30s", 90.0), ("2", 2.0), ("1.5s", 1.5), ("1h", 3600.0)],
    ids=["seconds", "milliseconds", "compound", "bare-number", "fraction", "hours"],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


# (id, argv, every expected problem)
INVALID = [
    (
        "nothing-to-read",
        [],
        [
            "say which kubelet to read: --kubelet-url URL, --node-name NAME (or the NODE_NAME "
            "environment variable) for the local node, or --all-nodes"
        ],
    ),
    (
        "bad-scheme",
        ["--kubelet-url", "ftp://x/stats"],
        ["--kubelet-url 'ftp://x/stats': scheme must be http, https or file, not 'ftp'"],
    ),
    ("no-host", ["--kubelet-url", "http:///stats"], ["--kubelet-url 'http:///stats': no host"]),
    (
        "relative-file",
        ["--kubelet-url", "file://summary.json"],
        [
            "--kubelet-url 'file://summary.json': a file URL needs an absolute path, "
            "e.g. file:///tmp/summary.json"
        ],
    ),
    (
        "everything-wrong-at-once",
        [
            "--kubelet-url",
            "localhost:10250",
            "--kubelet-timeout",
            "soon",
            "--kubelet-max-body-bytes",
            "0",
            "--listen-address",
            ":http",
            "--log-level",
            "loud",
        ],
        [
            "--kubelet-url 'localhost:10250': scheme must be http, https or file, not 'localhost'",
            "--kubelet-timeout: 'soon' is not a duration like 10s, 500ms or 1m30s",
            "--kubelet-max-body-bytes '0': must be a positive integer",
            "--listen-address ':http': port must be a number from 0 to 65535",
            "--log-level 'loud': must be one of debug, info, warning, error",
        ],
    ),
    (
        "zero-timeout-and-no-port",
        ["--kubelet-url", "http://k/", "--kubelet-timeout", "0s", "--listen-address", "9787"],
        [
            "--kubelet-timeout '0s': must be more than 0",
            "--listen-address '9787': expected host:port, e.g. :9787",
        ],
    ),
    (
        "port-out-of-range",
        ["--kubelet-url", "http://k/", "--listen-address", "127.0.0.1:70000"],
        ["--listen-address '127.0.0.1:70000': port must be a number from 0 to 65535"],
    ),
]


@pytest.mark.parametrize(
    ("argv", "problems"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_every_problem_is_reported(argv: list[str], problems: list[str]) -> None:
    with pytest.raises(SettingsError) as caught:
        settings(*argv)
    assert caught.value.problems == problems


def test_main_exits_2_and_prints_problems(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--kubelet-url", "ftp://x", "--log-level", "loud"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "kubemetrics-exporter: --kubelet-url 'ftp://x': scheme must be http, https or file, "
        "not 'ftp'",
        "kubemetrics-exporter: --log-level 'loud': must be one of debug, info, warning, error",
    ]


def readme_metric_rows() -> dict[str, tuple[str, str]]:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- BEGIN exporter -->", 1)[1].split("<!-- END exporter -->", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        match = re.match(r"\| `(kubestats_[a-z0-9_]+)` \| (\w+) \| ([^|]*) \|", line)
        if match:
            assert match.group(1) not in rows, f"{match.group(1)} documented twice"
            rows[match.group(1)] = (match.group(2), match.group(3).strip())
    return rows


def test_readme_documents_every_metric_and_nothing_else() -> None:
    documented = readme_metric_rows()
    exported = {row.name: row for row in METRICS}
    assert sorted(set(exported) - set(documented)) == [], "metrics missing from the README"
    assert sorted(set(documented) - set(exported)) == [], "README documents unknown metrics"
    for name, (kind, labels) in documented.items():
        row = exported[name]
        expected_labels = [*SCOPE_LABELS[row.scope], *(label for label, _ in row.extra_labels)]
        assert (kind, labels) == (row.type.value, ", ".join(expected_labels)), name


def test_metric_table_follows_the_naming_rules() -> None:
    names = [row.name for row in METRICS]
    assert len(names) == len(set(names))
    for row in METRICS:
        assert re.fullmatch(r"kubestats_[a-z][a-z0-9_]*", row.name), row.name
        assert row.name.endswith("_total") == (row.type is MetricType.COUNTER), row.name
        assert row.name.endswith("_info") == (row.type is MetricType.INFO), row.name
        assert row.help.endswith("."), row.name


ADAPTER_CONTRACT = [
    ("kubestats_node_cpu_usage_seconds_total", ("node",)),
    ("kubestats_node_memory_working_set_bytes", ("node",)),
    ("kubestats_pod_cpu_usage_seconds_total", ("node", "namespace", "pod")),
    ("kubestats_pod_memory_working_set_bytes", ("node", "namespace", "pod")),
    ("kubestats_container_cpu_usage_seconds_total", ("node", "namespace", "pod", "container")),
    ("kubestats_container_memory_working_set_bytes", ("node", "namespace", "pod", "container")),
    ("kubestats_container_start_time_seconds", ("node", "namespace", "pod", "container")),
    ("kubestats_pod_network_receive_bytes_total", ("node", "namespace", "pod", "interface")),
    ("kubestats_pod_network_transmit_bytes_total", ("node", "namespace", "pod", "interface")),
    ("kubestats_pod_network_receive_errors_total", ("node", "namespace", "pod", "interface")),
    ("kubestats_pod_network_transmit_errors_total", ("node", "namespace", "pod", "interface")),
    ("kubestats_pod_ephemeral_storage_used_bytes", ("node", "namespace", "pod")),
    *(
        (
            f"kubestats_volume_{quantity}",
            ("node", "namespace", "pod", "volume", "persistentvolumeclaim"),
        )
        for quantity in ("used_bytes", "capacity_bytes", "available_bytes", "inodes")
    ),
    ("kubestats_exporter_scrape_success", ("node",)),
    ("kubestats_exporter_scrape_duration_seconds", ("node",)),
    ("kubestats_exporter_scrape_errors_total", ("node", "reason")),
]


@pytest.mark.parametrize(("name", "labels"), ADAPTER_CONTRACT, ids=[c[0] for c in ADAPTER_CONTRACT])
def test_adapter_contract_names_and_labels(name: str, labels: tuple[str, ...]) -> None:
    row = next((row for row in METRICS if row.name == name), None)
    assert row is not None, f"{name} is part of the adapter contract"
    assert SCOPE_LABELS[row.scope] == labels
