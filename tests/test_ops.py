"""The ops endpoints on their own: /readyz codes and report lines for given readiness checks."""

from __future__ import annotations

import pytest
from flask import Flask

from adapter.ops import Operations, ReadinessCheck, ops_blueprint


def ops_app(checks: tuple[ReadinessCheck, ...]) -> Flask:
    app = Flask(__name__)
    app.register_blueprint(ops_blueprint(Operations(readiness_checks=checks), lambda _path: {}))
    return app


def passing() -> str | None:
    return None


def prometheus_down() -> str | None:
    return "prometheus: connection refused"


@pytest.mark.parametrize(
    ("checks", "query", "status", "body"),
    [
        ((("caches", passing),), "", 200, "ok"),
        (
            (("caches", passing),),
            "?verbose",
            200,
            "[+]caches ok\nreadyz check passed\n",
        ),
        (
            (("caches", passing), ("prometheus", prometheus_down)),
            "",
            503,
            "[+]caches ok\n[-]prometheus failed: prometheus: connection refused\n"
            "readyz check failed\n",
        ),
    ],
    ids=["ready", "ready_verbose", "prometheus_down_is_503"],
)
def test_readyz(checks: tuple[ReadinessCheck, ...], query: str, status: int, body: str) -> None:
    response = ops_app(checks).test_client().get("/readyz" + query)
    assert (response.status_code, response.text) == (status, body)


@pytest.mark.parametrize("path", ["/healthz", "/livez"], ids=str)
def test_liveness_ignores_readiness(path: str) -> None:
    response = ops_app((("prometheus", prometheus_down),)).test_client().get(path)
    assert (response.status_code, response.text) == (200, "ok")
