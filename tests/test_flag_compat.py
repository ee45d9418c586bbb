"""prometheus-adapter's flags mean the same here: what each compatible flag turns into, every
problem reported at once (exit 2), and the Deployment args of prometheus-adapter's Helm chart
and kube-prometheus manifests parsed by the real CLI parser without an error."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapter.auth import DEFAULT_ALWAYS_ALLOW_PATHS
from adapter.cli import PROMETHEUS_ADAPTER_BINARY, build_parser, main
from adapter.serve import prometheus_auth_from_kubeconfig, run_serve, settings_from_args
from adapter.tls import GO_CIPHER_SUITES, TLSPolicy, tls_policy_from_flags

# The cipher list kube-prometheus' prometheus-adapter Deployment passes (deploy/manifests).
KUBE_PROMETHEUS_CIPHER_SUITES = (
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,"
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,"
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,"
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,"
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,"
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,TLS_RSA_WITH_AES_128_GCM_SHA256,"
    "TLS_RSA_WITH_AES_256_GCM_SHA384,TLS_RSA_WITH_AES_128_CBC_SHA,TLS_RSA_WITH_AES_256_CBC_SHA"
)

# Deployment args as shipped upstream (docs/reference/prometheus-adapter.md §1.7 and §3).
UPSTREAM_DEPLOYMENT_ARGS = {
    "helm-chart-defaults": [
        PROMETHEUS_ADAPTER_BINARY,
        "--secure-port=6443",
        "--cert-dir=/tmp/cert",
        "--prometheus-url=http://prometheus.default.svc:9090",
        "--metrics-relist-interval=1m",
        "--v=4",
        "--config=/etc/adapter/config.yaml",
    ],
    "helm-chart-tls-enabled": [
        PROMETHEUS_ADAPTER_BINARY,
        "--secure-port=6443",
        "--tls-cert-file=/var/run/serving-cert/tls.crt",
        "--tls-private-key-file=/var/run/serving-cert/tls.key",
        "--cert-dir=/tmp/cert",
        "--prometheus-url=http://prometheus.monitoring.svc:9090/",
        "--metrics-relist-interval=1m",
        "--v=6",
        "--config=/etc/adapter/config.yaml",
    ],
    "kube-prometheus": [
        "--cert-dir=/var/run/serving-cert",
        "--config=/etc/adapter/config.yaml",
        "--metrics-relist-interval=1m",
        "--prometheus-url=https://prometheus.monitoring.svc:9090/",
        "--secure-port=6443",
        f"--tls-cipher-suites={KUBE_PROMETHEUS_CIPHER_SUITES}",
    ],
    "openshift-style": [
        "--cert-dir=/var/run/serving-cert",
        "--config=/etc/adapter/config.yaml",
        "--logtostderr=true",
        "--metrics-relist-interval=1m",
        "--prometheus-url=https://prometheus-k8s.openshift-monitoring.svc:9091",
        "--secure-port=6443",
        "--prometheus-auth-config=/etc/prometheus-config/prometheus-config.yaml",
        "--tls-min-version=VersionTLS12",
        "--disable-http2",
        "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
    ],
}


@pytest.mark.parametrize(
    "argv", list(UPSTREAM_DEPLOYMENT_ARGS.values()), ids=list(UPSTREAM_DEPLOYMENT_ARGS)
)
def test_upstream_deployment_args_parse(argv: list[str]) -> None:
    arguments = argv[1:] if argv[0] == PROMETHEUS_ADAPTER_BINARY else argv
    args = build_parser().parse_args(arguments)
    assert args.command is None  # serving, not a subcommand
    assert args.config == "/etc/adapter/config.yaml"
    assert args.secure_port == 6443


def test_leading_adapter_binary_is_dropped_by_main(capsys: pytest.CaptureFixture[str]) -> None:
    # No rules file and no Prometheus: settings fail (exit 2) rather than argparse (SystemExit).
    assert main([PROMETHEUS_ADAPTER_BINARY, "--v=4"]) == 2
    assert "--config is required" in capsys.readouterr().err


def test_kube_prometheus_cipher_suites_all_translate() -> None:
    policy, problems = tls_policy_from_flags(None, KUBE_PROMETHEUS_CIPHER_SUITES)
    assert problems == []
    assert len(policy.cipher_suites) == 15  # 15 names, 15 distinct OpenSSL suites
    assert policy.cipher_suites[0] == "ECDHE-RSA-CHACHA20-POLY1305"
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(":".join(policy.cipher_suites))


# --- settings: each flag and what it becomes ------------------------------------------------


@dataclass(frozen=True)
class Files:
    rules: Path
    service_account: Path
    kubeconfig: Path
    auth_dir: Path


@pytest.fixture
def files(tmp_path: Path) -> Files:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: []\n")
    service_account = tmp_path / "serviceaccount"
    service_account.mkdir()
    (service_account / "token").write_text("sa-token")
    (service_account / "ca.crt").write_text("ca")
    auth_dir = tmp_path / "prometheus-config"
    auth_dir.mkdir()
    for name in ("ca.crt", "token", "client.crt", "client.key"):
        (auth_dir / name).write_text(name)
    kubeconfig = auth_dir / "kubeconfig.yaml"
    kubeconfig.write_text(
        """
