"""``kubemetrics-adapter`` without a subcommand: settings, wiring and serving over HTTPS.

Flags follow prometheus-adapter's where they mean the same (``--config``, ``--prometheus-url``,
``--secure-port``, ``--cert-dir``, ``--requestheader-*``, ``--metrics-relist-interval``,
``--lister-kubeconfig``, ...), including the generic apiserver's and klog's that its
Deployments pass: ``--v``/``-v`` (≥ 4 is debug; an explicit ``--log-level`` wins),
``--logtostderr`` (we always log to stderr), ``--tls-min-version``, ``--tls-cipher-suites``,
``--authorization-always-allow-paths``, ``--disable-http2`` (accepted; we serve HTTP/1.1 only),
and ``--prometheus-auth-incluster`` / ``--prometheus-auth-config``, which become the token file
and CA (and client certificate) of ``PrometheusSettings`` the way prometheus-adapter builds its
client from them. ``settings_from_args`` checks everything at once and ``run_serve`` prints
every problem and exits 2 before anything starts.

Wiring, per gunicorn worker (after the fork, so threads and connection pools are the
worker's own): Kubernetes client → watch caches and discovery-backed resource catalog →
rules compiled against that catalog → metric discovery (``adapter.discovery``) → providers →
``create_app`` → ``AuthMiddleware`` (front-proxy or TokenReview, then SubjectAccessReview).

The rules file is watched in every worker (``adapter.reload.RulesReloader``: content hash every
``--config-reload-interval``, and SIGHUP to a worker). New rules are compiled against the
worker's catalog and handed to ``MetricDiscovery.set_config``, whose registry is where every
provider reads its rules, so one swap changes them all; a broken file is logged with each of its
problems and the last good rules stay. (SIGHUP to the gunicorn master replaces the workers,
which read the file afresh; a worker that starts while the file is broken uses the rules the
server started with.) No exceptions of its own: problems become messages and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from adapter.api import ApiSettings, create_app
from adapter.auth import (
    DEFAULT_ALWAYS_ALLOW_PATHS,
    AuthConfigError,
    Authenticator,
    AuthMiddleware,
    Authorizer,
    RequestHeaderSettings,
    RequestHeaderSource,
    StaticRequestHeaderSource,
    check_ca_bundle,
)
from adapter.config import ConfigError, ConfigProblem, load_config, parse_duration
from adapter.discovery import DiscoverySettings, MetricDiscovery
from adapter.kube_auth_client import (
    AuthenticationConfigMapSource,
    KubeAccessReviewer,
    KubeTokenReviewer,
)
from adapter.kube_cache import ClusterObjects, KubeCache, start_kube_cache
from adapter.ops import AdapterMetrics, Operations, TimedPrometheus, prometheus_reachable
from adapter.prometheus import (
    PrometheusAPI,
    PrometheusClient,
    PrometheusConfigError,
    PrometheusSettings,
    parse_header_flags,
)
from adapter.promql import DEFAULT_MAX_QUERY_BYTES
from adapter.providers import (
    CustomMetricsProvider,
    ExternalMetricsProvider,
    Providers,
    QueryRunner,
    ResourceMetricsProvider,
)
from adapter.reload import DEFAULT_POLL_INTERVAL_SECONDS, RulesReloader
from adapter.resources import ResourceCatalog
from adapter.rules import CompiledConfig, compile_config
from adapter.tls import TLSConfigError, TLSPolicy, ensure_serving_certificate, tls_policy_from_flags
from adapter.wsgi_server import AdapterServer, ServerOptions

LOG = logging.getLogger(__name__)

DEFAULT_CERT_DIR = "/tmp/kubemetrics-adapter/certs"  # noqa: S108 - upstream's default is relative
CACHE_SYNC_TIMEOUT_SECONDS = 60.0
# What client-go's in-cluster config reads; --prometheus-auth-incluster uses the same files.
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# klog's convention: --v=4 is "debug level verbosity" (the Helm chart's default).
KLOG_DEBUG_VERBOSITY = 4


@dataclass(frozen=True)
class ServeSettings:
    """Everything ``kubemetrics-adapter`` serves with, validated."""

    config_file: Path
    prometheus: PrometheusSettings
    discovery: DiscoverySettings
    bind_address: str = "0.0.0.0"  # noqa: S104 - an API server listens on every interface
    secure_port: int = 6443
    tls_cert_file: Path | None = None
    tls_private_key_file: Path | None = None
    cert_dir: Path = Path(DEFAULT_CERT_DIR)
    requestheader_client_ca_file: Path | None = None
    requestheader_allowed_names: tuple[str, ...] = ()
    lister_kubeconfig: Path | None = None
    authentication_kubeconfig: Path | None = None
    authorization_kubeconfig: Path | None = None
    max_query_bytes: int = DEFAULT_MAX_QUERY_BYTES
    config_reload_interval: timedelta = timedelta(seconds=DEFAULT_POLL_INTERVAL_SECONDS)
    workers: int = 1
    threads: int = 8
    log_level: str = "info"
    extra_serving_names: tuple[str, ...] = field(default=())
    tls_policy: TLSPolicy = field(default_factory=TLSPolicy)
    always_allow_paths: tuple[str, ...] = DEFAULT_ALWAYS_ALLOW_PATHS


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The serving flags (also accepted where prometheus-adapter has the same flag)."""
    rules = parser.add_argument_group("rules and Prometheus")
    rules.add_argument("--config", help="rules file (prometheus-adapter format)")
    rules.add_argument(
        "--config-reload-interval",
        default="5s",
        help="how often the rules file is checked for changes (default 5s; SIGHUP: at once)",
    )
    rules.add_argument("--prometheus-url", help="Prometheus base URL, e.g. http://prometheus:9090")
    rules.add_argument("--prometheus-timeout", default="30s", help="per query (default 30s)")
    rules.add_argument(
        "--prometheus-verb", default="GET", choices=("GET", "POST"), help="HTTP method"
    )
    rules.add_argument(
        "--prometheus-header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra header on every Prometheus request (repeatable)",
    )
    rules.add_argument("--prometheus-token-file", help="bearer token file (re-read on change)")
    rules.add_argument("--prometheus-ca-file", help="CA bundle to verify Prometheus' TLS")
    rules.add_argument("--prometheus-client-tls-cert-file", help="client certificate")
    rules.add_argument("--prometheus-client-tls-key-file", help="client key")
    rules.add_argument(
        "--prometheus-auth-incluster",
        type=go_bool,
        nargs="?",
        const=True,
        default=False,
        metavar="BOOL",
        help="authenticate to Prometheus with the pod's service-account token and CA",
    )
    rules.add_argument(
        "--prometheus-auth-config",
        metavar="KUBECONFIG",
        help="kubeconfig whose current context's CA, token file and client certificate are used"
        " for Prometheus (not its server)",
    )
    rules.add_argument(
        "--metrics-relist-interval", default="1m", help="metric discovery period (default 1m)"
    )
    rules.add_argument("--metrics-max-age", help="look-back of discovery (default: interval)")
    rules.add_argument(
        "--max-query-bytes",
        type=int,
        default=DEFAULT_MAX_QUERY_BYTES,
        help="longest PromQL sent; longer name lists are split into several queries",
    )
    serving = parser.add_argument_group("serving")
    serving.add_argument("--bind-address", default="0.0.0.0")  # noqa: S104
    serving.add_argument("--secure-port", type=int, default=6443)
    serving.add_argument("--tls-cert-file", help="serving certificate (PEM)")
    serving.add_argument("--tls-private-key-file", help="serving key (PEM)")
    serving.add_argument(
        "--cert-dir",
        default=DEFAULT_CERT_DIR,
        help="where a self-signed pair is generated when no certificate is given",
    )
    serving.add_argument("--workers", type=int, default=1, help="gunicorn worker processes")
    serving.add_argument("--threads", type=int, default=8, help="threads per worker")
    serving.add_argument(
        "--tls-min-version",
        metavar="VERSION",
        help="lowest TLS version served: VersionTLS12 (default) or VersionTLS13",
    )
    serving.add_argument(
        "--tls-cipher-suites",
        metavar="LIST",
        help="comma-separated TLS 1.2 cipher suites, Go/IANA names"
        " (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,...); default: OpenSSL's",
    )
    serving.add_argument(
        "--disable-http2",
        type=go_bool,
        nargs="?",
        const=True,
        default=False,
        metavar="BOOL",
        help="accepted for prometheus-adapter compatibility; HTTP/2 is never served",
    )
    serving.add_argument(
        "--log-level",
        choices=("debug", "info", "warning"),
        help="default: info, or debug with --v=4 or more",
    )
    serving.add_argument(
        "-v",
        "--v",
        dest="verbosity",
        type=int,
        metavar="LEVEL",
        help="klog verbosity (prometheus-adapter's flag): 4 or more logs at debug level",
    )
    serving.add_argument(
        "--logtostderr",
        type=go_bool,
        nargs="?",
        const=True,
        default=True,
        metavar="BOOL",
        help="klog's flag, accepted when true: logs always go to stderr",
    )
    auth = parser.add_argument_group("authentication and cluster access")
    auth.add_argument(
        "--requestheader-client-ca-file",
        help="front-proxy CA (default: read from kube-system/extension-apiserver-authentication)",
    )
    auth.add_argument(
        "--requestheader-allowed-names",
        default="",
        help="comma-separated common names allowed for the front-proxy certificate",
    )
    auth.add_argument(
        "--kubeconfig", help="kubeconfig for every Kubernetes call (default: in-cluster)"
    )
    auth.add_argument("--lister-kubeconfig", help="kubeconfig for watches and lists")
    auth.add_argument("--authentication-kubeconfig", help="kubeconfig for TokenReviews")
    auth.add_argument("--authorization-kubeconfig", help="kubeconfig for SubjectAccessReviews")
    auth.add_argument(
        "--authorization-always-allow-paths",
        metavar="PATHS",
        help="comma-separated paths served without authentication or authorization; a trailing"
        f" * matches a prefix (default: {','.join(DEFAULT_ALWAYS_ALLOW_PATHS)})",
    )


