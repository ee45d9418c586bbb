"""``kubemetrics-exporter``: flags -> Settings -> targets -> background collector -> HTTP server.

Exit codes: 0 after a clean shutdown (SIGTERM or SIGINT), 2 for invalid flags or unusable kubelet
access settings (every flag problem is printed), 1 when the listen address cannot be bound.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from exporter.collector import Collector, Target, TargetSource
from exporter.kubelet_client import (
    SERVICE_ACCOUNT_DIR,
    KubeletAuth,
    KubeletClient,
    KubeletConfigError,
    apiserver_proxy_client,
    auth_from_kubernetes_configuration,
    describe_auth,
    load_kubernetes_configuration,
)
from exporter.nodes import ADDRESS_TYPES, KubeletTarget, NodeLister, kubelet_targets
from exporter.server import create_app, make_server_for
from exporter.settings import (
    DEFAULT_COLLECT_INTERVAL,
    DEFAULT_KUBELET_PORT,
    DEFAULT_KUBELET_TIMEOUT,
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONCURRENT_SCRAPES,
    DEFAULT_PREFERRED_ADDRESS_TYPES,
    LOG_LEVELS,
    Settings,
    SettingsError,
    build_settings,
)
from exporter.source import FileSource
from exporter.targets import ClusterTargets, KubeletPaths, StaticTargets, proxy_targets

__all__ = ["build_parser", "main", "settings_from_args", "targets_for"]

logger = logging.getLogger("exporter")

_DESCRIPTION = (
    "Serve kubelets' Summary API (/stats/summary) and /pods as Prometheus metrics (prefix "
    "kubestats_). Kubelets are read in the background every --collect-interval and /metrics "
    "serves the last complete round; a failed read is reported in "
    "kubestats_exporter_scrape_success and kubestats_exporter_scrape_errors_total, not as an "
    "HTTP error. Say which kubelets to read with --kubelet-url, --node-name (per-node, as a "
    "DaemonSet) or --all-nodes (cluster-wide, as one Deployment)."
)
_EPILOG = (
    "Environment: NODE_NAME (from the downward API's spec.nodeName) is the default of "
    "--node-name, and labels the self metrics with --kubelet-url; NODE_IP (status.hostIP) is "
    "the address of the local kubelet in per-node mode (default: the node name)."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubemetrics-exporter",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        # A fixed width keeps --help identical on every terminal (it is a golden file).
        formatter_class=lambda prog: argparse.HelpFormatter(prog, width=100),
    )
    which = parser.add_argument_group("which kubelets")
    which.add_argument(
        "--kubelet-url",
        metavar="URL",
        help="read one kubelet: https://HOST:PORT (its /stats/summary and /pods), a URL ending in "
        "/stats/summary, or file:///PATH for a saved Summary payload",
    )
    which.add_argument(
        "--node-name",
        metavar="NAME",
        help="per-node mode: read this node's kubelet at https://$NODE_IP:PORT (or "
        "https://NAME:PORT without NODE_IP) (default: $NODE_NAME)",
    )
    which.add_argument(
        "--all-nodes",
        action="store_true",
        help="cluster-wide mode: list nodes from the API server and read every kubelet",
    )
    which.add_argument(
        "--node-selector",
        metavar="SELECTOR",
        help="with --all-nodes, read only nodes matching this label selector, e.g. "
        "kubernetes.io/os=linux",
    )
    which.add_argument(
        "--kubelet-preferred-address-types",
        metavar="TYPES",
        default=DEFAULT_PREFERRED_ADDRESS_TYPES,
        help=f"with --all-nodes, the node address types to try in order (of "
        f"{','.join(ADDRESS_TYPES)}) (default: %(default)s)",
    )
    which.add_argument(
        "--kubelet-port",
        metavar="PORT",
        default=DEFAULT_KUBELET_PORT,
        help="kubelet port in per-node mode, and for nodes that do not publish theirs in "
        "status.daemonEndpoints (default: %(default)s)",
    )
    which.add_argument(
        "--kubelet-via-apiserver",
        action="store_true",
        help="reach kubelets through the API server's node proxy "
        "(/api/v1/nodes/NAME/proxy) with the kubeconfig's credentials, not directly",
    )
    which.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="kubeconfig for listing nodes and the API server proxy (default: in-cluster config)",
    )
    access = parser.add_argument_group("kubelet authentication and TLS")
    access.add_argument(
        "--kubelet-token-file",
        metavar="PATH",
        help="bearer token for kubelets, re-read when it changes (default: the service-account "
        "token when running in a pod)",
    )
    access.add_argument(
        "--kubelet-ca-file",
        metavar="PATH",
        help="CA that signs kubelet serving certificates (default: the service-account ca.crt "
        "when running in a pod, else the system CAs)",
    )
    access.add_argument(
        "--kubelet-client-certificate",
        metavar="PATH",
        help="client certificate for kubelets (with --kubelet-client-key)",
    )
    access.add_argument(
        "--kubelet-client-key", metavar="PATH", help="key of --kubelet-client-certificate"
    )
    access.add_argument(
        "--kubelet-insecure-tls",
        action="store_true",
        help="do not verify kubelet certificates (testing only; logged as a warning)",
    )
    collection = parser.add_argument_group("collection")
    collection.add_argument(
        "--collect-interval",
        metavar="DURATION",
        default=DEFAULT_COLLECT_INTERVAL,
        help="how often every kubelet is read in the background (default: %(default)s)",
    )
    collection.add_argument(
        "--kubelet-timeout",
        metavar="DURATION",
        default=DEFAULT_KUBELET_TIMEOUT,
        help="bound on one kubelet request, body included, e.g. 10s or 500ms "
        "(default: %(default)s)",
    )
    collection.add_argument(
        "--max-concurrent-scrapes",
        metavar="N",
        default=DEFAULT_MAX_CONCURRENT_SCRAPES,
        help="kubelet requests in flight at once (default: %(default)s)",
    )
    collection.add_argument(
        "--kubelet-max-body-bytes",
        metavar="BYTES",
        default=DEFAULT_MAX_BODY_BYTES,
        help="largest Summary or /pods body accepted (default: %(default)s)",
    )
    serving = parser.add_argument_group("serving")
    serving.add_argument(
        "--listen-address",
        metavar="HOST:PORT",
        default=DEFAULT_LISTEN_ADDRESS,
        help="address to serve /metrics, /healthz and /readyz on; an empty host means every "
        "IPv4 address (default: %(default)s)",
    )
    serving.add_argument(
        "--log-level",
        metavar="LEVEL",
        default="info",
        help=f"one of {', '.join(LOG_LEVELS)} (default: %(default)s)",
    )
    return parser


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    return build_settings(
        kubelet_url=args.kubelet_url,
        kubelet_timeout=args.kubelet_timeout,
        kubelet_max_body_bytes=args.kubelet_max_body_bytes,
        listen_address=args.listen_address,
        node_name=environ.get("NODE_NAME"),
        log_level=args.log_level,
        all_nodes=args.all_nodes,
        node_name_flag=args.node_name,
        node_ip=environ.get("NODE_IP"),
        kubelet_token_file=args.kubelet_token_file,
        kubelet_ca_file=args.kubelet_ca_file,
        kubelet_client_certificate=args.kubelet_client_certificate,
        kubelet_client_key=args.kubelet_client_key,
        kubelet_insecure_tls=args.kubelet_insecure_tls,
        kubelet_port=args.kubelet_port,
        kubelet_preferred_address_types=args.kubelet_preferred_address_types,
        kubelet_via_apiserver=args.kubelet_via_apiserver,
        node_selector=args.node_selector,
        kubeconfig=args.kubeconfig,
        collect_interval=args.collect_interval,
        max_concurrent_scrapes=args.max_concurrent_scrapes,
    )


def kubelet_auth(
    settings: Settings, service_account_dir: Path = SERVICE_ACCOUNT_DIR
) -> KubeletAuth:
    """The one auth object of the process (it logs the --kubelet-insecure-tls warning)."""
    return KubeletAuth.from_flags(
        token_file=settings.kubelet_token_file,
        ca_file=settings.kubelet_ca_file,
        client_cert_file=settings.kubelet_client_certificate,
        client_key_file=settings.kubelet_client_key,
        insecure_skip_verify=settings.kubelet_insecure_tls,
        service_account_dir=service_account_dir,
    )


def targets_for(
    settings: Settings,
    *,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    kubernetes_configuration: Any = None,
) -> TargetSource:
    """The kubelets to read. Raises ``KubeletConfigError`` for unusable access settings.

    ``kubernetes_configuration`` replaces loading ``--kubeconfig`` (or the in-cluster config).
    """
    timeout, max_body = settings.kubelet_timeout_seconds, settings.kubelet_max_body_bytes
    if settings.mode == "url":
        unnamed = settings.node_name is None
        if settings.kubelet_file is not None:
            source = FileSource(settings.kubelet_file, settings.kubelet_max_body_bytes)
            return StaticTargets(Target(settings.target_name, source, None, unnamed))
        base, summary_path, pods_path = KubeletPaths.split_url(settings.kubelet_url)
        client = KubeletClient(
            base,
            kubelet_auth(settings, service_account_dir),
            timeout_seconds=timeout,
            max_body_bytes=max_body,
        )
        paths = KubeletPaths(client, summary_path, pods_path or "/pods")
        pods = paths if pods_path is not None else None
        return StaticTargets(Target(settings.target_name, paths, pods, unnamed))

    configuration = kubernetes_configuration
    needs_api = settings.mode == "cluster" or settings.kubelet_via_apiserver
    if configuration is None and needs_api:
        configuration = load_kubernetes_configuration(settings.kubeconfig)

    if settings.mode == "node":
        node = settings.target_name
        if settings.kubelet_via_apiserver:
            client = apiserver_proxy_client(
                configuration, node, timeout_seconds=timeout, max_body_bytes=max_body
            )
        else:
            client = KubeletClient(
                settings.kubelet_url,
                kubelet_auth(settings, service_account_dir),
                timeout_seconds=timeout,
                max_body_bytes=max_body,
            )
        paths = KubeletPaths(client)
        return StaticTargets(Target(node, paths, paths))

    lister = NodeLister.from_configuration(
        configuration,
        label_selector=settings.node_selector,
        timeout_seconds=settings.kubelet_timeout_seconds,
    )
    if settings.kubelet_via_apiserver:
        proxy_auth = auth_from_kubernetes_configuration(configuration)

        def connect_proxy(target: KubeletTarget) -> KubeletClient:
            return apiserver_proxy_client(
                configuration,
                target.node_name,
                auth=proxy_auth,
                timeout_seconds=timeout,
                max_body_bytes=max_body,
            )

        return ClusterTargets(
            lister, partial(proxy_targets, apiserver=str(configuration.host)), connect_proxy
        )
    auth = kubelet_auth(settings, service_account_dir)
    logger.info("kubelet access: %s", dict(describe_auth(auth)))

    def connect(target: KubeletTarget) -> KubeletClient:
        return KubeletClient(target.url, auth, timeout_seconds=timeout, max_body_bytes=max_body)

    select = partial(
        kubelet_targets,
        preferred_address_types=settings.kubelet_preferred_address_types,
        default_port=settings.kubelet_port,
    )
    return ClusterTargets(lister, select, connect)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args, os.environ)
    except SettingsError as err:
        for problem in err.problems:
            print(f"kubemetrics-exporter: {problem}", file=sys.stderr)
        return 2

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        targets = targets_for(settings)
    except KubeletConfigError as err:
        print(f"kubemetrics-exporter: {err}", file=sys.stderr)
        return 2
    collector = Collector(
        targets,
        interval_seconds=settings.collect_interval_seconds,
        timeout_seconds=settings.kubelet_timeout_seconds,
        max_concurrent_scrapes=settings.max_concurrent_scrapes,
    )
    try:
        server = make_server_for(create_app(collector), settings.listen_host, settings.listen_port)
    except OSError as err:
        logger.error("cannot listen on %s:%s: %s", settings.listen_host, settings.listen_port, err)
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        logger.info("received signal %d, shutting down", signum)
        # shutdown() waits for serve_forever to return, so it must run on another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    collector.start()
    host, port = server.server_address[:2]
    what = {
        "url": _redacted(settings.kubelet_url) if settings.kubelet_url else "",
        "node": f"node {settings.node_name}",
        "cluster": "every node"
        + (f" matching {settings.node_selector}" if settings.node_selector else ""),
    }[settings.mode]
    logger.info(
        "serving on %s:%s, reading %s every %gs",
        host,
        port,
        what or str(settings.kubelet_file),
        settings.collect_interval_seconds,
    )
    server.serve_forever()
    server.server_close()
    collector.stop()
    closer = getattr(targets, "close", None)
    if callable(closer):
        closer()
    logger.info("stopped")
    return 0


def _describe_targets(settings: Settings) -> str:
    if settings.mode == "cluster":
        selector = f" matching {settings.node_selector}" if settings.node_selector else ""
        return f"every node{selector}"
    if settings.mode == "node":
        return f"node {settings.node_name}"
    if settings.kubelet_file is not None:
        return str(settings.kubelet_file)
    return _redacted(settings.kubelet_url)


def _redacted(url: str) -> str:
    """The URL without userinfo or query, so a credential never reaches the log."""
    scheme, _, rest = url.partition("://")
    host_and_path = rest.rsplit("@", 1)[-1].split("?", 1)[0]
    return f"{scheme}://{host_and_path}" if rest else url


if __name__ == "__main__":
    sys.exit(main())
