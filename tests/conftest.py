"""Shared test fixtures: golden files, real-tool discovery, fixture payload paths."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from adapter.resources import BuiltinResourceCatalog, ResourceInfo

TESTS_DIR = Path(__file__).resolve().parent
FIXTURES_DIR = TESTS_DIR / "fixtures"
KUBELET_FIXTURES = FIXTURES_DIR / "kubelet"
GOLDEN_DIR = TESTS_DIR / "golden"
REPO_ROOT = TESTS_DIR.parent


# The RESTMapper of prometheus-adapter's series_registry_test.go: ingresses and deployments exist
# only in the extensions group there. Upstream's expected queries and metric lists assume it.
UPSTREAM_TEST_CATALOG = BuiltinResourceCatalog(
    [
        ResourceInfo("", "pods", "pod", "Pod", True),
        ResourceInfo("", "services", "service", "Service", True),
        ResourceInfo("extensions", "ingresses", "ingress", "Ingress", True),
        ResourceInfo("extensions", "deployments", "deployment", "Deployment", True),
        ResourceInfo("", "nodes", "node", "Node", False),
        ResourceInfo("", "persistentvolumes", "persistentvolume", "PersistentVolume", False),
        ResourceInfo("", "namespaces", "namespace", "Namespace", False),
    ]
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden files from the current output instead of comparing",
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """Compare text against tests/golden/<name>, or rewrite it with --update-golden."""
    update = bool(request.config.getoption("--update-golden"))

    def check(name: str, actual: str) -> None:
        path = GOLDEN_DIR / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
            return
        if not path.exists():
            pytest.fail(f"golden file {path} is missing; run `make golden` and review the diff")
        expected = path.read_text(encoding="utf-8")
        assert actual == expected, f"output differs from golden {path}; `make golden` rewrites it"

    return check


def require_tool(name: str) -> str:
    """Path of a real external tool. Missing: skip locally, fail loudly in CI."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("KUBEMETRICS_REQUIRE_REAL_TOOLS") or os.environ.get("CI"):
            pytest.fail(f"required tool {name!r} is not installed (CI must install it)")
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return require_tool("prometheus")


@pytest.fixture(scope="session")
def kubectl_binary() -> str:
    return require_tool("kubectl")


def kubelet_fixture_paths(prefix: str) -> list[Path]:
    return sorted(KUBELET_FIXTURES.glob(f"{prefix}-*.json"))


# The real-Prometheus launcher is shared by every test module that needs one.
pytest_plugins = ["tests.prometheus_server"]