def go_bool(text: str) -> bool:
    """A boolean flag value as Go's strconv.ParseBool reads it (``--flag=false``)."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true or false)")


def _duration(flag: str, text: str | None, problems: list[str]) -> timedelta | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as err:
        problems.append(f"{flag} {text!r}: {err}")
        return None


def _existing_file(flag: str, text: str | None, problems: list[str]) -> Path | None:
    if text is None:
        return None
    path = Path(text)
    if not path.is_file():
        problems.append(f"{flag} {text!r} is not a readable file")
    return path


@dataclass(frozen=True)
class PrometheusAuth:
    """Credentials for Prometheus from ``--prometheus-auth-incluster`` / ``-auth-config``."""

    bearer_token_file: str | None = None
    ca_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    insecure_skip_tls_verify: bool = False

    def files(self) -> tuple[tuple[str, str], ...]:
        """(what, path) of every file these credentials name."""
        named = (
            ("token file", self.bearer_token_file),
            ("CA", self.ca_file),
            ("client certificate", self.client_cert_file),
            ("client key", self.client_key_file),
        )
        return tuple((what, path) for what, path in named if path is not None)


# Kubeconfig keys that hold credentials inline or run something; PrometheusSettings takes files.
_UNSUPPORTED_USER_KEYS = {
    "token": "tokenFile",
    "client-certificate-data": "client-certificate",
    "client-key-data": "client-key",
    "username": None,
    "password": None,
    "exec": None,
    "auth-provider": None,
}


def _named_entry(entries: object, name: str, kind: str) -> dict[str, Any] | None:
    if not isinstance(entries, list):
        return None
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(kind)
            return body if isinstance(body, dict) else {}
    return None


def prometheus_auth_from_kubeconfig(text: str, source: Path) -> tuple[PrometheusAuth, list[str]]:
    """The current context's cluster CA and user credentials, as prometheus-adapter's
    ``--prometheus-auth-config`` uses them (its server is ignored: --prometheus-url is used).
    Relative paths are relative to the kubeconfig, as in client-go. Pure: no file is read."""
    where = f"--prometheus-auth-config {str(source)!r}"
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        return PrometheusAuth(), [f"{where}: not YAML ({err})"]
    if not isinstance(document, dict):
        return PrometheusAuth(), [f"{where}: not a kubeconfig (expected a mapping)"]
    contexts = document.get("contexts")
    context_name = document.get("current-context")
    if not context_name and isinstance(contexts, list) and len(contexts) == 1:
        context_name = contexts[0].get("name") if isinstance(contexts[0], dict) else None
    if not context_name:
        return PrometheusAuth(), [f"{where}: no current-context"]
    context = _named_entry(contexts, str(context_name), "context")
    if context is None:
        return PrometheusAuth(), [f"{where}: context {context_name!r} is not defined"]
    problems: list[str] = []
    cluster: dict[str, Any] = {}
    user: dict[str, Any] = {}
    for kind, plural, target in (("cluster", "clusters", cluster), ("user", "users", user)):
        name = context.get(kind)
        if name is None:
            continue
        entry = _named_entry(document.get(plural), str(name), kind)
        if entry is None:
            problems.append(f"{where}: {kind} {name!r} of context {context_name!r} is not defined")
        else:
            target.update(entry)

    def path_of(key: str, entry: dict[str, Any]) -> str | None:
        value = entry.get(key)
        if value is None or value == "":
            return None
        return str(source.parent / str(value))

    if "certificate-authority-data" in cluster:
        problems.append(
            f"{where}: cluster key certificate-authority-data is not supported;"
            " give the CA as a file with certificate-authority"
        )
    for key, instead in _UNSUPPORTED_USER_KEYS.items():
        if key in user:
            hint = f"; use {instead} (a file)" if instead else ""
            problems.append(f"{where}: user key {key} is not supported{hint}")
    return (
        PrometheusAuth(
            bearer_token_file=path_of("tokenFile", user),
            ca_file=path_of("certificate-authority", cluster),
            client_cert_file=path_of("client-certificate", user),
            client_key_file=path_of("client-key", user),
            insecure_skip_tls_verify=cluster.get("insecure-skip-tls-verify") is True,
        ),
        problems,
    )


def _prometheus_auth(
    args: argparse.Namespace, service_account_dir: Path, problems: list[str]
) -> PrometheusAuth:
    """Credentials from the two auth flags; problems are added, with the flag named."""
    incluster, auth_config = args.prometheus_auth_incluster, args.prometheus_auth_config
    if incluster and auth_config:
        problems.append(
            "--prometheus-auth-incluster and --prometheus-auth-config cannot be used together"
        )
        return PrometheusAuth()
    if not (incluster or auth_config):
        return PrometheusAuth()
    flag = "--prometheus-auth-incluster" if incluster else "--prometheus-auth-config"
    if args.prometheus_ca_file:
        # prometheus-adapter then builds its client from the CA file alone and silently drops
        # the credentials these flags name; say so instead of guessing which one was meant.
        problems.append(
            f"{flag} and --prometheus-ca-file cannot be used together (prometheus-adapter"
            f" ignores {flag} when --prometheus-ca-file is set); use --prometheus-ca-file with"
            " --prometheus-token-file instead"
        )
        return PrometheusAuth()
    if incluster:
        auth = PrometheusAuth(
            bearer_token_file=str(service_account_dir / "token"),
            ca_file=str(service_account_dir / "ca.crt"),
        )
    else:
        path = Path(auth_config)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            problems.append(f"--prometheus-auth-config {auth_config!r}: cannot read ({err})")
            return PrometheusAuth()
        auth, found = prometheus_auth_from_kubeconfig(text, path)
        problems += found
        if found:
            return PrometheusAuth()
    missing = [f"{what} {path}" for what, path in auth.files() if not Path(path).is_file()]
    if missing:
        hint = " (not running in a pod?)" if incluster else ""
        problems.append(f"{flag}: no readable {', '.join(missing)}{hint}")
        return PrometheusAuth()
    return auth


def _always_allow_paths(text: str | None, problems: list[str]) -> tuple[str, ...]:
    """As the generic apiserver reads it: a leading / is optional, * only at the end."""
    if text is None:
        return DEFAULT_ALWAYS_ALLOW_PATHS
    paths: list[str] = []
    for part in (item.strip() for item in text.split(",")):
        if not part:
            continue
        if "*" in part[:-1]:
            problems.append(
                f"--authorization-always-allow-paths {part!r}: only a trailing * is allowed"
            )
            continue
        paths.append(part if part.startswith("/") else "/" + part)
    return tuple(paths)


def _log_level(args: argparse.Namespace, problems: list[str]) -> str:
    if args.verbosity is not None and args.verbosity < 0:
        problems.append(f"--v must be 0 or more, got {args.verbosity}")
    if args.logtostderr is False:
        problems.append(
            "--logtostderr=false (klog's log files) is not supported: kubemetrics-adapter"
            " always logs to stderr"
        )
    if args.log_level is not None:
        return str(args.log_level)
    if args.verbosity is not None and args.verbosity >= KLOG_DEBUG_VERBOSITY:
        return "debug"
    return "info"


def settings_from_args(
    args: argparse.Namespace, service_account_dir: Path = SERVICE_ACCOUNT_DIR
) -> tuple[ServeSettings | None, list[str]]:
    """Validated settings, or None and every problem found. ``service_account_dir`` is where
    ``--prometheus-auth-incluster`` finds the pod's token and CA."""
    problems: list[str] = []
    if not args.config:
        problems.append("--config is required (the rules file)")
    if not args.prometheus_url:
        problems.append("--prometheus-url is required")
    timeout = _duration("--prometheus-timeout", args.prometheus_timeout, problems)
    relist = _duration("--metrics-relist-interval", args.metrics_relist_interval, problems)
    max_age = _duration("--metrics-max-age", args.metrics_max_age, problems)
    reload_interval = _duration("--config-reload-interval", args.config_reload_interval, problems)
    if reload_interval is not None and reload_interval <= timedelta(0):
        problems.append(f"--config-reload-interval must be positive, got {reload_interval}")
    try:
        headers = parse_header_flags(args.prometheus_header)
    except PrometheusConfigError as err:
        problems.append(str(err))
        headers = ()
    auth = _prometheus_auth(args, service_account_dir, problems)
    # An explicit --prometheus-token-file wins over the auth flags' token, as upstream's
    # bearer round tripper wraps whichever client those flags built.
    prometheus = PrometheusSettings(
        url=args.prometheus_url or "http://invalid",
        timeout=timeout.total_seconds() if timeout else 30.0,
        verb=args.prometheus_verb,
        bearer_token_file=args.prometheus_token_file or auth.bearer_token_file,
        ca_file=args.prometheus_ca_file or auth.ca_file,
        client_cert_file=args.prometheus_client_tls_cert_file or auth.client_cert_file,
        client_key_file=args.prometheus_client_tls_key_file or auth.client_key_file,
        insecure_skip_tls_verify=auth.insecure_skip_tls_verify,
        headers=headers,
    )
    if args.prometheus_url:
        problems += prometheus.problems()
    discovery = DiscoverySettings(relist if relist is not None else timedelta(minutes=1), max_age)
    problems += discovery.problems()
    if not 0 < args.secure_port < 65536:
        problems.append(f"--secure-port must be 1-65535, got {args.secure_port}")
    if args.max_query_bytes < 256:
        problems.append(f"--max-query-bytes must be at least 256, got {args.max_query_bytes}")
    if args.workers < 1 or args.threads < 1:
        problems.append("--workers and --threads must be at least 1")
    if (args.tls_cert_file is None) != (args.tls_private_key_file is None):
        problems.append("--tls-cert-file and --tls-private-key-file must be given together")
    config_file = _existing_file("--config", args.config, problems)
    requestheader_ca = _existing_file(
        "--requestheader-client-ca-file", args.requestheader_client_ca_file, problems
    )
    if requestheader_ca is not None and requestheader_ca.is_file():
        try:
            check_ca_bundle(
                requestheader_ca.read_text(encoding="utf-8"), "--requestheader-client-ca-file"
            )
        except AuthConfigError as err:
            problems.append(str(err))
    kubeconfig = _existing_file("--kubeconfig", args.kubeconfig, problems)
    kubeconfigs = {
        flag: _existing_file(flag, value, problems) or kubeconfig
        for flag, value in (
            ("--lister-kubeconfig", args.lister_kubeconfig),
            ("--authentication-kubeconfig", args.authentication_kubeconfig),
            ("--authorization-kubeconfig", args.authorization_kubeconfig),
        )
    }
    for flag in ("--tls-cert-file", "--tls-private-key-file"):
        _existing_file(flag, getattr(args, flag[2:].replace("-", "_")), problems)
    tls_policy, tls_problems = tls_policy_from_flags(args.tls_min_version, args.tls_cipher_suites)
    problems += tls_problems
    always_allow_paths = _always_allow_paths(args.authorization_always_allow_paths, problems)
    log_level = _log_level(args, problems)
    if problems or config_file is None:
        return None, problems
    return (
        ServeSettings(
            config_file=config_file,
            prometheus=prometheus,
            discovery=discovery,
            bind_address=args.bind_address,
            secure_port=args.secure_port,
            tls_cert_file=Path(args.tls_cert_file) if args.tls_cert_file else None,
            tls_private_key_file=(
                Path(args.tls_private_key_file) if args.tls_private_key_file else None
            ),
            cert_dir=Path(args.cert_dir),
            requestheader_client_ca_file=requestheader_ca,
            requestheader_allowed_names=tuple(
                n.strip() for n in args.requestheader_allowed_names.split(",") if n.strip()
            ),
            lister_kubeconfig=kubeconfigs["--lister-kubeconfig"],
            authentication_kubeconfig=kubeconfigs["--authentication-kubeconfig"],
            authorization_kubeconfig=kubeconfigs["--authorization-kubeconfig"],
            max_query_bytes=args.max_query_bytes,
            config_reload_interval=reload_interval or ServeSettings.config_reload_interval,
            workers=args.workers,
            threads=args.threads,
            log_level=log_level,
            tls_policy=tls_policy,
            always_allow_paths=always_allow_paths,
        ),
        [],
    )