apiVersion: v1
kind: Config
current-context: prometheus
contexts:
- name: prometheus
  context: {cluster: prometheus-k8s, user: adapter}
clusters:
- name: prometheus-k8s
  cluster: {server: https://ignored:9091, certificate-authority: ca.crt}
users:
- name: adapter
  user: {tokenFile: token, client-certificate: client.crt, client-key: client.key}
"""
    )
    return Files(rules, service_account, kubeconfig, auth_dir)


def _settings(files: Files, extra: list[str]) -> tuple[Any, list[str]]:
    argv = [f"--config={files.rules}", "--prometheus-url=https://prometheus:9090", *extra]
    return settings_from_args(build_parser().parse_args(argv), files.service_account)


def _attribute(settings: Any, dotted: str) -> Any:
    value = settings
    for name in dotted.split("."):
        value = getattr(value, name)
    return value


SETTINGS_CASES: list[tuple[str, list[str], str, Any]] = [
    ("no-flags-info", [], "log_level", "info"),
    ("v4-debug", ["--v=4"], "log_level", "debug"),
    ("v10-debug", ["--v=10"], "log_level", "debug"),
    ("v2-info", ["--v=2"], "log_level", "info"),
    ("short-v", ["-v", "5"], "log_level", "debug"),
    ("log-level-wins", ["--v=6", "--log-level=warning"], "log_level", "warning"),
    ("logtostderr", ["--logtostderr"], "log_level", "info"),
    ("logtostderr-true", ["--logtostderr=true"], "log_level", "info"),
    ("disable-http2", ["--disable-http2"], "log_level", "info"),
    ("disable-http2-false", ["--disable-http2=false"], "log_level", "info"),
    ("tls-default", [], "tls_policy", TLSPolicy(ssl.TLSVersion.TLSv1_2, ())),
    (
        "tls-13",
        ["--tls-min-version=VersionTLS13"],
        "tls_policy.min_version",
        ssl.TLSVersion.TLSv1_3,
    ),
    (
        "ciphers",
        ["--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256"],
        "tls_policy.cipher_suites",
        ("ECDHE-RSA-AES128-GCM-SHA256",),
    ),
    ("allow-paths-default", [], "always_allow_paths", DEFAULT_ALWAYS_ALLOW_PATHS),
    (
        "allow-paths",
        ["--authorization-always-allow-paths=/healthz,readyz,/debug/*"],
        "always_allow_paths",
        ("/healthz", "/readyz", "/debug/*"),
    ),
    ("allow-paths-none", ["--authorization-always-allow-paths="], "always_allow_paths", ()),
]


@pytest.mark.parametrize(
    ("argv", "attribute", "expected"),
    [pytest.param(argv, attr, want, id=name) for name, argv, attr, want in SETTINGS_CASES],
)
def test_compatible_flag_becomes_setting(
    files: Files, argv: list[str], attribute: str, expected: Any
) -> None:
    settings, problems = _settings(files, argv)
    assert problems == []
    assert _attribute(settings, attribute) == expected


def test_auth_incluster_uses_service_account_token_and_ca(files: Files) -> None:
    settings, problems = _settings(files, ["--prometheus-auth-incluster"])
    assert problems == []
    assert settings.prometheus.bearer_token_file == str(files.service_account / "token")
    assert settings.prometheus.ca_file == str(files.service_account / "ca.crt")


def test_explicit_token_file_wins_over_incluster(files: Files) -> None:
    token = files.auth_dir / "token"
    settings, problems = _settings(
        files, ["--prometheus-auth-incluster=true", f"--prometheus-token-file={token}"]
    )
    assert problems == []
    assert settings.prometheus.bearer_token_file == str(token)
    assert settings.prometheus.ca_file == str(files.service_account / "ca.crt")


def test_auth_config_uses_kubeconfig_files_relative_to_it(files: Files) -> None:
    settings, problems = _settings(files, [f"--prometheus-auth-config={files.kubeconfig}"])
    assert problems == []
    prometheus = settings.prometheus
    assert prometheus.url == "https://prometheus:9090"  # the kubeconfig's server is not used
    assert prometheus.ca_file == str(files.auth_dir / "ca.crt")
    assert prometheus.bearer_token_file == str(files.auth_dir / "token")
    assert prometheus.client_cert_file == str(files.auth_dir / "client.crt")
    assert prometheus.client_key_file == str(files.auth_dir / "client.key")
    assert prometheus.insecure_skip_tls_verify is False


KUBECONFIG_PROBLEMS = [
    ("not-yaml", "a: [", "not YAML"),
    ("not-mapping", "- 1\n", "not a kubeconfig"),
    ("no-context", "contexts: []\n", "no current-context"),
    ("unknown-context", "current-context: x\ncontexts: []\n", "context 'x' is not defined"),
    (
        "unknown-user",
        "current-context: c\ncontexts: [{name: c, context: {user: u}}]\n",
        "user 'u' of context 'c' is not defined",
    ),
    (
        "inline-token",
        "current-context: c\ncontexts: [{name: c, context: {user: u}}]\n"
        "users: [{name: u, user: {token: s3cr3t}}]\n",
        "user key token is not supported; use tokenFile (a file)",
    ),
    (
        "inline-ca",
        "current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
        "clusters: [{name: k, cluster: {certificate-authority-data: Zm9v}}]\n",
        "certificate-authority-data is not supported",
    ),
    (
        "exec",
        "current-context: c\ncontexts: [{name: c, context: {user: u}}]\n"
        "users: [{name: u, user: {exec: {command: x}}}]\n",
        "user key exec is not supported",
    ),
]


@pytest.mark.parametrize(
    ("text", "message"),
    [pytest.param(text, message, id=name) for name, text, message in KUBECONFIG_PROBLEMS],
)
def test_auth_config_problems_name_the_file(text: str, message: str) -> None:
    _, problems = prometheus_auth_from_kubeconfig(text, Path("/etc/prom/kubeconfig"))
    assert len(problems) == 1
    assert problems[0].startswith("--prometheus-auth-config '/etc/prom/kubeconfig': ")
    assert message in problems[0]
    assert "s3cr3t" not in problems[0]


def test_single_context_without_current_context_is_used() -> None:
    auth, problems = prometheus_auth_from_kubeconfig(
        "contexts: [{name: c, context: {cluster: k}}]\n"
        "clusters: [{name: k, cluster: {insecure-skip-tls-verify: true}}]\n",
        Path("/k"),
    )
    assert problems == []
    assert auth.insecure_skip_tls_verify is True


def test_every_compat_problem_at_once_exits_2(
    files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        f"--config={files.rules}",
        "--prometheus-url=https://prometheus:9090",
        "--v=-1",
        "--logtostderr=false",
        "--tls-min-version=VersionTLS11",
        "--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_FAKE,"
        "TLS_RSA_WITH_RC4_128_SHA",
        "--prometheus-auth-incluster",
        f"--prometheus-auth-config={files.kubeconfig}",
        "--authorization-always-allow-paths=/ok,/a*b",
    ]
    args = build_parser().parse_args(argv)
    settings, problems = settings_from_args(args, files.service_account)
    assert settings is None
    assert problems == [
        "--prometheus-auth-incluster and --prometheus-auth-config cannot be used together",
        "--tls-min-version 'VersionTLS11': kubemetrics-adapter serves TLS 1.2 or newer"
        " (use VersionTLS12 or VersionTLS13)",
        "--tls-cipher-suites: unknown cipher suite(s) TLS_FAKE"
        " (use Go/IANA names such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)",
        f"--tls-cipher-suites: not supported by this server's OpenSSL ({ssl.OPENSSL_VERSION}):"
        " TLS_RSA_WITH_RC4_128_SHA",
        "--authorization-always-allow-paths '/a*b': only a trailing * is allowed",
        "--v must be 0 or more, got -1",
        "--logtostderr=false (klog's log files) is not supported: kubemetrics-adapter always"
        " logs to stderr",
    ]
    assert run_serve(args) == 2
    assert capsys.readouterr().err.count("kubemetrics-adapter: ") == len(problems)


PROBLEM_CASES = [
    ("bad-version", ["--tls-min-version=TLS1.3"], "--tls-min-version 'TLS1.3' is not one of"),
    (
        "only-tls13-suites",
        ["--tls-cipher-suites=TLS_AES_128_GCM_SHA256"],
        "lists only TLS 1.3 suites",
    ),
    (
        "incluster-outside-pod",
        ["--prometheus-auth-incluster", "--bind-address=127.0.0.1"],
        "--prometheus-auth-incluster: no readable token file",
    ),
    (
        "incluster-and-ca-file",
        ["--prometheus-auth-incluster", "--prometheus-ca-file={rules}"],
        "--prometheus-auth-incluster and --prometheus-ca-file cannot be used together",
    ),
    (
        "auth-config-missing",
        ["--prometheus-auth-config=/nonexistent/kubeconfig"],
        "--prometheus-auth-config '/nonexistent/kubeconfig': cannot read",
    ),
]


@pytest.mark.parametrize(
    ("argv", "message"),
    [pytest.param(argv, message, id=name) for name, argv, message in PROBLEM_CASES],
)
def test_compat_flag_problem(files: Files, tmp_path: Path, argv: list[str], message: str) -> None:
    argv = [item.format(rules=files.rules) for item in argv]
    args = build_parser().parse_args(
        [f"--config={files.rules}", "--prometheus-url=https://prometheus:9090", *argv]
    )
    # Outside a pod: no service-account files.
    settings, problems = settings_from_args(args, tmp_path / "no-such-dir")
    assert settings is None
    assert len(problems) == 1
    assert message in problems[0]


@pytest.mark.parametrize("value", ["maybe", "yes"], ids=["maybe", "yes"])
def test_boolean_flags_take_go_spellings_only(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([f"--disable-http2={value}"])
    assert exit_info.value.code == 2
    assert "is not a boolean" in capsys.readouterr().err


def test_every_go_cipher_name_is_known_or_reported() -> None:
    # Each upstream name either translates or is named as unsupported by this OpenSSL; none
    # is "unknown".
    for name in GO_CIPHER_SUITES:
        _, problems = tls_policy_from_flags("VersionTLS13", name)
        assert not any("unknown" in problem for problem in problems), name
