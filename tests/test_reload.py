"""Rules reload: content changes, ConfigMap symlink swaps, broken files, SIGHUP, the poll thread."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adapter.config import ConfigError, load_config
from adapter.reload import RulesReloader
from adapter.resources import BuiltinResourceCatalog
from adapter.rules import CompiledConfig, compile_config

GOOD = """
rules:
- seriesQuery: '{namespace!=""}'
  resources: {template: <<.Resource>>}
  name: {matches: ^(.*)_total$, as: "${1}_per_second"}
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)
"""
GOOD_RENAMED = GOOD.replace("_per_second", "_rate")
# Three problems: an unknown key, a regex Go rejects, a missing metricsQuery.
BROKEN = """
rules:
- seriesQuery: '{namespace!=""}'
  resources: {template: <<.Resource>>}
  name: {matches: "^(.*_total$"}
  metricQuery: typo
"""


def compile_rules(text: str, source_name: str) -> CompiledConfig:
    return compile_config(load_config(text, source_name), BuiltinResourceCatalog())


class Applied:
    """Records what on_change received."""

    def __init__(self) -> None:
        self.configs: list[CompiledConfig] = []

    def __call__(self, config: CompiledConfig) -> None:
        self.configs.append(config)

    @property
    def last_as(self) -> str:
        return self.configs[-1].rules[0].name_as


def make(
    path: Path, clock: Callable[[], float] = time.time
) -> tuple[RulesReloader[CompiledConfig], Applied]:
    applied = Applied()
    return RulesReloader(path, compile_rules, applied, clock=clock), applied


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(GOOD, encoding="utf-8")
    return path


def test_load_then_reload_on_content_change_only(rules_file: Path) -> None:
    reloader, applied = make(rules_file, clock=lambda: 42.0)
    reloader.load()
    assert (reloader.generation, reloader.loaded_at, applied.last_as) == (
        1,
        42.0,
        "${1}_per_second",
    )
    assert reloader.check() is False  # nothing changed

    stat = rules_file.stat()
    os.utime(rules_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # touch
    assert reloader.check() is False
    assert reloader.generation == 1

    rules_file.write_text(GOOD_RENAMED, encoding="utf-8")
    assert reloader.check() is True
    assert (reloader.generation, applied.last_as, len(applied.configs)) == (2, "${1}_rate", 2)
    assert reloader.current is applied.configs[-1]
    assert reloader.last_error is None


def test_broken_file_keeps_the_last_good_rules_and_reports_every_problem(
    rules_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reloader, applied = make(rules_file, clock=lambda: 7.0)
    good = reloader.load()
    rules_file.write_text(BROKEN, encoding="utf-8")

    with caplog.at_level(logging.ERROR, logger="adapter.reload"):
        assert reloader.check() is False

    assert reloader.current is good
    assert (reloader.generation, len(applied.configs)) == (1, 1)
    failure = reloader.last_error
    assert failure is not None
    assert failure.at == 7.0
    assert len(failure.problems) == 3
    for fragment in ("metricQuery", "rules[0].name.matches", "metricsQuery"):
        assert any(fragment in problem for problem in failure.problems), fragment
        assert fragment in caplog.text
    assert str(rules_file) in failure.message
    # The same bad bytes are not reported again on every poll.
    caplog.clear()
    os.utime(rules_file)
    assert reloader.check() is False
    assert caplog.text == ""

    rules_file.write_text(GOOD_RENAMED, encoding="utf-8")
    assert reloader.check() is True
    assert (reloader.generation, reloader.last_error, applied.last_as) == (2, None, "${1}_rate")


def test_first_load_of_a_broken_file_raises(rules_file: Path) -> None:
    rules_file.write_text(BROKEN, encoding="utf-8")
    reloader, applied = make(rules_file)
    with pytest.raises(ConfigError) as caught:
        reloader.load()
    assert len(caught.value.problems) == 3
    assert applied.configs == []
    with pytest.raises(RuntimeError, match="not been loaded"):
        _ = reloader.current


def configmap_volume(root: Path, text: str) -> Path:
    """The layout the kubelet writes: config.yaml -> ..data/config.yaml, ..data -> ..<ts>."""
    root.mkdir()
    (root / "..2026_01_01_00_00_00.1").mkdir()
    (root / "..2026_01_01_00_00_00.1" / "config.yaml").write_text(text, encoding="utf-8")
    (root / "..data").symlink_to("..2026_01_01_00_00_00.1")
    (root / "config.yaml").symlink_to("..data/config.yaml")
    return root / "config.yaml"


def swap_configmap(root: Path, text: str) -> None:
    new = root / "..2026_01_01_00_01_00.2"
    new.mkdir()
    target = new / "config.yaml"
    target.write_text(text, encoding="utf-8")
    old = root / "..2026_01_01_00_00_00.1" / "config.yaml"
    # Same size and times as the old file: only the resolved path and the content differ.
    stat = old.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (root / "..data_tmp").symlink_to(new.name)
    os.replace(root / "..data_tmp", root / "..data")


def test_configmap_symlink_swap_is_seen(tmp_path: Path) -> None:
    path = configmap_volume(tmp_path / "volume", GOOD)
    reloader, applied = make(path)
    reloader.load()
    assert len(GOOD_RENAMED) != len(GOOD)
    swap_configmap(tmp_path / "volume", GOOD.replace("[2m]", "[3m]"))  # same length
    assert reloader.check() is True
    assert "[3m]" in applied.configs[-1].rules[0].metrics_query.text


def test_missing_file_is_reported_and_recovers(rules_file: Path) -> None:
    reloader, _ = make(rules_file)
    reloader.load()
    backup = rules_file.read_text(encoding="utf-8")
    rules_file.unlink()
    assert reloader.check() is False
    assert reloader.last_error is not None
    assert "cannot read" in reloader.last_error.message
    rules_file.write_text(backup, encoding="utf-8")
    assert reloader.check() is False  # same content as the rules in force
    assert reloader.generation == 1
    assert reloader.last_error is None, "the error clears once the file is back"


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def running(rules_file: Path) -> Iterator[tuple[RulesReloader[CompiledConfig], Applied]]:
    reloader, applied = make(rules_file)
    reloader.load()
    yield reloader, applied
    reloader.stop()
    reloader.uninstall_sighup_handler()


def test_poll_thread_picks_up_changes(
    rules_file: Path, running: tuple[RulesReloader[CompiledConfig], Applied]
) -> None:
    reloader, applied = running
    reloader.start(poll_interval=0.02)
    with pytest.raises(RuntimeError, match="already running"):
        reloader.start()
    rules_file.write_text(GOOD_RENAMED, encoding="utf-8")
    wait_for(lambda: reloader.generation == 2, "the poll to reload")
    assert applied.last_as == "${1}_rate"


def test_sighup_forces_a_reload(running: tuple[RulesReloader[CompiledConfig], Applied]) -> None:
    reloader, applied = running
    before = signal.getsignal(signal.SIGHUP)
    reloader.install_sighup_handler()
    reloader.start(poll_interval=60.0)  # only the signal can make it reload within the test
    os.kill(os.getpid(), signal.SIGHUP)
    wait_for(lambda: reloader.generation == 2, "the SIGHUP reload")
    assert len(applied.configs) == 2  # same content, reloaded because it was asked for
    reloader.stop()
    reloader.uninstall_sighup_handler()
    assert signal.getsignal(signal.SIGHUP) == before


def test_poll_interval_must_be_positive(
    running: tuple[RulesReloader[CompiledConfig], Applied],
) -> None:
    reloader, _ = running
    with pytest.raises(ValueError, match="must be positive"):
        reloader.start(poll_interval=0)
