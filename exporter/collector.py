"""Background collection: fetch every kubelet once per interval, serve the last complete round.

A ``Collector`` round asks its ``TargetSource`` which kubelets to read, fetches each one's
``/stats/summary`` and ``/pods`` on a bounded thread pool (every request bounded by the source's
own timeout, so a hanging kubelet costs one worker for at most that long and never delays the
others beyond it), parses them, builds the metric families and renders the text exposition once.
The finished ``Snapshot`` replaces the previous one in a single assignment, so ``/metrics`` always
serves one complete round, and any number of scrapers cost one fetch per node per interval.

The only state kept between rounds: failure counts by (node, reason), each node's last failure
reason (to log a change once instead of every round), and the node names learned from Summaries.
Nodes that are no longer targets lose all three, so their series disappear.

Exceptions: none of its own. ``FetchError``, ``SummaryParseError`` and ``PodListParseError`` are
caught here, at the edge, and become data; ``/pods`` failures get the reason ``pods_<reason>``.
"""

from __future__ import annotations

import gzip
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, NamedTuple, Protocol

from exporter.collect import collect
from exporter.exposition import MetricFamily, render_openmetrics, render_text
from exporter.metrics import METRICS, MetricDef
from exporter.model import CollectionRound, NodeResult, ScrapeFailure, Summary
from exporter.parse import SummaryParseError, parse_summary
from exporter.pods import Pod, PodListParseError, parse_pod_list
from exporter.source import FetchError, SummarySource

__all__ = [
    "Collector",
    "PodsSource",
    "Snapshot",
    "Target",
    "TargetList",
    "TargetSource",
]

logger = logging.getLogger(__name__)

# Below this size gzip costs more than it saves.
_GZIP_MIN_BYTES = 1024
# Extra seconds a round waits beyond the sources' own timeouts before it gives up on a fetch.
_ROUND_SLACK_SECONDS = 5.0


class PodsSource(Protocol):
    """Something that returns the raw bytes of one kubelet's ``/pods``."""

    def fetch_pods(self) -> bytes: ...


class Target(NamedTuple):
    """One kubelet to read. ``node`` labels its self metrics; with ``name_from_summary`` it is a
    stand-in (a URL host or file name) replaced by the Summary's ``nodeName`` once one was read.
    ``pods`` is ``None`` when the source has no ``/pods`` (a saved payload)."""

    node: str
    summary: SummarySource
    pods: PodsSource | None = None
    name_from_summary: bool = False


class TargetList(NamedTuple):
    """What one round reads. ``problems`` are nodes that could not become targets (no usable
    address, ...): each becomes a failed scrape with ``reason``. ``nodes``, ``cluster_wide`` and
    ``node_list_errors`` feed the exporter's collection metrics (see ``CollectionRound``)."""

    targets: tuple[Target, ...]
    problems: tuple[tuple[str, ScrapeFailure], ...] = ()
    cluster_wide: bool = False
    nodes: int | None = None
    node_list_errors: int = 0


class TargetSource(Protocol):
    def current(self) -> TargetList: ...


class Snapshot:
    """One round's exposition: the text format rendered once; OpenMetrics and gzip variants
    rendered on first request and kept, so every scraper of the round shares them."""

    def __init__(self, families: Sequence[MetricFamily], finished_at: float) -> None:
        self.finished_at = finished_at
        self._families = families
        self._lock = threading.Lock()
        self._bodies: dict[tuple[bool, bool], bytes] = {
            (False, False): render_text(families).encode("utf-8")
        }

    def body(self, *, openmetrics: bool, gzip_accepted: bool) -> tuple[bytes, bool]:
        """The exposition, and whether it is gzip-compressed (only when accepted and worth it)."""
        with self._lock:
            plain = self._bodies.get((openmetrics, False))
            if plain is None:
                plain = render_openmetrics(self._families).encode("utf-8")
                self._bodies[(openmetrics, False)] = plain
            if not gzip_accepted or len(plain) < _GZIP_MIN_BYTES:
                return plain, False
            compressed = self._bodies.get((openmetrics, True))
            if compressed is None:
                compressed = gzip.compress(plain, compresslevel=1)
                self._bodies[(openmetrics, True)] = compressed
            return compressed, True


