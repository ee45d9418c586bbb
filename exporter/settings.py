"""The exporter's frozen ``Settings`` and their validation.

``build_settings`` takes the raw flag strings and returns ``Settings``, or raises one
``SettingsError`` listing every problem at once (the CLI prints them and exits 2). Pure: files
named by flags are checked when the kubelet client is built, not here.

Three modes, chosen by the flags:

- ``url``: ``--kubelet-url`` (a kubelet URL, or ``file://`` for a saved Summary);
- ``node``: ``--node-name`` or ``NODE_NAME`` (a DaemonSet): the local kubelet at
  ``https://$NODE_IP:<--kubelet-port>``, or the node name when ``NODE_IP`` is not set;
- ``cluster``: ``--all-nodes`` (one Deployment): every node the API server lists.

Exception tree::

    ValueError
     +-- SettingsError     one or more flags are invalid; ``problems`` lists them all
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from exporter.nodes import DEFAULT_KUBELET_PORT as _DEFAULT_PORT
from exporter.nodes import DEFAULT_PREFERRED_ADDRESS_TYPES as _DEFAULT_ADDRESS_TYPES
from exporter.nodes import NodeTargetConfigError, parse_address_types

__all__ = [
    "DEFAULT_COLLECT_INTERVAL",
    "DEFAULT_KUBELET_TIMEOUT",
    "DEFAULT_LISTEN_ADDRESS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_CONCURRENT_SCRAPES",
    "LOG_LEVELS",
    "Settings",
    "SettingsError",
    "build_settings",
    "parse_duration",
]

# 9787 is not taken by a well-known exporter (checked from memory of the Prometheus
# "default port allocations" wiki page, which was not reachable from here).
DEFAULT_LISTEN_ADDRESS = ":9787"
DEFAULT_KUBELET_TIMEOUT = "10s"
DEFAULT_MAX_BODY_BYTES = str(64 * 1024 * 1024)
# The kubelet refreshes its stats every 10-15 s; collecting more often only repeats them.
DEFAULT_COLLECT_INTERVAL = "15s"
# Enough to fetch a few hundred healthy nodes in a couple of waves while a handful hang.
DEFAULT_MAX_CONCURRENT_SCRAPES = "64"
DEFAULT_KUBELET_PORT = str(_DEFAULT_PORT)
DEFAULT_PREFERRED_ADDRESS_TYPES = ",".join(_DEFAULT_ADDRESS_TYPES)
MODES = ("url", "node", "cluster")
LOG_LEVELS = ("debug", "info", "warning", "error")

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class SettingsError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated exporter settings.

    ``mode`` is one of ``MODES``. In ``url`` mode ``kubelet_url`` is an http(s) URL, or
    ``kubelet_file`` is set for a ``file://`` URL; in ``node`` mode ``kubelet_url`` is the local
    kubelet's base URL (unused with ``kubelet_via_apiserver``); in ``cluster`` mode it is "".
    ``listen_host`` "" means every IPv4 address. ``node_name`` (``--node-name`` or the downward
    API's ``NODE_NAME``) labels the exporter's self metrics; without it the Summary's
    ``nodeName`` is used once known, and the kubelet URL's host before that.
    """

    kubelet_url: str
    kubelet_file: Path | None
    kubelet_timeout_seconds: float
    kubelet_max_body_bytes: int
    listen_host: str
    listen_port: int
    node_name: str | None
    log_level: str
    mode: str = "url"
    kubelet_token_file: str | None = None
    kubelet_ca_file: str | None = None
    kubelet_client_certificate: str | None = None
    kubelet_client_key: str | None = None
    kubelet_insecure_tls: bool = False
    kubelet_port: int = _DEFAULT_PORT
    kubelet_preferred_address_types: tuple[str, ...] = _DEFAULT_ADDRESS_TYPES
    kubelet_via_apiserver: bool = False
    node_selector: str | None = None
    kubeconfig: str | None = None
    collect_interval_seconds: float = 15.0
    max_concurrent_scrapes: int = 64

    @property
    def target_name(self) -> str:
        """A name for the scraped kubelet before its Summary has told us its node name."""
        if self.node_name:
            return self.node_name
        if self.kubelet_file is not None:
            return self.kubelet_file.name
        return urlsplit(self.kubelet_url).hostname or self.kubelet_url


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration ("10s", "500ms", "1m30s"); a bare number is seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"{text!r} is not a duration like 10s, 500ms or 1m30s")
    return total


def _positive_duration(flag: str, text: str, problems: list[str]) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as err:
        problems.append(f"{flag}: {err}")
        return 0.0
    if seconds <= 0:
        problems.append(f"{flag} {text!r}: must be more than 0")
    return seconds


def _positive_int(flag: str, text: str, problems: list[str], *, maximum: int | None = None) -> int:
    text = text.strip()
    if text.isdigit() and int(text) > 0 and (maximum is None or int(text) <= maximum):
        return int(text)
    bound = f" from 1 to {maximum}" if maximum is not None else ""
    problems.append(f"{flag} {text!r}: must be a positive integer{bound}")
    return 0


def _check_url(url: str, problems: list[str]) -> Path | None:
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            problems.append(
                f"--kubelet-url {url!r}: a file URL needs an absolute path, e.g. "
                "file:///tmp/summary.json"
            )
            return None
        return Path(unquote(parts.path))
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            problems.append(f"--kubelet-url {url!r}: no host")
        elif parts.username or parts.password or parts.fragment:
            problems.append(
                f"--kubelet-url {url!r}: must not carry credentials or a fragment "
                "(use --kubelet-token-file)"
            )
    else:
        problems.append(
            f"--kubelet-url {url!r}: scheme must be http, https or file, "
            f"not {parts.scheme or 'missing'!r}"
        )
    return None


