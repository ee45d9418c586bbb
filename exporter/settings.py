"""The exporter's frozen ``Settings`` and their validation.

``build_settings`` takes the raw flag strings and returns ``Settings``, or raises one
``SettingsError`` listing every problem at once (the CLI prints them and exits 2).

Exception tree::

    ValueError
     +-- SettingsError     one or more flags are invalid; ``problems`` lists them all
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = [
    "DEFAULT_KUBELET_TIMEOUT",
    "DEFAULT_LISTEN_ADDRESS",
    "DEFAULT_MAX_BODY_BYTES",
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

    ``kubelet_url`` is an http(s) URL, or ``kubelet_file`` is set for a ``file://`` URL.
    ``listen_host`` "" means every IPv4 address. ``node_name`` (from the downward API's
    ``NODE_NAME``) labels the exporter's self metrics; without it the Summary's ``nodeName``
    is used once known, and the kubelet URL's host before that.
    """

    kubelet_url: str
    kubelet_file: Path | None
    kubelet_timeout_seconds: float
    kubelet_max_body_bytes: int
    listen_host: str
    listen_port: int
    node_name: str | None
    log_level: str

    @property
    def target_name(self) -> str:
        """A name for the scraped kubelet before its Summary has told us its node name."""
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


def build_settings(
    *,
    kubelet_url: str | None,
    kubelet_timeout: str,
    kubelet_max_body_bytes: str,
    listen_address: str,
    node_name: str | None,
    log_level: str,
) -> Settings:
    problems: list[str] = []

    kubelet_file: Path | None = None
    url = (kubelet_url or "").strip()
    if not url:
        problems.append("--kubelet-url is required (an http(s) URL or file:///path)")
    else:
        parts = urlsplit(url)
        if parts.scheme == "file":
            if parts.netloc not in ("", "localhost") or not parts.path:
                problems.append(
                    f"--kubelet-url {url!r}: a file URL needs an absolute path, e.g. "
                    "file:///tmp/summary.json"
                )
            else:
                kubelet_file = Path(unquote(parts.path))
        elif parts.scheme in ("http", "https"):
            if not parts.hostname:
                problems.append(f"--kubelet-url {url!r}: no host")
        else:
            problems.append(
                f"--kubelet-url {url!r}: scheme must be http, https or file, "
                f"not {parts.scheme or 'missing'!r}"
            )

    timeout = 0.0
    try:
        timeout = parse_duration(kubelet_timeout)
    except ValueError as err:
        problems.append(f"--kubelet-timeout: {err}")
    else:
        if timeout <= 0:
            problems.append(f"--kubelet-timeout {kubelet_timeout!r}: must be more than 0")

    max_body = 0
    if kubelet_max_body_bytes.strip().isdigit() and int(kubelet_max_body_bytes) > 0:
        max_body = int(kubelet_max_body_bytes)
    else:
        problems.append(
            f"--kubelet-max-body-bytes {kubelet_max_body_bytes!r}: must be a positive integer"
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
    return Settings(
        kubelet_url=url,
        kubelet_file=kubelet_file,
        kubelet_timeout_seconds=timeout,
        kubelet_max_body_bytes=max_body,
        listen_host=host,
        listen_port=port,
        node_name=node_name or None,
        log_level=log_level,
    )
