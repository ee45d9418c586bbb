"""Serving settings: every problem reported at once, exit code 2, before anything starts."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from adapter.serve import add_serve_arguments, run_serve, settings_from_args


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
