"""``kubemetrics-adapter``: serve the metrics APIs, or ``explain`` one request.

Without a subcommand it serves (flags from :mod:`adapter.serve`, named like
prometheus-adapter's where they mean the same). ``explain`` loads the rules, runs discovery once,
and prints what the adapter would do with one request path (docs/explain.md).

Exit codes of ``explain``: 0 values found, 1 not found / no values / Prometheus or the cluster
failed, 2 usage or configuration errors (every problem is printed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime

from adapter.config import parse_duration
from adapter.explain import EXIT_USAGE, run_explain
from adapter.prometheus import PrometheusConfigError, PrometheusSettings, parse_header_flags
from adapter.promql import DEFAULT_MAX_QUERY_BYTES
from adapter.serve import add_serve_arguments, run_serve

__all__ = ["build_parser", "main"]

_DESCRIPTION = (
    "Serve metrics.k8s.io, custom.metrics.k8s.io and external.metrics.k8s.io from Prometheus "
    "with prometheus-adapter-compatible rules. Without a command it serves; "
    "`kubemetrics-adapter explain --help` describes the explain command."
)
_EXPLAIN_DESCRIPTION = (
    "Show what the adapter does with one metrics API request: the rule that matches it (or why "
    "none does, with the closest metric names), the objects it selects, the exact PromQL, and "
    "the values Prometheus returns per object. Exit status: 0 values found, 1 not found or no "
    "values or a query failed, 2 usage or configuration error."
)
_EXPLAIN_EPILOG = (
    "Example: kubemetrics-adapter explain --config rules.yaml --prometheus-url "
    "http://127.0.0.1:9090 "
    "'/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/http_requests?labelSelector=app=web'"
)


def _formatter(prog: str) -> argparse.HelpFormatter:
    # A fixed width keeps --help identical on every terminal (it is a golden file).
    return argparse.HelpFormatter(prog, width=100)


def _add_explain_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    explain = commands.add_parser(
        "explain",
        help="explain one metrics API request path",
        description=_EXPLAIN_DESCRIPTION,
        epilog=_EXPLAIN_EPILOG,
        formatter_class=_formatter,
    )
    explain.add_argument(
        "request_path",
        metavar="REQUEST-PATH",
        help="a metrics API path such as "
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/NS/pods/*/M with its "
        "?labelSelector=... (percent-encoded or not), or a full https:// URL",
    )
    explain.add_argument(
        "--config", required=True, metavar="FILE", help="rules file (prometheus-adapter format)"
    )
    explain.add_argument(
        "--prometheus-url", required=True, metavar="URL", help="e.g. http://prometheus:9090"
    )
    explain.add_argument(
        "--prometheus-header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra header on every Prometheus request, e.g. X-Scope-OrgID=team (repeatable)",
    )
    explain.add_argument("--prometheus-token-file", metavar="FILE", help="bearer token file")
    explain.add_argument(
        "--prometheus-ca-file", metavar="FILE", help="CA bundle to verify Prometheus' TLS"
    )
    explain.add_argument(
        "--prometheus-timeout",
        default="30s",
        metavar="DURATION",
        help="bound on each Prometheus request (default: %(default)s)",
    )
    explain.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="list the objects a * or list request selects from this cluster; without it the "
        "query matches every object of the namespace",
    )
    explain.add_argument(
        "--time",
        metavar="TIME",
        help="evaluate at this time (unix seconds or RFC 3339); discovery looks back from it "
        "(default: now)",
    )
    explain.add_argument(
        "--max-query-bytes",
        type=int,
        default=DEFAULT_MAX_QUERY_BYTES,
        metavar="BYTES",
        help="longest PromQL sent; longer name lists are split (default: %(default)s)",
    )
    explain.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="text for people, json for tools (default: %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubemetrics-adapter", description=_DESCRIPTION, formatter_class=_formatter
    )
    add_serve_arguments(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    _add_explain_parser(commands)
    return parser


def _parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--time {text!r} is neither unix seconds nor an RFC 3339 time"
            " (e.g. 2024-05-01T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"--time {text!r} needs a time zone (e.g. a trailing Z)")
    return moment.timestamp()


def _explain(args: argparse.Namespace) -> int:
    problems: list[str] = []
    timeout = 30.0
    try:
        timeout = parse_duration(args.prometheus_timeout).total_seconds()
    except ValueError as err:
        problems.append(f"--prometheus-timeout: {err}")
    headers: tuple[tuple[str, str], ...] = ()
    try:
        headers = parse_header_flags(args.prometheus_header)
    except PrometheusConfigError as err:
        problems.append(str(err))
    at = None
    if args.time is not None:
        try:
            at = _parse_time(args.time)
        except ValueError as err:
            problems.append(str(err))
    if args.max_query_bytes <= 0:
        problems.append(f"--max-query-bytes must be positive, got {args.max_query_bytes}")
    settings = PrometheusSettings(
        url=args.prometheus_url,
        timeout=timeout,
        bearer_token_file=args.prometheus_token_file,
        ca_file=args.prometheus_ca_file,
        headers=headers,
    )
    problems.extend(settings.problems())
    if problems:
        for problem in problems:
            print(f"kubemetrics-adapter explain: {problem}", file=sys.stderr)
        return EXIT_USAGE
    return run_explain(
        config_file=args.config,
        prometheus_settings=settings,
        target=args.request_path,
        kubeconfig=args.kubeconfig,
        output=args.output,
        at=at,
        max_query_bytes=args.max_query_bytes,
    )


# prometheus-adapter's Helm chart starts its args with the binary's path; with an image whose
# entrypoint is kubemetrics-adapter that path arrives as the first argument.
PROMETHEUS_ADAPTER_BINARY = "/adapter"


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == [PROMETHEUS_ADAPTER_BINARY]:
        arguments = arguments[1:]
    args = build_parser().parse_args(arguments)
    if args.command == "explain":
        return _explain(args)
    return run_serve(args)


if __name__ == "__main__":
    sys.exit(main())
