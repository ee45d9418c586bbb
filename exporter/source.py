"""Where kubelet bytes come from.

A source fetches the raw body of a kubelet endpoint (``/stats/summary``, ``/pods``). Sources do
IO and nothing else: parsing lives in ``exporter.parse``.

Exception tree::

    FetchError                 a kubelet could not be read; ``reason`` is a short label value
                               used in kubestats_exporter_scrape_errors_total{reason=...}

Reasons (stable label values, documented in the README):
    timeout        connect or read took longer than the timeout
    connection     refused, reset, DNS failure, closed mid-body
    tls            certificate verification or handshake failed
    unauthorized   HTTP 401 or 403
    http_status    any other non-2xx status
    too_large      body exceeded the configured maximum size
    invalid_json   body is not JSON (set by the parse step)
    invalid_data   JSON whose structure does not match the kubelet's types (parse step)
    file           a file:// source could not be read
"""

from __future__ import annotations

from typing import Protocol


class FetchError(Exception):
    """A kubelet endpoint could not be read. ``str(err)`` is a human message (never a token)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SummarySource(Protocol):
    """Something that returns the raw bytes of one kubelet's ``/stats/summary``."""

    def fetch_summary(self) -> bytes: ...
