"""``kubemetrics-adapter`` without a subcommand: settings, wiring and serving over HTTPS.

Flags follow prometheus-adapter's where they mean the same (``--config``, ``--prometheus-url``,
``--secure-port``, ``--cert-dir``, ``--requestheader-*``, ``--metrics-relist-interval``,
``--lister-kubeconfig``, ...). ``settings_from_args`` checks everything at once and
``run_serve`` prints every problem and exits 2 before anything starts.

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
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from kubernetes import client as kube_client
from kubernetes import config as kube_config

from adapter.api import ApiSettings, create_app
from adapter.auth import (
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
from adapter.tls import TLSConfigError, ensure_serving_certificate
from adapter.wsgi_server import AdapterServer, ServerOptions

LOG = logging.getLogger(__name__)

DEFAULT_CERT_DIR = "/tmp/kubemetrics-adapter/certs"  # noqa: S108 - upstream's default is relative
CACHE_SYNC_TIMEOUT_SECONDS = 60.0


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
    serving.add_argument("--log-level", default="info", choices=("debug", "info", "warning"))
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


def settings_from_args(args: argparse.Namespace) -> tuple[ServeSettings | None, list[str]]:
    """Validated settings, or None and every problem found."""
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
    prometheus = PrometheusSettings(
        url=args.prometheus_url or "http://invalid",
        timeout=timeout.total_seconds() if timeout else 30.0,
        verb=args.prometheus_verb,
        bearer_token_file=args.prometheus_token_file,
        ca_file=args.prometheus_ca_file,
        client_cert_file=args.prometheus_client_tls_cert_file,
        client_key_file=args.prometheus_client_tls_key_file,
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
            log_level=args.log_level,
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
        AuthMiddleware(app.wsgi_app, authenticator, authorizer), cache, discovery, reloader
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
        serving = ensure_serving_certificate(
            settings.tls_cert_file, settings.tls_private_key_file, settings.cert_dir
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
