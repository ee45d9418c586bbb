"""Faults: what clients see while Prometheus or the API server misbehaves, and how fast the
adapter recovers.

One lean stack per module (``tests.scale_stack``): the real adapter process (gunicorn, TLS,
default rules) behind the stand-in aggregator's front-proxy identity, a real Prometheus
reached through a fault proxy, and the stand-in kube-apiserver. For each fault the test checks
the ``Status`` (code, reason, a message that says what is wrong) of an HPA request and of
``kubectl top pod -A``'s request, that ``/healthz`` stays 200 (the process is not restarted by
its liveness probe) and that ``/readyz`` says why it is not ready, then measures the time from
the fault's end to the first complete answer. The rows are printed (``pytest -s``) and are the
source of docs/faults.md.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from demo.stack import StackError
from tests.scale_stack import ScaleOptions, ScaleStack

WEB_PODS = 10
RECOVERY_TIMEOUT_SECONDS = 60.0
PROMETHEUS_TIMEOUT_SECONDS = 2.0
TOP_PATH = "/apis/metrics.k8s.io/v1beta1/pods"


@pytest.fixture(scope="module")
def stack(prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleStack]:
    options = ScaleOptions(
        workdir=tmp_path_factory.mktemp("faults"),
        prometheus_binary=prometheus_binary,
        web_replicas=WEB_PODS,
        other_pods=40,
        scrape_interval=2,
        prometheus_timeout=f"{PROMETHEUS_TIMEOUT_SECONDS:.0f}s",
        relist_interval="2s",
    )
    scale = ScaleStack(options)
    try:
        scale.start()
    except StackError as err:
        pytest.fail(f"the fault stack did not start: {err}")
    try:
        yield scale
    finally:
        scale.stop()


@dataclass(frozen=True)
class Seen:
    code: int
    reason: str
    message: str
    seconds: float


def observe(session: requests.Session, url: str) -> Seen:
    began = time.monotonic()
    response = session.get(url, timeout=30)
    seconds = time.monotonic() - began
    body = response.json()
    return Seen(response.status_code, body.get("reason", ""), body.get("message", ""), seconds)


def hpa_complete(stack: ScaleStack, session: requests.Session) -> bool:
    try:
        response = session.get(stack.adapter_url + stack.hpa_path(), timeout=10)
    except requests.RequestException:
        return False
    return response.status_code == 200 and len(response.json()["items"]) == WEB_PODS


def seconds_until(
    condition: Callable[[], bool], timeout: float = RECOVERY_TIMEOUT_SECONDS
) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if condition():
            return time.monotonic() - began
        time.sleep(0.05)
    pytest.fail(f"not recovered within {timeout:.0f}s")


def report(fault: str, hpa: Seen, top: Seen, ready: str, recovery: float) -> None:
    print(
        f"\n| {fault} | {hpa.code} {hpa.reason} ({hpa.seconds:.2f}s): {hpa.message[:160]} | "
        f"{top.code} {top.reason} | 200 | {ready} | {recovery:.2f}s |"
    )


@dataclass(frozen=True)
class PrometheusFault:
    id: str
    begin: Callable[[ScaleStack], None]
    end: Callable[[ScaleStack], None]
    code: int
    reason: str
    message: str  # a fragment the client's message must contain


def _proxy(mode: str, delay: float = 0.0) -> Callable[[ScaleStack], None]:
    return lambda stack: stack.proxy.set(mode, delay)


PROMETHEUS_FAULTS = [
    PrometheusFault(
        "prometheus-stopped",
        ScaleStack.stop_prometheus,
        ScaleStack.start_prometheus,
        503,
        "ServiceUnavailable",
        "Prometheus is unavailable",
    ),
    PrometheusFault(
        "slower-than-timeout",
        _proxy("slow", PROMETHEUS_TIMEOUT_SECONDS * 2),
        _proxy("pass"),
        503,
        "ServiceUnavailable",
        "Prometheus is unavailable",
    ),
    PrometheusFault(
        "http-503",
        _proxy("error"),
        _proxy("pass"),
        503,
        "ServiceUnavailable",
        "stand-in: storage unavailable",
    ),
    PrometheusFault(
        "malformed-json",
        _proxy("malformed"),
        _proxy("pass"),
        500,
        "InternalError",
        "response is not JSON",
    ),
    PrometheusFault(
        "matrix-not-vector",
        _proxy("matrix"),
        _proxy("pass"),
        500,
        "InternalError",
        "returned a matrix",
    ),
]


@pytest.mark.e2e
@pytest.mark.parametrize("fault", PROMETHEUS_FAULTS, ids=[f.id for f in PROMETHEUS_FAULTS])
def test_prometheus_fault(stack: ScaleStack, fault: PrometheusFault) -> None:
    session = stack.client()
    assert hpa_complete(stack, session), "the stack must be healthy before the fault"
    fault.begin(stack)
    try:
        hpa = observe(session, stack.adapter_url + stack.hpa_path())
        top = observe(session, stack.adapter_url + TOP_PATH)
        health = session.get(stack.adapter_url + "/healthz", timeout=10)
        ready = session.get(stack.adapter_url + "/readyz", timeout=30)
    finally:
        fault.end(stack)  # returns once Prometheus answers normally again
    recovery = seconds_until(lambda: hpa_complete(stack, session))
    for seen in (hpa, top):
        assert (seen.code, seen.reason) == (fault.code, fault.reason), seen
        assert fault.message in seen.message, seen
        # Never slower than the Prometheus timeout plus a margin: the HPA must not hang.
        assert seen.seconds < PROMETHEUS_TIMEOUT_SECONDS + 3.0, seen
    assert health.status_code == 200, health.text
    assert ready.status_code >= 500, ready.text
    assert "[-]prometheus failed" in ready.text, ready.text
    stack.check_running()
    report(fault.id, hpa, top, f"{ready.status_code} prometheus failed", recovery)


@pytest.mark.e2e
def test_api_server_watch_dropped_and_restored(stack: ScaleStack) -> None:
    session = stack.client()
    assert hpa_complete(stack, session)
    stack.drop_apiserver()
    try:
        time.sleep(2.0)  # watches drop, relists fail and back off
        hpa = observe(session, stack.adapter_url + stack.hpa_path())
        top = observe(session, stack.adapter_url + TOP_PATH)
        health = session.get(stack.adapter_url + "/healthz", timeout=10)
    finally:
        # Restored with fewer web replicas: the answer shows when the cache has resynced.
        began = time.monotonic()
        stack.restore_apiserver(stack.make_cluster(WEB_PODS - 4))

    def resynced() -> bool:
        response = session.get(stack.adapter_url + stack.hpa_path(), timeout=10)
        return response.status_code == 200 and len(response.json()["items"]) == WEB_PODS - 4

    recovery = time.monotonic() - began + seconds_until(resynced)
    try:
        # While the API server is away the last listed objects keep being served.
        assert (hpa.code, top.code) == (200, 200), (hpa, top)
        assert health.status_code == 200
        stack.check_running()
        report("apiserver-watch-dropped", hpa, top, "200 (cache kept)", recovery)
    finally:
        stack.drop_apiserver()
        stack.restore_apiserver(stack.make_cluster(WEB_PODS))
        seconds_until(lambda: hpa_complete(stack, session))


@pytest.mark.e2e
def wait_for_reload_result(
    stack: ScaleStack, session: requests.Session, *, successful: float, seconds: float = 15.0
) -> bool:
    """Whether the adapter's last rules reload reports ``successful`` (1 good, 0 rejected)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = session.get(stack.adapter_url + "/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            if family.name == "kubemetrics_adapter_rules_last_reload_successful" and any(
                sample.value == successful for sample in family.samples
            ):
                return True
        time.sleep(0.2)
    return False


