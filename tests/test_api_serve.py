"""Serving settings (every problem at once, exit code 2, before anything starts) and the
worker wiring of rules reload: a changed file takes effect, a broken one keeps the last good."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from adapter.api import ApiSettings, create_app
from adapter.config import ConfigError
from adapter.discovery import DiscoverySettings, MetricDiscovery
from adapter.kube_cache import ClusterObjects, DiscoveryResourceCatalog, KubeObject, ObjectStore
from adapter.ops import AdapterMetrics, Operations
from adapter.prometheus import PrometheusSettings
from adapter.reload import RulesReloader
from adapter.rules import CompiledConfig
from adapter.serve import (
    ServeSettings,
    add_serve_arguments,
    build_providers,
    load_first_rules,
    rules_compiler,
    run_serve,
    settings_from_args,
)
from tests.test_api_routes import DATA, FakePrometheus


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kubemetrics-adapter")
    add_serve_arguments(parser)
    return parser.parse_args(argv)


def test_every_problem_is_reported_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parse(
        [
            "--prometheus-url=ftp://prometheus",
            "--prometheus-timeout=soon",
            "--metrics-relist-interval=0",
            "--secure-port=70000",
            f"--tls-cert-file={tmp_path / 'missing.crt'}",
            "--prometheus-header=bad header=x",
        ]
    )
    settings, problems = settings_from_args(args)
    assert settings is None
    assert problems == [
        "--config is required (the rules file)",
        "--prometheus-timeout 'soon': not a valid duration string: 'soon' "
        "(use units y w d h m s ms)",
        "--prometheus-header 'bad header'=...: the header name must be a non-empty HTTP token "
        "(letters, digits, and !#$%&'*+.^_`|~-)",
        "--prometheus-url 'ftp://prometheus' must be an http:// or https:// URL with a host",
        "--metrics-relist-interval must be positive, got 0:00:00",
        "--secure-port must be 1-65535, got 70000",
        "--tls-cert-file and --tls-private-key-file must be given together",
        f"--tls-cert-file '{tmp_path / 'missing.crt'}' is not a readable file",
    ]
    assert run_serve(args) == 2
    err = capsys.readouterr().err
    assert err.count("kubemetrics-adapter: ") == len(problems)


def test_broken_rules_file_exits_2_with_its_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n- seriesQuery: up\n  metricsQuery: 5\n  colour: red\n")
    args = _parse([f"--config={rules}", "--prometheus-url=http://127.0.0.1:9090"])
    assert run_serve(args) == 2
    err = capsys.readouterr().err
    assert "colour" in err
    assert str(rules) in err or "rules.yaml" in err


def test_valid_flags_give_settings(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: []\n")
    settings, problems = settings_from_args(
        _parse(
            [
                f"--config={rules}",
                "--prometheus-url=https://prometheus:9090",
                "--prometheus-header=X-Scope-OrgID=tenant-a",
                "--requestheader-allowed-names=front-proxy-client, aggregator",
                "--metrics-relist-interval=30s",
                "--max-query-bytes=8192",
            ]
        )
    )
    assert problems == []
    assert settings is not None
    assert settings.prometheus.headers == (("X-Scope-OrgID", "tenant-a"),)
    assert settings.requestheader_allowed_names == ("front-proxy-client", "aggregator")
    assert settings.discovery.relist_interval.total_seconds() == 30
    assert settings.max_query_bytes == 8192


# --- rules reload through the serve wiring -------------------------------------------------------

RULES_V1 = """
rules:
- seriesQuery: '{__name__=~"^http_requests_total$",namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)
resourceRules:
  cpu:
    containerQuery: sum by (<<.GroupBy>>) (rate(container_cpu{<<.LabelMatchers>>}[1m]))
    nodeQuery: sum by (<<.GroupBy>>) (rate(node_cpu{<<.LabelMatchers>>}[1m]))
    resources: &labels
      overrides: {namespace: {resource: namespace}, pod: {resource: pod}, node: {resource: node}}
    containerLabel: container
  memory:
    containerQuery: sum by (<<.GroupBy>>) (container_memory{<<.LabelMatchers>>})
    nodeQuery: sum by (<<.GroupBy>>) (node_memory{<<.LabelMatchers>>})
    resources: *labels
    containerLabel: container
  window: 1m
"""
# Renamed metric, 5m window, and no resourceRules any more.
RULES_V2 = (
    RULES_V1.split("resourceRules:", maxsplit=1)[0]
    .replace("${1}_per_second", "${1}_rate")
    .replace("[2m]", "[5m]")
)
RULES_BROKEN = """
rules:
- seriesQuery: up
  metricsQuery: sum(up)
  colour: red
  name: {matches: "(", as: x}
- seriesQuery: up
  metricsQuery: x
  resources: {template: 5}
"""
CM2 = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A"


class SeriesSource:
    """Discovery's view of Prometheus: http_requests_total with namespace and pod labels."""

    def label_names(self, *_: object, **__: object) -> list[str]:
        return ["__name__", "namespace", "pod"]

    def label_values(self, label: str, matchers: Sequence[str] = (), **_: object) -> list[str]:
        return ["http_requests_total"] if "http_requests_total" in matchers[0] else []