def build_settings(
    *,
    kubelet_url: str | None,
    kubelet_timeout: str,
    kubelet_max_body_bytes: str,
    listen_address: str,
    node_name: str | None,
    log_level: str,
    all_nodes: bool = False,
    node_name_flag: str | None = None,
    node_ip: str | None = None,
    kubelet_token_file: str | None = None,
    kubelet_ca_file: str | None = None,
    kubelet_client_certificate: str | None = None,
    kubelet_client_key: str | None = None,
    kubelet_insecure_tls: bool = False,
    kubelet_port: str = DEFAULT_KUBELET_PORT,
    kubelet_preferred_address_types: str = DEFAULT_PREFERRED_ADDRESS_TYPES,
    kubelet_via_apiserver: bool = False,
    node_selector: str | None = None,
    kubeconfig: str | None = None,
    collect_interval: str = DEFAULT_COLLECT_INTERVAL,
    max_concurrent_scrapes: str = DEFAULT_MAX_CONCURRENT_SCRAPES,
) -> Settings:
    """``node_name`` is the ``NODE_NAME`` environment variable, ``node_name_flag`` the
    ``--node-name`` flag (which wins), ``node_ip`` the ``NODE_IP`` environment variable."""
    problems: list[str] = []

    url = (kubelet_url or "").strip()
    name = (node_name_flag or "").strip() or (node_name or "").strip() or None
    kubelet_file: Path | None = None
    mode = "url"
    if all_nodes:
        mode = "cluster"
        if url:
            problems.append("--all-nodes and --kubelet-url exclude each other")
        if node_name_flag:
            problems.append("--all-nodes and --node-name exclude each other")
        # NODE_NAME may be set by a manifest shared with the DaemonSet; it means nothing here.
        name = None
    elif url:
        kubelet_file = _check_url(url, problems)
        if kubelet_via_apiserver:
            problems.append(
                "--kubelet-via-apiserver needs --node-name (or NODE_NAME) or --all-nodes, "
                "not --kubelet-url"
            )
    elif name:
        mode = "node"
    else:
        problems.append(
            "say which kubelet to read: --kubelet-url URL, --node-name NAME (or the NODE_NAME "
            "environment variable) for the local node, or --all-nodes"
        )
    if node_selector and not all_nodes:
        problems.append("--node-selector only applies with --all-nodes")

    timeout = _positive_duration("--kubelet-timeout", kubelet_timeout, problems)
    interval = _positive_duration("--collect-interval", collect_interval, problems)
    max_body = _positive_int("--kubelet-max-body-bytes", kubelet_max_body_bytes, problems)
    concurrency = _positive_int("--max-concurrent-scrapes", max_concurrent_scrapes, problems)
    port_number = _positive_int("--kubelet-port", kubelet_port, problems, maximum=65535)

    address_types: tuple[str, ...] = _DEFAULT_ADDRESS_TYPES
    try:
        address_types = parse_address_types(kubelet_preferred_address_types)
    except NodeTargetConfigError as err:
        problems.append(f"--kubelet-preferred-address-types: {err}")

    if (kubelet_client_certificate is None) != (kubelet_client_key is None):
        problems.append(
            "--kubelet-client-certificate and --kubelet-client-key go together: give both or "
            "neither"
        )
    if kubelet_insecure_tls and kubelet_ca_file is not None:
        problems.append(
            "--kubelet-insecure-tls and --kubelet-ca-file exclude each other: either verify "
            "against the CA or do not verify at all"
        )

    host, port = "", 0
    host_text, separator, port_text = listen_address.rpartition(":")
    if not separator:
        problems.append(f"--listen-address {listen_address!r}: expected host:port, e.g. :9787")
    else:
        host = (
            host_text[1:-1] if host_text.startswith("[") and host_text.endswith("]") else host_text
        )
        if port_text.isdigit() and 0 <= int(port_text) <= 65535:
            port = int(port_text)
        else:
            problems.append(
                f"--listen-address {listen_address!r}: port must be a number from 0 to 65535"
            )

    if log_level not in LOG_LEVELS:
        problems.append(f"--log-level {log_level!r}: must be one of {', '.join(LOG_LEVELS)}")

    if problems:
        raise SettingsError(problems)
    if mode == "node" and name is not None:
        kubelet_host = (node_ip or "").strip() or name
        if ":" in kubelet_host:
            kubelet_host = f"[{kubelet_host}]"
        url = f"https://{kubelet_host}:{port_number}"
    return Settings(
        kubelet_url=url,
        kubelet_file=kubelet_file,
        kubelet_timeout_seconds=timeout,
        kubelet_max_body_bytes=max_body,
        listen_host=host,
        listen_port=port,
        node_name=name,
        log_level=log_level,
        mode=mode,
        kubelet_token_file=kubelet_token_file,
        kubelet_ca_file=kubelet_ca_file,
        kubelet_client_certificate=kubelet_client_certificate,
        kubelet_client_key=kubelet_client_key,
        kubelet_insecure_tls=kubelet_insecure_tls,
        kubelet_port=port_number,
        kubelet_preferred_address_types=address_types,
        kubelet_via_apiserver=kubelet_via_apiserver,
        node_selector=node_selector or None,
        kubeconfig=kubeconfig,
        collect_interval_seconds=interval,
        max_concurrent_scrapes=concurrency,
    )
