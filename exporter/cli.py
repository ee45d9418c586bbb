"""``kubemetrics-exporter``: flags -> Settings -> source -> HTTP server.

Exit codes: 0 after a clean shutdown (SIGTERM or SIGINT), 2 for invalid flags (every problem is
printed), 1 when the listen address cannot be bound.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from types import FrameType

from exporter.server import NodeScraper, create_app, make_server_for
from exporter.settings import (
    DEFAULT_KUBELET_TIMEOUT,
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_MAX_BODY_BYTES,
    LOG_LEVELS,
    Settings,
    SettingsError,
    build_settings,
)
from exporter.source import FileSource, SummarySource, URLSource

__all__ = ["build_parser", "main", "settings_from_args", "source_for"]

logger = logging.getLogger("exporter")

_DESCRIPTION = (
    "Serve a kubelet's Summary API (/stats/summary) as Prometheus metrics (prefix kubestats_). "
    "The kubelet is read on every scrape of /metrics; a failed read is reported in "
    "kubestats_exporter_scrape_success and kubestats_exporter_scrape_errors_total, not as an "
    "HTTP error."
)
_EPILOG = (
    "Environment: NODE_NAME (from the downward API's spec.nodeName) is the node label of the "
    "exporter's self metrics; without it they use the Summary's nodeName once it is known."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubemetrics-exporter",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        # A fixed width keeps --help identical on every terminal (it is a golden file).
        formatter_class=lambda prog: argparse.HelpFormatter(prog, width=100),
    )
    parser.add_argument(
        "--kubelet-url",
        metavar="URL",
        help="where to read the Summary API: http(s)://HOST:PORT/stats/summary, or "
        "file:///PATH for a saved payload (required)",
    )
    parser.add_argument(
        "--kubelet-timeout",
        metavar="DURATION",
        default=DEFAULT_KUBELET_TIMEOUT,
        help="bound on one kubelet request, body included, e.g. 10s or 500ms "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--kubelet-max-body-bytes",
        metavar="BYTES",
        default=DEFAULT_MAX_BODY_BYTES,
        help="largest Summary body accepted (default: %(default)s)",
    )
    parser.add_argument(
        "--listen-address",
        metavar="HOST:PORT",
        default=DEFAULT_LISTEN_ADDRESS,
        help="address to serve /metrics, /healthz and /readyz on; an empty host means every "
        "IPv4 address (default: %(default)s)",
    )
    parser.add_argument(
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
    )


def source_for(settings: Settings) -> SummarySource:
    if settings.kubelet_file is not None:
        return FileSource(settings.kubelet_file, settings.kubelet_max_body_bytes)
    return URLSource(
        settings.kubelet_url, settings.kubelet_timeout_seconds, settings.kubelet_max_body_bytes
    )


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
    scraper = NodeScraper(
        source_for(settings), node_name=settings.node_name, target_name=settings.target_name
    )
    try:
        server = make_server_for(create_app(scraper), settings.listen_host, settings.listen_port)
    except OSError as err:
        logger.error("cannot listen on %s:%s: %s", settings.listen_host, settings.listen_port, err)
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        logger.info("received signal %d, shutting down", signum)
        # shutdown() waits for serve_forever to return, so it must run on another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    logger.info("serving on %s:%s, reading %s", host, port, _redacted(settings.kubelet_url))
    server.serve_forever()
    server.server_close()
    return 0


def _redacted(url: str) -> str:
    """The URL without userinfo or query, so a credential never reaches the log."""
    scheme, _, rest = url.partition("://")
    host_and_path = rest.rsplit("@", 1)[-1].split("?", 1)[0]
    return f"{scheme}://{host_and_path}" if rest else url


if __name__ == "__main__":
    sys.exit(main())