@dataclass
class Served:
    client: FlaskClient
    reloader: RulesReloader[CompiledConfig]
    prometheus: FakePrometheus

    def metric(self, name: str) -> int:
        return int(self.client.get(f"{CM2}/{name}").status_code)

    def groups(self) -> list[str]:
        return [g["name"] for g in self.client.get("/apis").get_json()["groups"]]

    def own_metric(self, name: str) -> float:
        for line in self.client.get("/metrics").text.splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
        raise AssertionError(f"{name} is not exposed")


def serve_rules(path: Path, startup_rules: str | None = None) -> Served:
    """What build_worker wires, with fakes for the cluster and Prometheus."""
    catalog = DiscoveryResourceCatalog(None)
    objects = ClusterObjects(
        pods=ObjectStore([KubeObject("default", "web-1", {"app": "web"}, "Running")]),
        nodes=ObjectStore(),
        namespaces=ObjectStore([KubeObject("", "default")]),
        catalog=catalog,
    )
    compile_text = rules_compiler(catalog)
    holder: list[MetricDiscovery] = []
    reloader = RulesReloader(
        path, compile_text, lambda c: holder[0].set_config(c) if holder else None
    )
    compiled = load_first_rules(reloader, compile_text, startup_rules)
    discovery = MetricDiscovery(SeriesSource(), compiled)
    holder.append(discovery)
    discovery.refresh()
    settings = ServeSettings(
        config_file=path,
        prometheus=PrometheusSettings(url="http://127.0.0.1:9"),
        discovery=DiscoverySettings(),
    )
    prometheus = FakePrometheus(DATA)
    metrics = AdapterMetrics()
    metrics.track_rules(
        lambda: reloader.generation,
        lambda: reloader.last_error is None,
        lambda: reloader.loaded_at,
    )
    app = create_app(
        ApiSettings(),
        build_providers(settings, objects, discovery, prometheus),
        operations=Operations(metrics),
    )
    return Served(app.test_client(), reloader, prometheus)


def test_changed_rules_take_effect_and_broken_ones_keep_the_last_good(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_V1)
    served = serve_rules(path)
    assert served.metric("http_requests_per_second") == 200
    assert (
        served.client.get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods").status_code == 200
    )
    assert "metrics.k8s.io" in served.groups()
    assert served.own_metric("kubemetrics_adapter_rules_generation") == 1
    assert served.reloader.check() is False  # unchanged

    path.write_text(RULES_V2)
    assert served.reloader.check() is True
    assert served.metric("http_requests_per_second") == 404
    assert served.metric("http_requests_rate") == 200
    assert served.prometheus.queries[-1].endswith("[5m])) by (pod)")
    assert served.groups() == ["custom.metrics.k8s.io", "external.metrics.k8s.io"]
    assert served.client.get("/apis/metrics.k8s.io/v1beta1/nodes").status_code == 404
    assert served.own_metric("kubemetrics_adapter_rules_generation") == 2
    assert served.own_metric("kubemetrics_adapter_rules_last_reload_successful") == 1

    caplog.clear()
    path.write_text(RULES_BROKEN)
    with caplog.at_level(logging.ERROR, logger="adapter.reload"):
        assert served.reloader.check() is False
    logged = caplog.text
    for problem in ("rules[0].colour", "rules[0].name.matches", "rules[1].resources.template"):
        assert problem in logged, logged
    assert served.metric("http_requests_rate") == 200  # the last good rules stay
    assert served.own_metric("kubemetrics_adapter_rules_generation") == 2
    assert served.own_metric("kubemetrics_adapter_rules_last_reload_successful") == 0

    path.write_text(RULES_V1)
    assert served.reloader.check() is True
    assert served.metric("http_requests_per_second") == 200
    assert served.own_metric("kubemetrics_adapter_rules_last_reload_successful") == 1
    assert (
        served.client.get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods").status_code == 200
    )


def test_a_worker_starting_while_the_file_is_broken_uses_the_startup_rules(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_BROKEN)
    with pytest.raises(ConfigError):
        serve_rules(path)
    served = serve_rules(path, startup_rules=RULES_V1)
    assert served.metric("http_requests_per_second") == 200
    assert served.own_metric("kubemetrics_adapter_rules_generation") == 0
    path.write_text(RULES_V2)
    assert served.reloader.check() is True
    assert served.metric("http_requests_rate") == 200


def test_reload_interval_must_be_positive(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: []\n")
    settings, problems = settings_from_args(
        _parse(
            [
                f"--config={rules}",
                "--prometheus-url=http://127.0.0.1:9090",
                "--config-reload-interval=0s",
            ]
        )
    )
    assert settings is None
    assert problems == ["--config-reload-interval must be positive, got 0:00:00"]
    settings, _ = settings_from_args(
        _parse(
            [
                f"--config={rules}",
                "--prometheus-url=http://127.0.0.1:9090",
                "--config-reload-interval=2s",
            ]
        )
    )
    assert settings is not None
    assert settings.config_reload_interval.total_seconds() == 2