def kube_api_client(kubeconfig: Path | None) -> kube_client.ApiClient:
    """A client from a kubeconfig, or the pod's service account when None."""
    configuration = kube_client.Configuration()
    if kubeconfig is None:
        kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        kube_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), client_configuration=configuration
        )
    return kube_client.ApiClient(configuration)


@dataclass
class Wiring:
    """The running parts of one worker (kept so tests and shutdown can reach them)."""

    app: Any
    cache: KubeCache
    discovery: MetricDiscovery
    rules: RulesReloader[CompiledConfig]

    def stop(self) -> None:
        self.rules.uninstall_sighup_handler()
        self.rules.stop()
        self.discovery.stop()


def rules_compiler(catalog: ResourceCatalog) -> Callable[[str, str], CompiledConfig]:
    """``(text, source name) → compiled rules`` against ``catalog``; raises ConfigError."""

    def load_and_compile(text: str, source_name: str) -> CompiledConfig:
        compiled = compile_config(load_config(text, source_name), catalog)
        for warning in compiled.warnings:
            LOG.warning("rules: %s", warning)
        return compiled

    return load_and_compile


def load_first_rules(
    reloader: RulesReloader[CompiledConfig],
    compile_text: Callable[[str, str], CompiledConfig],
    startup_rules: str | None,
) -> CompiledConfig:
    """The worker's first rules: the file, or, when it broke since the server started, the
    text the server validated then (the reloader keeps watching the file for a good one)."""
    try:
        return reloader.load()
    except (ConfigError, OSError, UnicodeDecodeError) as err:
        if startup_rules is None:
            raise
        LOG.error(
            "the rules file cannot be used now; starting with the rules it had when the server"
            " started: %s",
            err,
        )
        return compile_text(startup_rules, str(reloader.path))


