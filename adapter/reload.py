"""Re-read the rules file when it changes or on SIGHUP; keep the last good rules otherwise.

prometheus-adapter reads its rules once (its issues #104, #678); charts roll the pod instead.
:class:`RulesReloader` polls the file and reloads when its *content* changes: a Kubernetes
ConfigMap volume updates by swapping a ``..data`` symlink, so the path is resolved and the
bytes hashed, rather than trusting the mtime of the link. ``SIGHUP`` forces a reload even when
the bytes are the same (useful after CRDs were added, since compiling consults the catalog).

A file that fails to load or compile is logged with every problem it has and recorded in
``last_error``; the rules in force stay as they were. The first :meth:`RulesReloader.load`
raises instead, so a broken file stops the program at startup.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Generic, TypeVar

from adapter.config import ConfigError

__all__ = ["DEFAULT_POLL_INTERVAL_SECONDS", "ReloadFailure", "RulesReloader"]

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL_SECONDS = 5.0
"""Well under the kubelet's ConfigMap sync period (about a minute), and cheap: one stat()."""

T = TypeVar("T")

_SignalHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

# (resolved path, inode, size, mtime_ns, ctime_ns): any change means "read and hash again".
_Stamp = tuple[str, int, int, int, int]


@dataclass(frozen=True)
class ReloadFailure:
    """Why the last reload did not take effect; ``problems`` lists each problem on its own."""

    at: float  # unix seconds
    message: str
    problems: tuple[str, ...]


class RulesReloader(Generic[T]):
    """Loads ``path`` with ``load_and_compile(text, source_name)`` and calls ``on_change`` with
    each new good result.

    ``generation`` counts successful loads (1 after :meth:`load`), ``loaded_at`` is when the
    rules in force were loaded, ``current`` is those rules.
    """

    def __init__(
        self,
        path: str | Path,
        load_and_compile: Callable[[str, str], T],
        on_change: Callable[[T], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._path = Path(path)
        self._load_and_compile = load_and_compile
        self._on_change = on_change
        self._clock = clock
        self._lock = threading.Lock()  # one reload at a time (poll thread, SIGHUP, callers)
        self._current: T | None = None
        self._digest: str | None = None  # of the last bytes tried, good or bad
        self._good_digest: str | None = None  # of the bytes the rules in force came from
        self._stamp: _Stamp | None = None
        self.generation = 0
        self.loaded_at: float | None = None
        self.last_error: ReloadFailure | None = None
        self._hangup = threading.Event()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._sighup_installed = False
        self._previous_handler: _SignalHandler = None

    @property
    def path(self) -> Path:
        return self._path

    @property
    def current(self) -> T:
        if self._current is None:
            raise RuntimeError("the rules have not been loaded yet; call load() first")
        return self._current

    # -- loading ----------------------------------------------------------------------------------

    def _stat(self) -> _Stamp:
        resolved = os.path.realpath(self._path)
        info = os.stat(resolved)
        return (resolved, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)

    def _read(self) -> tuple[_Stamp, bytes]:
        # stat before reading: if the file changes in between, the next poll sees a new stamp.
        stamp = self._stat()
        return stamp, Path(stamp[0]).read_bytes()

    def load(self) -> T:
        """The first load: raises ConfigError / OSError / UnicodeDecodeError on a bad file."""
        with self._lock:
            stamp, data = self._read()
            value = self._load_and_compile(data.decode("utf-8"), str(self._path))
            self._accept(stamp, data, value)
        self._on_change(value)
        return value

    def reload(self, *, force: bool = False) -> bool:
        """Load the file again if its content changed (always when ``force``).

        Returns True when new rules took effect. Never raises for a bad file: the failure is
        logged and kept in ``last_error``, and the rules in force stay.
        """
        with self._lock:
            try:
                stamp, data = self._read()
            except OSError as err:
                self._fail(f"cannot read {self._path}: {err}", ())
                return False
            digest = hashlib.sha256(data).hexdigest()
            if not force and digest == self._digest:
                self._stamp = stamp
                if digest == self._good_digest:
                    self.last_error = None  # e.g. the file is readable again, unchanged
                return False
            try:
                value = self._load_and_compile(data.decode("utf-8"), str(self._path))
            except ConfigError as err:
                self._fail(str(err), tuple(str(p) for p in err.problems))
                self._stamp, self._digest = stamp, digest  # do not retry the same bad bytes
                return False
            except UnicodeDecodeError as err:
                self._fail(f"{self._path} is not UTF-8: {err}", ())
                self._stamp, self._digest = stamp, digest
                return False
            except Exception as err:
                # The running server must outlive a loader bug; keep the trace in the log.
                log.exception("unexpected error while reloading %s", self._path)
                self._fail(f"unexpected error while loading {self._path}: {err!r}", ())
                return False
            self._accept(stamp, data, value)
        self._on_change(value)
        return True

    def check(self) -> bool:
        """One poll: reload if SIGHUP was received, or if the file's stat changed and its
        content with it. Returns True when new rules took effect."""
        if self._hangup.is_set():
            self._hangup.clear()
            log.info("SIGHUP received: reloading %s", self._path)
            return self.reload(force=True)
        try:
            stamp = self._stat()
        except OSError as err:
            with self._lock:
                self._fail(f"cannot read {self._path}: {err}", ())
            return False
        if stamp == self._stamp:
            return False
        return self.reload()

    def _accept(self, stamp: _Stamp, data: bytes, value: T) -> None:
        self._current = value
        self._stamp = stamp
        self._digest = self._good_digest = hashlib.sha256(data).hexdigest()
        self.generation += 1
        self.loaded_at = self._clock()
        self.last_error = None
        log.info("loaded rules from %s (generation %d)", self._path, self.generation)

    def _fail(self, message: str, problems: tuple[str, ...]) -> None:
        if self.last_error is not None and self.last_error.message == message:
            return  # already reported; a missing file would otherwise log every poll
        self.last_error = ReloadFailure(self._clock(), message, problems)
        log.error("keeping the rules loaded at generation %d: %s", self.generation, message)

    # -- SIGHUP and the poll thread ---------------------------------------------------------------

    def install_sighup_handler(self) -> None:
        """Make SIGHUP trigger a forced reload (main thread only, as Python requires).

        The handler only sets a flag; the poll thread (or the next :meth:`check`) reloads, so
        no file IO or lock runs inside a signal handler.
        """
        self._previous_handler = signal.signal(signal.SIGHUP, self._on_sighup)
        self._sighup_installed = True

    def uninstall_sighup_handler(self) -> None:
        """Put back the SIGHUP handler that was there before install_sighup_handler()."""
        if self._sighup_installed:
            previous = self._previous_handler
            signal.signal(signal.SIGHUP, signal.SIG_DFL if previous is None else previous)
            self._sighup_installed = False

    def _on_sighup(self, _signum: int, _frame: FrameType | None) -> None:
        self._hangup.set()
        self._wake.set()

    def start(self, poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS) -> None:
        """Poll every ``poll_interval`` seconds (and at once on SIGHUP) until stop()."""
        if poll_interval <= 0:
            raise ValueError(f"poll interval must be positive, got {poll_interval}")
        if self._thread is not None:
            raise RuntimeError("the rules reloader is already running")
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, args=(poll_interval,), name="rules-reloader", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        thread.join(timeout)
        self._thread = None

    def _run(self, poll_interval: float) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                self.check()
            except Exception:
                # on_change belongs to the caller; its failure must not end reloading.
                log.exception("applying reloaded rules from %s failed", self._path)
            self._wake.wait(poll_interval)