class _Fetched(NamedTuple):
    summary: Summary | None
    failure: ScrapeFailure | None
    duration_seconds: float
    finished_at: float


class _PodsFetched(NamedTuple):
    pods: tuple[Pod, ...] | None
    failure: ScrapeFailure | None


class Collector:
    """Collects every target once per ``interval_seconds`` on a background thread.

    ``collect_round`` runs one round synchronously (tests call it directly); ``start`` runs
    rounds on a thread until ``stop``. ``timeout_seconds`` is the sources' per-request bound,
    used only to size the round's safety net. ``clock`` is monotonic, ``wall_clock`` Unix time.
    """

    def __init__(
        self,
        targets: TargetSource,
        *,
        interval_seconds: float,
        timeout_seconds: float,
        max_concurrent_scrapes: int,
        table: Sequence[MetricDef[Any]] = METRICS,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._targets = targets
        self._interval = interval_seconds
        self._timeout = timeout_seconds
        self._workers = max_concurrent_scrapes
        self._table = table
        self._clock = clock
        self._wall_clock = wall_clock
        self._pool = ThreadPoolExecutor(max_concurrent_scrapes, thread_name_prefix="kubelet")
        self._snapshot: Snapshot | None = None
        self._errors: Counter[tuple[str, str]] = Counter()
        self._last_failure: dict[str, tuple[str | None, str | None]] = {}
        self._seen_names: dict[str, str] = {}
        self._round_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def snapshot(self) -> Snapshot | None:
        """The last complete round, or ``None`` before the first one finished."""
        return self._snapshot

    @property
    def ready(self) -> bool:
        return self._snapshot is not None

    def collect_round(self) -> Snapshot:
        with self._round_lock:
            started = self._clock()
            target_list = self._targets.current()
            results = self._fetch_all(target_list.targets)
            results += [
                NodeResult(node, None, failure, 0.0) for node, failure in target_list.problems
            ]
            self._account(results)
            collection = CollectionRound(
                finished_at=self._wall_clock(),
                duration_seconds=self._clock() - started,
                cluster_wide=target_list.cluster_wide,
                nodes=target_list.nodes,
                node_list_errors=target_list.node_list_errors,
            )
            families = collect(results, dict(self._errors), self._table, collection)
            snapshot = Snapshot(families, collection.finished_at)
            self._snapshot = snapshot
            return snapshot

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the collector was already started")
        self._thread = threading.Thread(target=self._run, name="collector", daemon=True)
        self._thread.start()

    def stop(self, timeout_seconds: float = 5.0) -> None:
        """Ends the background loop after the current round; fetches still queued are dropped."""
        self._stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._thread is not None:
            self._thread.join(timeout_seconds)

    def _run(self) -> None:
        while not self._stopping.is_set():
            started = self._clock()
            try:
                self.collect_round()
            except RuntimeError as err:
                if self._stopping.is_set():  # the pool was shut down under a running round
                    return
                logger.exception("collection round failed: %s", err)
            except Exception:
                # The loop is the edge of the collector: a bug in one round must not end
                # collection for the life of the process.
                logger.exception("collection round failed")
            self._stopping.wait(max(0.0, self._interval - (self._clock() - started)))

    def _fetch_all(self, targets: Sequence[Target]) -> list[NodeResult]:
        summaries: list[Future[_Fetched]] = []
        pods: list[Future[_PodsFetched] | None] = []
        for target in targets:
            summaries.append(self._pool.submit(self._fetch_summary, target.summary))
            pods_source = target.pods
            pods.append(
                None if pods_source is None else self._pool.submit(self._fetch_pods, pods_source)
            )
        every: list[Future[Any]] = [*summaries, *(future for future in pods if future is not None)]
        # Sources bound each request by the timeout; this only guards against one that does not
        # (a hung file system): waves of ``workers`` requests, each at most one timeout long.
        waves = math.ceil(len(every) / self._workers) if every else 0
        started = self._clock()
        wait(every, timeout=waves * self._timeout + _ROUND_SLACK_SECONDS)
        waited = self._clock() - started
        results = []
        for target, summary_future, pods_future in zip(targets, summaries, pods, strict=True):
            fetched = self._outcome(summary_future, waited)
            pods_fetched = None if pods_future is None else self._pods_outcome(pods_future)
            node = target.node
            if target.name_from_summary:
                if fetched.summary is not None:
                    self._seen_names[target.node] = fetched.summary.node.name
                node = self._seen_names.get(target.node, target.node)
            results.append(
                NodeResult(
                    node=node,
                    summary=fetched.summary,
                    failure=fetched.failure,
                    duration_seconds=fetched.duration_seconds,
                    pods=None if pods_fetched is None else pods_fetched.pods,
                    pods_failure=None if pods_fetched is None else pods_fetched.failure,
                    scraped_at=fetched.finished_at,
                )
            )
        return results

    def _fetch_summary(self, source: SummarySource) -> _Fetched:
        started = self._clock()
        try:
            summary = parse_summary(source.fetch_summary())
        except (FetchError, SummaryParseError) as err:
            failure = ScrapeFailure(err.reason, str(err))
            return _Fetched(None, failure, self._clock() - started, self._wall_clock())
        return _Fetched(summary, None, self._clock() - started, self._wall_clock())

    def _fetch_pods(self, source: PodsSource) -> _PodsFetched:
        try:
            return _PodsFetched(parse_pod_list(source.fetch_pods()), None)
        except (FetchError, PodListParseError) as err:
            return _PodsFetched(None, ScrapeFailure(f"pods_{err.reason}", f"/pods: {err}"))

    def _outcome(self, future: Future[_Fetched], waited: float) -> _Fetched:
        if future.done() and not future.cancelled():
            return future.result()
        future.cancel()
        failure = ScrapeFailure("timeout", "the Summary fetch did not finish within the round")
        return _Fetched(None, failure, waited, self._wall_clock())

    def _pods_outcome(self, future: Future[_PodsFetched]) -> _PodsFetched:
        if future.done() and not future.cancelled():
            return future.result()
        future.cancel()
        return _PodsFetched(
            None, ScrapeFailure("pods_timeout", "the /pods fetch did not finish within the round")
        )

    def _account(self, results: Sequence[NodeResult]) -> None:
        """Counts failures, logs changes of a node's state once, forgets departed nodes."""
        current = {result.node for result in results}
        for key in [key for key in self._errors if key[0] not in current]:
            del self._errors[key]
        for node in [node for node in self._last_failure if node not in current]:
            del self._last_failure[node]
        for result in results:
            for failure in (result.failure, result.pods_failure):
                if failure is not None:
                    self._errors[(result.node, failure.reason)] += 1
            state = (
                None if result.failure is None else result.failure.reason,
                None if result.pods_failure is None else result.pods_failure.reason,
            )
            previous = self._last_failure.get(result.node, (None, None))
            self._last_failure[result.node] = state
            self._log_change(result, previous, state)

    def _log_change(
        self,
        result: NodeResult,
        previous: tuple[str | None, str | None],
        state: tuple[str | None, str | None],
    ) -> None:
        for failure, before, now, what in (
            (result.failure, previous[0], state[0], "Summary"),
            (result.pods_failure, previous[1], state[1], "/pods"),
        ):
            if failure is not None and now != before:
                logger.warning(
                    "reading the %s of node %s failed (%s): %s",
                    what,
                    result.node,
                    failure.reason,
                    failure.message,
                )
            elif failure is not None:
                logger.debug("node %s %s still failing (%s)", result.node, what, failure.reason)
            elif before is not None:
                logger.info("reading the %s of node %s works again", what, result.node)