def build_providers(
    settings: ServeSettings,
    cache_objects: ClusterObjects,
    discovery: MetricDiscovery,
    prometheus: PrometheusAPI,
) -> Providers:
    """Providers that read the rules in force from ``discovery``'s registry at every request."""
    queries = QueryRunner(prometheus)
    return Providers(
        resource=ResourceMetricsProvider(
            lambda: discovery.registry.config.resource_rules,
            cache_objects,
            queries,
            max_query_bytes=settings.max_query_bytes,
        ),
        custom=CustomMetricsProvider(
            lambda: discovery.registry,
            cache_objects,
            queries,
            max_query_bytes=settings.max_query_bytes,
        ),
        external=ExternalMetricsProvider(
            lambda: discovery.registry, queries, max_query_bytes=settings.max_query_bytes
        ),
        registry=lambda: discovery.registry,
        discovery_errors=discovery.errors,
    )


def build_worker(
    settings: ServeSettings,
    request_header: RequestHeaderSource,
    startup_rules: str | None = None,
) -> Wiring:
    """Start caches, discovery and rules reloading and build the authenticated WSGI app of one
    worker. ``startup_rules`` is the rules text validated when the server started."""
    lister = kube_api_client(settings.lister_kubeconfig)
    cache = start_kube_cache(lister)
    catalog = cache.catalog
    try:
        catalog.refresh()
    except Exception as err:  # discovery problems fall back to the built-in kinds
        LOG.warning("resource discovery failed at start, using built-in kinds: %s", err)
    compile_text = rules_compiler(catalog)
    discovery: MetricDiscovery | None = None

    def use_rules(compiled: CompiledConfig) -> None:
        if discovery is not None:  # None during the first load
            discovery.set_config(compiled)

    reloader = RulesReloader(settings.config_file, compile_text, use_rules)
    compiled = load_first_rules(reloader, compile_text, startup_rules)
    metrics = AdapterMetrics()
    # One client (one connection pool) for queries and discovery, timed alike.
    prometheus = TimedPrometheus(PrometheusClient(settings.prometheus), metrics)
    discovery = MetricDiscovery(prometheus, compiled, settings.discovery)
    discovery.start()
    reloader.start(settings.config_reload_interval.total_seconds())
    if threading.current_thread() is threading.main_thread():
        reloader.install_sighup_handler()  # gunicorn loads the app in the worker's main thread
    providers = build_providers(settings, cache.objects, discovery, prometheus)
    metrics.track_cache_sizes(cache.objects.sizes)
    metrics.track_discovery_age(
        lambda: None if discovery.last_success is None else discovery.last_success.timestamp(),
        time.time,
    )
    metrics.track_rules(
        lambda: reloader.generation,
        lambda: reloader.last_error is None,
        lambda: reloader.loaded_at,
    )
    operations = Operations(
        metrics,
        (
            ("informer-sync", lambda: None if cache.synced else "caches not synced yet"),
            ("prometheus", prometheus_reachable(prometheus)),
        ),
    )
    app = create_app(ApiSettings(), providers, time.time, operations=operations)
    authenticator = Authenticator(
        request_header, KubeTokenReviewer(kube_api_client(settings.authentication_kubeconfig))
    )
    authorizer = Authorizer(KubeAccessReviewer(kube_api_client(settings.authorization_kubeconfig)))
    return Wiring(
        AuthMiddleware(app.wsgi_app, authenticator, authorizer, settings.always_allow_paths),
        cache,
        discovery,
        reloader,
    )


