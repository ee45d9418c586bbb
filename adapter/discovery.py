"""Metric discovery whose cost grows with distinct (metric name, resource label) pairs.

prometheus-adapter asks ``/api/v1/series`` for every ``seriesQuery`` and keeps every series with
all its labels; on big clusters that is gigabytes (its issues #221, #63). Discovery only needs to
know which metric names exist and which *resource* labels they carry, so for each distinct
``seriesQuery`` Q it asks Prometheus for names and label names, never for series:

1. ``GET /api/v1/labels?match[]=Q`` → the label names of Q's series; keep those that some custom
   rule sharing Q maps to a resource (overrides, then the template through the catalog);
2. ``GET /api/v1/label/__name__/values?match[]=Q`` → every metric name of Q;
3. for each kept label L, ``GET /api/v1/label/__name__/values?match[]=Q'`` where Q' is Q with
   ``L!=""`` added (:func:`add_label_matcher`) → the names whose series carry L.

All three take ``start = now - max age`` and ``end = now``. External-only queries need step 2 only.
The answers become a :class:`~adapter.registry.SeriesQueryResult` per query, and
:func:`~adapter.registry.build_registry` applies the rules (filters, naming, association) to them.

:class:`MetricDiscovery` is the IO shell: it refreshes every ``relist_interval`` in a background
thread that :meth:`MetricDiscovery.stop` ends, keeps the previous result of a query that fails
(the other queries still refresh), and reports the last success time and per-query errors.

Exception tree::

    SelectorRewriteError (ValueError)   a seriesQuery is not a plain series selector, so a
                                        matcher cannot be added; says where
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

from adapter.prometheus import PrometheusError
from adapter.registry import MetricRegistry, SeriesQueryResult, build_registry
from adapter.rules import CompiledConfig, CompiledRule

__all__ = [
    "DEFAULT_RELIST_INTERVAL",
    "DiscoverySettings",
    "LabelSource",
    "MetricDiscovery",
    "QueryStatus",
    "SelectorRewriteError",
    "add_label_matcher",
    "fetch_series_query",
    "require_label",
    "resource_label_candidates",
]

log = logging.getLogger(__name__)

DEFAULT_RELIST_INTERVAL: Final = timedelta(minutes=1)
"""The Helm chart's and kube-prometheus' ``--metrics-relist-interval`` (upstream's own is 10m)."""

_METRIC_NAME_RE: Final = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME_RE: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_QUOTES: Final = "\"'`"


class SelectorRewriteError(ValueError):
    """A ``seriesQuery`` is not a plain series selector (``name``, ``{...}``, ``name{...}``)."""


# --- the selector rewriter (pure) ---------------------------------------------------------------


def _skip_string(text: str, start: int) -> int:
    """Index after the PromQL string literal opening at ``text[start]``."""
    quote = text[start]
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and quote != "`":  # raw `strings` have no escapes
            i += 2
            continue
        if char == quote:
            return i + 1
        i += 1
    raise SelectorRewriteError(f"{text!r}: unterminated string starting at offset {start}")


def _closing_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing the ``{`` at ``text[start]``."""
    i = start + 1
    while i < len(text):
        char = text[i]
        if char in _QUOTES:
            i = _skip_string(text, i)
            continue
        if char == "}":
            return i
        if char == "{":
            raise SelectorRewriteError(f"{text!r}: unexpected '{{' at offset {i}")
        i += 1
    raise SelectorRewriteError(f"{text!r}: missing '}}' for the '{{' at offset {start}")


def add_label_matcher(selector: str, matcher: str) -> str:
    """``selector`` with ``matcher`` ANDed in: ``up`` → ``up{m}``, ``{a="b"}`` → ``{a="b",m}``.

    Accepts the series selectors a ``match[]`` takes: a metric name, ``{matchers}`` or
    ``name{matchers}``, with any spacing, quoted values holding ``}`` or ``,``, and a trailing
    comma. Anything else (operators, functions, ``offset``) raises SelectorRewriteError.
    """
    i = len(selector) - len(selector.lstrip())
    name_match = _METRIC_NAME_RE.match(selector, i)
    name_end = name_match.end() if name_match else i
    i = name_end
    while i < len(selector) and selector[i].isspace():
        i += 1
    if i == len(selector):
        if name_match is None:
            raise SelectorRewriteError(f"{selector!r}: empty series selector")
        return f"{selector[:name_end]}{{{matcher}}}"
    if selector[i] != "{":
        raise SelectorRewriteError(
            f"{selector!r}: expected '{{' at offset {i}, found {selector[i]!r}; a seriesQuery "
            'must be a series selector such as name{label="value"}, not an expression'
        )
    close = _closing_brace(selector, i)
    trailing = selector[close + 1 :]
    if trailing.strip():
        offset = close + 1 + (len(trailing) - len(trailing.lstrip()))
        raise SelectorRewriteError(
            f"{selector!r}: unexpected {trailing.strip()!r} at offset {offset} after the "
            "selector; a seriesQuery must be a plain series selector"
        )
    body = selector[i + 1 : close].rstrip()
    separator = "" if not body.strip() or body.endswith(",") else ","
    return f"{selector[: i + 1]}{body}{separator}{matcher}}}"


def require_label(selector: str, label: str) -> str:
    """``selector`` restricted to series that carry ``label`` (``label!=""``)."""
    if not _LABEL_NAME_RE.fullmatch(label):
        raise SelectorRewriteError(f"{label!r} is not a Prometheus label name")
    return add_label_matcher(selector, f'{label}!=""')


def resource_label_candidates(
    rules: Iterable[CompiledRule], label_names: Iterable[str]
) -> tuple[str, ...]:
    """The label names (sorted) that some custom rule in ``rules`` maps to a resource."""
    custom = [rule for rule in rules if not rule.is_external]
    return tuple(
        sorted(
            label
            for label in set(label_names)
            if label != "__name__"
            and _LABEL_NAME_RE.fullmatch(label)
            and any(rule.resource_for_label(label) is not None for rule in custom)
        )
    )


# --- fetching one seriesQuery ------------------------------------------------------------------


class LabelSource(Protocol):
    """The two metadata endpoints discovery uses (a ``PrometheusClient``, or a fake)."""

    def label_names(
        self, matchers: Sequence[str] = (), start: float | None = None, end: float | None = None
    ) -> list[str]: ...

    def label_values(
        self,
        label: str,
        matchers: Sequence[str] = (),
        start: float | None = None,
        end: float | None = None,
    ) -> list[str]: ...


def fetch_series_query(
    source: LabelSource,
    series_query: str,
    rules: Sequence[CompiledRule],
    *,
    start: float,
    end: float,
) -> SeriesQueryResult:
    """Ask ``source`` what ``series_query`` holds, for the ``rules`` sharing it.

    Raises PrometheusError from the source and SelectorRewriteError for a seriesQuery that is
    not a plain selector.
    """
    names = source.label_values("__name__", [series_query], start=start, end=end)
    found: dict[str, set[str]] = {name: set() for name in names}
    if any(not rule.is_external for rule in rules):
        present = source.label_names([series_query], start=start, end=end)
        for label in resource_label_candidates(rules, present):
            restricted = require_label(series_query, label)
            for name in source.label_values("__name__", [restricted], start=start, end=end):
                # A series may appear between the calls: keep its name rather than drop it.
                found.setdefault(name, set()).add(label)
    return SeriesQueryResult(
        series_query, {name: frozenset(labels) for name, labels in found.items()}, end
    )


# --- the refreshing shell ------------------------------------------------------------------------


@dataclass(frozen=True)
class DiscoverySettings:
    """``--metrics-relist-interval`` and ``--metrics-max-age`` (None: the interval)."""

    relist_interval: timedelta = DEFAULT_RELIST_INTERVAL
    max_age: timedelta | None = None

    @property
    def effective_max_age(self) -> timedelta:
        return self.max_age if self.max_age is not None else self.relist_interval

    def problems(self) -> list[str]:
        """Every problem with the settings (empty when usable)."""
        problems = []
        if self.relist_interval <= timedelta(0):
            problems.append(
                f"--metrics-relist-interval must be positive, got {self.relist_interval}"
            )
        if self.max_age is not None and self.max_age < self.relist_interval:
            # Series seen only between two relists would flicker in and out (upstream rule).
            problems.append(
                f"--metrics-max-age ({self.max_age}) must not be less than "
                f"--metrics-relist-interval ({self.relist_interval})"
            )
        return problems


@dataclass(frozen=True)
class QueryStatus:
    """How the last refresh of one seriesQuery went."""

    series_query: str
    last_attempt: float  # unix seconds
    duration_seconds: float
    error: str | None  # None when the last attempt succeeded
    last_success: float | None  # when the result in use was fetched; None: never
    names: int  # metric names in the result in use
    pairs: int  # (name, resource label) pairs in the result in use


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class MetricDiscovery:
    """Keeps a :class:`~adapter.registry.MetricRegistry` up to date from Prometheus.

    ``registry`` is always a complete snapshot (empty before the first refresh). Call
    :meth:`refresh` directly, or :meth:`start` a background thread that refreshes at once and
    then ``relist_interval`` after each refresh ends (as upstream's ``wait.Until``).
    """

    def __init__(
        self,
        source: LabelSource,
        config: CompiledConfig,
        settings: DiscoverySettings = DiscoverySettings(),
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        problems = settings.problems()
        if problems:
            raise ValueError("; ".join(problems))
        self._source = source
        self._settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._state_lock = threading.Lock()  # short: swaps of config, results and registry
        self._pass_lock = threading.Lock()  # one refresh pass at a time
        self._config = config
        self._results: dict[str, SeriesQueryResult] = {}
        self._statuses: dict[str, QueryStatus] = {}
        self._generation = 0
        self._registry = build_registry(config, {})
        self._last_success: float | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- reading ------------------------------------------------------------------------------

    @property
    def registry(self) -> MetricRegistry:
        return self._registry

    @property
    def settings(self) -> DiscoverySettings:
        return self._settings

    @property
    def last_success(self) -> datetime | None:
        """When a refresh last succeeded for every seriesQuery (None: never)."""
        return None if self._last_success is None else _utc(self._last_success)

    def query_statuses(self) -> dict[str, QueryStatus]:
        """The last attempt per seriesQuery of the current rules."""
        with self._state_lock:
            return dict(self._statuses)

    def errors(self) -> dict[str, str]:
        """seriesQuery → error of its last attempt, for the queries whose last attempt failed."""
        return {q: s.error for q, s in self.query_statuses().items() if s.error is not None}

    # -- changing -------------------------------------------------------------------------------

    def set_config(self, config: CompiledConfig) -> MetricRegistry:
        """Use new rules: rebuild the registry from the results at hand at once (so renames
        and filters apply immediately) and wake the thread to fetch new queries."""
        wanted = _series_queries(config)
        with self._state_lock:
            self._config = config
            self._results = {q: r for q, r in self._results.items() if q in wanted}
            self._statuses = {q: s for q, s in self._statuses.items() if q in wanted}
            registry = self._rebuild_locked(self._registry.refreshed_at)
        self._wake.set()
        return registry

    def refresh(self) -> MetricRegistry:
        """Fetch every distinct seriesQuery once and swap in the new registry.

        A query that fails keeps its previous result and records its error; when every query
        fails the registry is left as it was.
        """
        with self._pass_lock:
            with self._state_lock:
                config = self._config
            now = self._clock()
            start = now - self._settings.effective_max_age.total_seconds()
            fetched: dict[str, SeriesQueryResult] = {}
            statuses: dict[str, QueryStatus] = {}
            for query, rules in _series_queries(config).items():
                began = self._monotonic()
                error: str | None = None
                try:
                    fetched[query] = fetch_series_query(
                        self._source, query, rules, start=start, end=now
                    )
                except (PrometheusError, SelectorRewriteError) as err:
                    error = str(err)
                statuses[query] = QueryStatus(
                    query, now, self._monotonic() - began, error, None, 0, 0
                )
            return self._merge(config, now, fetched, statuses)

    def _merge(
        self,
        config: CompiledConfig,
        now: float,
        fetched: Mapping[str, SeriesQueryResult],
        statuses: Mapping[str, QueryStatus],
    ) -> MetricRegistry:
        with self._state_lock:
            if config is not self._config:
                # The rules changed during the pass: keep only what the new rules still ask.
                wanted = _series_queries(self._config)
                fetched = {q: r for q, r in fetched.items() if q in wanted}
                statuses = {q: s for q, s in statuses.items() if q in wanted}
            self._results.update(fetched)
            for query, status in statuses.items():
                kept = self._results.get(query)
                self._statuses[query] = QueryStatus(
                    status.series_query,
                    status.last_attempt,
                    status.duration_seconds,
                    status.error,
                    kept.fetched_at if kept else None,
                    len(kept.names) if kept else 0,
                    kept.pair_count if kept else 0,
                )
                if status.error is not None:
                    since = f"from {_utc(kept.fetched_at).isoformat()}" if kept else "(none yet)"
                    log.warning(
                        "discovery of seriesQuery %s failed; keeping the previous result %s: %s",
                        query,
                        since,
                        status.error,
                    )
            if statuses and all(s.error is None for s in statuses.values()):
                self._last_success = now
            if not fetched and statuses:
                return self._registry
            return self._rebuild_locked(_utc(now))

    def _rebuild_locked(self, refreshed_at: datetime | None) -> MetricRegistry:
        self._generation += 1
        self._registry = build_registry(
            self._config, self._results, generation=self._generation, refreshed_at=refreshed_at
        )
        return self._registry

    # -- the background thread -------------------------------------------------------------------

    def start(self) -> None:
        """Refresh now and then every ``relist_interval`` in a daemon thread until stop()."""
        if self._thread is not None:
            raise RuntimeError("discovery is already running")
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="metric-discovery", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread; a refresh in progress finishes its current request first."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        interval = self._settings.relist_interval.total_seconds()
        while not self._stopping:
            # Cleared before the pass, so a set_config() during it triggers the next one.
            self._wake.clear()
            try:
                self.refresh()
            except Exception:
                # A bug in one pass must not end discovery: the next pass may work.
                log.exception("metric discovery pass failed")
            self._wake.wait(interval)


def _series_queries(config: CompiledConfig) -> dict[str, tuple[CompiledRule, ...]]:
    """Distinct seriesQuery → every rule (custom and external) sharing it, in file order."""
    grouped: dict[str, list[CompiledRule]] = {}
    for rule in (*config.rules, *config.external_rules):
        grouped.setdefault(rule.series_query, []).append(rule)
    return {query: tuple(rules) for query, rules in grouped.items()}