def test_rules_file_replaced_with_a_broken_one_under_load(stack: ScaleStack) -> None:
    session = stack.client()
    good = stack.rules_file.read_text(encoding="utf-8")
    errors: list[str] = []
    answered = 0
    stop = threading.Event()

    def load() -> None:
        nonlocal answered
        client = stack.client()
        while not stop.is_set():
            for path in (stack.hpa_path(), TOP_PATH, "/apis/custom.metrics.k8s.io/v1beta2"):
                try:
                    response = client.get(stack.adapter_url + path, timeout=10)
                except requests.RequestException as err:
                    errors.append(f"{path}: {err}")
                    continue
                answered += 1
                if response.status_code != 200:
                    errors.append(f"{path}: {response.status_code} {response.text[:200]}")

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(1.0)
        stack.rules_file.write_text("rules:\n- seriesQuery: [unclosed\n  bogusKey: 1\n")
        # The worker re-reads the file (every 1 s here), rejects it and keeps the last good rules.
        assert wait_for_reload_result(stack, session, successful=0.0), "broken file not seen"
        time.sleep(1.0)  # keep the load on after the rejected reload
    finally:
        stop.set()
        worker.join(timeout=30)
        broken = stack.rules_file.read_text(encoding="utf-8")
        stack.rules_file.write_text(good, encoding="utf-8")
    assert answered > 0
    assert errors == [], errors[:5]
    assert hpa_complete(stack, session)
    assert wait_for_reload_result(stack, session, successful=1.0), "good file not reloaded"
    # A fresh start with the broken file refuses to serve and says where the problem is.
    broken_file = stack.options.workdir / "broken-rules.yaml"
    broken_file.write_text(broken, encoding="utf-8")
    started = subprocess.run(
        [
            sys.executable,
            "-m",
            "adapter.serve",
            "--config",
            str(broken_file),
            "--prometheus-url",
            stack.proxy.url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 2, started.stderr
    assert str(broken_file) in started.stderr, started.stderr
    ok = Seen(200, "", f"{answered} requests, 0 errors", 0.0)
    report("rules-file-broken-under-load", ok, ok, "200", 0.0)
    print(f"fresh start with the broken file: exit 2, {started.stderr.strip()[:200]}")