def _request_header_source(settings: ServeSettings) -> RequestHeaderSource:
    if settings.requestheader_client_ca_file is not None:
        return StaticRequestHeaderSource(
            RequestHeaderSettings(
                client_ca_pem=settings.requestheader_client_ca_file.read_text(encoding="utf-8"),
                allowed_names=settings.requestheader_allowed_names,
            )
        )
    return AuthenticationConfigMapSource(kube_api_client(settings.authentication_kubeconfig))


def run_serve(args: argparse.Namespace) -> int:
    """Serve until terminated; 2 when the settings or rules are unusable."""
    settings, problems = settings_from_args(args)
    if settings is None:
        for problem in problems:
            print(f"kubemetrics-adapter: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        # Load once before forking so a broken rules file fails fast with every problem; the
        # text is what a worker starts from should the file break later.
        startup_rules = _read_rules(settings.config_file)
        load_config(startup_rules, str(settings.config_file))
        serving = dataclasses.replace(
            ensure_serving_certificate(
                settings.tls_cert_file, settings.tls_private_key_file, settings.cert_dir
            ),
            policy=settings.tls_policy,
        )
        request_header = _request_header_source(settings)
    except ConfigError as err:
        print(f"kubemetrics-adapter: {err}", file=sys.stderr)
        return 2
    except (TLSConfigError, kube_config.ConfigException, OSError) as err:
        print(f"kubemetrics-adapter: {err}", file=sys.stderr)
        return 2

    def app_factory() -> Any:
        return build_worker(settings, request_header, startup_rules).app

    AdapterServer(
        app_factory,
        serving,
        lambda: request_header.current().client_ca_pem,
        ServerOptions(
            bind=f"{settings.bind_address}:{settings.secure_port}",
            workers=settings.workers,
            threads=settings.threads,
            log_level=settings.log_level,
        ),
    ).run()
    return 0


def _read_rules(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            [ConfigProblem("", 0, f"cannot read the rules file: {err}")], str(path)
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Serve without the rest of the CLI (``python -m adapter.serve``)."""
    parser = argparse.ArgumentParser(prog="kubemetrics-adapter")
    add_serve_arguments(parser)
    return run_serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
