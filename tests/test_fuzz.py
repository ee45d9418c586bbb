"""Fuzzing the adapter's request handling: hostile names and selectors never cause a 5xx, and
every query sent to Prometheus keeps its structure in the REAL Prometheus.

The app is the real one (``create_app`` with the real providers, request parsing, planner, PromQL
building, object stores and the default rules in ``config/rules.yaml``); only Prometheus is a
recording fake, so every query the adapter would send is captured. Each captured query is then
given to a real Prometheus 2.42 (``/api/v1/format_query``, which parses without evaluating) and
what Prometheus understood is compared with what the request asked for:

- the query parses;
- outside the label matchers, its canonical form is the same as for a benign request on the same
  route, so no value added an ``or``, a function or a second selector;
- the matchers of the metric's selector are exactly the expected ones: the metric label
  selector's requirements, ``namespace="<namespace>"`` with the namespace byte for byte, and a
  ``pod`` matcher whose value is the name itself or a regex matching exactly the requested names.

Hypothesis generates namespaces, object names, metric names and selectors with quotes,
backslashes, newlines, unicode, regex metacharacters and very long values. Example counts are
bounded (``FUZZ_EXAMPLES``) so the module stays within CI's budget.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import requests
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from adapter.api import ApiSettings, create_app
from adapter.config import load_config_file
from adapter.kube_cache import ClusterObjects, DiscoveryResourceCatalog, KubeObject, ObjectStore
from adapter.prometheus import QueryResult, Sample, VectorResult
from adapter.providers import (
    CustomMetricsProvider,
    ExternalMetricsProvider,
    Providers,
    QueryRunner,
    ResourceMetricsProvider,
)
from adapter.registry import SeriesQueryResult, build_registry
from adapter.rules import compile_config
from tests.prometheus_server import PrometheusServer

NOW = 1714564805.0
RULES_FILE = Path(__file__).resolve().parent.parent / "config" / "rules.yaml"
FUZZ_EXAMPLES = 150
CPU_SERIES = "kubestats_container_cpu_usage_seconds_total"
MEMORY_SERIES = "kubestats_container_memory_working_set_bytes"
CUSTOM_METRIC = "container_cpu_usage_seconds_per_second"
EXTERNAL_METRIC = "node_cpu_usage_cores"
CM2 = "/apis/custom.metrics.k8s.io/v1beta2"
RM = "/apis/metrics.k8s.io/v1beta1"
EM = "/apis/external.metrics.k8s.io/v1beta1"

# --- strategies ---------------------------------------------------------------------------------

HOSTILE_CHARACTERS = st.sampled_from(
    [
        *"\"\\\n\r\t'`{}[]()|.*+?^$,=!~# ",
        *("\u00fc", "\u65e5", "\u200b", "\u2028", "\ufffd", "\U0001f600", "\x00", "\x7f", "%", "/"),
    ]
)
HOSTILE_PAYLOADS = st.sampled_from(
    [
        '"} or vector(1) #',
        '"}) or on() vector(1) or count({__name__=~".+"',
        "\\",
        '\\"',
        ".*",
        "a|b",
        "(?i)web",
        "${1}",
        "<<.Series>>",
        "{{ .LabelMatchers }}",
        "\n",
        "日本",
    ]
)


def hostile_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Short text mixing ordinary characters, hostile ones and known payloads."""
    piece = st.one_of(
        st.text(st.characters(codec="utf-8"), min_size=1, max_size=4),
        HOSTILE_CHARACTERS,
        HOSTILE_PAYLOADS,
        st.text("abcdefghij-0123456789", min_size=1, max_size=8),
    )
    return st.lists(piece, min_size=1, max_size=max_size // 4 + 1).map("".join)


NAMES = st.one_of(
    hostile_text(),
    st.text("abcdefghij-.", min_size=1, max_size=12),
    # Very long values: a 63-character DNS label is the usual maximum, so go well past it.
    st.integers(300, 3000).map(lambda n: ("long-name." * (n // 10 + 1))[:n]),
)

LABEL_KEYS = st.one_of(
    st.sampled_from(["verb", "code", "le", "app", "_x", "a1"]),
    st.sampled_from(["verb", "code", "le", "app", "_x", "a1"]),
    # Kubernetes keys that are not Prometheus label names: must be refused with a 4xx.
    st.sampled_from(["app.kubernetes.io/name", "example.com/tier", "a-b"]),
)
LABEL_VALUES = st.one_of(
    st.text("abcxyz019-_.", min_size=0, max_size=12),
    st.sampled_from(["web.v2", "a.b.c", "x-y_z", "A" * 63]),
)


@dataclass(frozen=True)
class Expected:
    """One matcher the selector must produce: label, operator and a check of the value."""

    label: str
    operator: str
    check: Callable[[str], bool]
    describe: str


def regex_selects_exactly(values: Sequence[str]) -> Callable[[str], bool]:
    """The decoded regex matches each value in full and none of a few near misses."""

    def check(pattern: str) -> bool:
        compiled = re.compile(pattern, re.DOTALL)
        misses = {v + "x" for v in values} | {"x" + v for v in values}
        misses |= {v.replace(".", "x") for v in values if "." in v}
        misses -= set(values)
        return all(compiled.fullmatch(v) for v in values) and not any(
            compiled.fullmatch(m) for m in misses
        )

    return check


def equals(value: str) -> Callable[[str], bool]:
    return lambda decoded: decoded == value


@st.composite
def selectors(draw: st.DrawFn) -> tuple[str, list[Expected]]:
    """A selector text (often valid, sometimes not) and the matchers a valid one must give."""
    if draw(st.booleans()) and draw(st.booleans()):
        raw = draw(hostile_text())
        # Arbitrary text: most of it is refused (4xx). When it happens to parse, its matchers
        # are only checked to name labels written in the text (see check_matchers).
        return raw, [Expected("", "raw", lambda _: True, raw)]
    parts: list[str] = []
    expected: list[Expected] = []
    used: set[str] = set()
    for _ in range(draw(st.integers(0, 3))):
        key = draw(LABEL_KEYS)
        if key in used:
            continue
        used.add(key)
        kind = draw(st.sampled_from(["=", "==", "!=", "in", "notin", "exists", "not"]))
        values = sorted(set(draw(st.lists(LABEL_VALUES, min_size=1, max_size=3))))
        value = values[0]
        if kind in ("=", "=="):
            parts.append(f"{key}{kind}{value}")
            expected.append(Expected(key, "=", equals(value), f'{key}="{value}"'))
        elif kind == "!=":
            parts.append(f"{key}!={value}")
            expected.append(Expected(key, "!=", equals(value), f'{key}!="{value}"'))
        elif kind in ("in", "notin"):
            parts.append(f"{key} {kind} ({','.join(values)})")
            operator = "=~" if kind == "in" else "!~"
            expected.append(
                Expected(key, operator, regex_selects_exactly(values), f"{key}{operator}{values}")
            )
        elif kind == "exists":
            parts.append(key)
            expected.append(Expected(key, "!=", equals(""), f'{key}!=""'))
        else:
            parts.append(f"!{key}")
            expected.append(Expected(key, "=", equals(""), f'{key}=""'))
    return ",".join(parts), expected


# --- the app with a recording Prometheus ---------------------------------------------------------


@dataclass
class RecordingPrometheus:
    """Records every query; answers with a sample for every pod it was told about."""

    pods: list[KubeObject] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)

    def query(self, promql: str, at: float | None = None) -> QueryResult:
        self.queries.append(promql)
        samples = [
            Sample({"namespace": p.namespace, "pod": p.name, "container": "app"}, 0.5, at or NOW)
            for p in self.pods
        ]
        samples.append(Sample({"node": "node-a"}, 1.0, at or NOW))
        return VectorResult(tuple(samples))

    def series(self, *_: object, **__: object) -> list[dict[str, str]]:
        return []

    def label_values(self, *_: object, **__: object) -> list[str]:
        return []

    def label_names(self, *_: object, **__: object) -> list[str]:
        return []


@dataclass
class FuzzAdapter:
    prometheus: RecordingPrometheus
    pods: ObjectStore
    client: FlaskClient

    def get(self, path: str, params: dict[str, str]) -> tuple[int, list[str]]:
        """Status code and the queries this one request sent."""
        self.prometheus.queries.clear()
        target = f"{path}?{urlencode(params)}" if params else path
        response = self.client.get(target)
        return response.status_code, list(self.prometheus.queries)


def build_adapter() -> FuzzAdapter:
    catalog = DiscoveryResourceCatalog(None)
    pods = ObjectStore()
    objects = ClusterObjects(
        pods=pods,
        nodes=ObjectStore([KubeObject("", "node-a")]),
        namespaces=ObjectStore(),
        catalog=catalog,
    )
    compiled = compile_config(load_config_file(RULES_FILE), catalog)
    discovered = {
        query: SeriesQueryResult(
            query,
            {CPU_SERIES: frozenset({"namespace", "pod"}), MEMORY_SERIES: frozenset()}
            if "container|pod" in query
            else {"kubestats_node_cpu_usage_seconds_total": frozenset()},
            NOW,
        )
        for query in {*compiled.custom_series_queries, *compiled.external_series_queries}
    }
    registry = build_registry(compiled, discovered)
    prometheus = RecordingPrometheus()
    queries = QueryRunner(prometheus, lambda: NOW)
    providers = Providers(
        resource=ResourceMetricsProvider(lambda: compiled.resource_rules, objects, queries),
        custom=CustomMetricsProvider(lambda: registry, objects, queries),
        external=ExternalMetricsProvider(lambda: registry, queries),
        registry=lambda: registry,
    )
    app = create_app(ApiSettings(build_version="fuzz"), providers, lambda: NOW)
    return FuzzAdapter(prometheus, pods, app.test_client())


@pytest.fixture(scope="module")
def adapter() -> FuzzAdapter:
    return build_adapter()


# --- what the real Prometheus understood ----------------------------------------------------------

_GO_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}


def go_unquote(literal: str) -> str:
    """Decode a double-quoted string as Prometheus prints it (Go ``strconv.Quote``)."""
    assert literal[0] == literal[-1] == '"', literal
    body, out, index = literal[1:-1], bytearray(), 0
    while index < len(body):
        char = body[index]
        if char != "\\":
            out += char.encode("utf-8")
            index += 1
            continue
        kind = body[index + 1]
        if kind in _GO_ESCAPES:
            out.append(_GO_ESCAPES[kind])
            index += 2
        elif kind == "x":
            out.append(int(body[index + 2 : index + 4], 16))
            index += 4
        elif kind in "uU":
            width = 4 if kind == "u" else 8
            out += chr(int(body[index + 2 : index + 2 + width], 16)).encode("utf-8")
            index += 2 + width
        else:
            raise AssertionError(f"unexpected escape \\{kind} in {literal!r}")
    return out.decode("utf-8")


_TOKEN = re.compile(
    r'(?P<string>"(?:[^"\\]|\\.)*")|(?P<open>\{)|(?P<close>\})'
    r"|(?P<matcher>(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*"
    r'(?P<value>"(?:[^"\\]|\\.)*"))',
    re.DOTALL,
)


@dataclass(frozen=True)
class Understood:
    """A formatted query split into its shape and the matchers of each selector."""

    shape: str  # the canonical text without its {...} matchers, on one line
    selectors: list[tuple[str, list[tuple[str, str, str]]]]  # (metric name, matchers)


def understood(formatted: str) -> Understood:
    shape: list[str] = []
    selectors_found: list[tuple[str, list[tuple[str, str, str]]]] = []
    position, depth = 0, 0
    current: list[tuple[str, str, str]] = []
    for match in _TOKEN.finditer(formatted):
        if depth == 0:
            shape.append(formatted[position : match.start()])
        if match["open"]:
            depth += 1
            current = []
            shape.append("{")
        elif match["close"]:
            depth -= 1
            name = re.search(r"([A-Za-z_:][A-Za-z0-9_:]*)\{$", "".join(shape))
            selectors_found.append((name.group(1) if name else "", current))
            shape.append("}")
        elif match["matcher"] and depth == 1:
            current.append((match["label"], match["op"], go_unquote(match["value"])))
        elif depth == 0:
            shape.append('""' if match["string"] else match.group(0))
        position = match.end()
    shape.append(formatted[position:])
    # Prometheus breaks long queries over lines; the shape compares without layout.
    return Understood(
        re.sub(r"\s+", " ", "".join(shape)).replace("( ", "(").replace(" )", ")").replace("{}", ""),
        selectors_found,
    )


def formatted_by_prometheus(server: PrometheusServer, query: str) -> str:
    response = requests.post(f"{server.url}/api/v1/format_query", data={"query": query}, timeout=10)
    body = response.json()
    assert response.status_code == 200, f"Prometheus rejected:\n{query!r}\n{body}"
    assert body.get("status") == "success", f"Prometheus rejected:\n{query!r}\n{body}"
    formatted: str = body["data"]
    return formatted


def check_matchers(got: list[tuple[str, str, str]], expected: list[Expected], query: str) -> None:
    remaining = list(got)
    raw = [e.describe for e in expected if e.operator == "raw"]
    if raw:
        remaining = [m for m in remaining if m[0] in ("namespace", "pod") or m[0] not in raw[0]]
        expected = [e for e in expected if e.operator != "raw"]
    for want in expected:
        found = [m for m in remaining if m[0] == want.label and m[1] == want.operator]
        assert found, f"no matcher {want.describe} in {got} (query {query!r})"
        assert want.check(found[0][2]), f"matcher {found[0]} is not {want.describe} ({query!r})"
        remaining.remove(found[0])
    assert not remaining, f"unexpected matchers {remaining} in {query!r}"


# --- routes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One fuzzed request: where, with which params, and what its queries must contain."""

    path: str
    params: dict[str, str]
    metric_series: tuple[str, ...]
    expected: list[Expected]


def seg(text: str) -> str:
    return quote(text, safe="")


def pods_star_route(
    namespace: str, pod_names: list[str], metric_selector: tuple[str, list[Expected]]
) -> Route:
    text, expected = metric_selector
    names = sorted(set(pod_names))
    pod_check = (
        Expected("pod", "=", equals(names[0]), f'pod="{names[0]}"')
        if len(names) == 1
        else Expected("pod", "=~", regex_selects_exactly(names), f"pod=~{names}")
    )
    return Route(
        f"{CM2}/namespaces/{seg(namespace)}/pods/%2A/{CUSTOM_METRIC}",
        {"labelSelector": "app=fuzz", "metricLabelSelector": text},
        (CPU_SERIES,),
        [*expected, Expected("namespace", "=", equals(namespace), "namespace"), pod_check],
    )


def assert_adapter_safe(
    adapter: FuzzAdapter, server: PrometheusServer, route: Route, baseline_shape: str | None
) -> None:
    status, queries = adapter.get(route.path, route.params)
    assert status // 100 in (2, 4), f"{route.path}?{route.params} answered {status}"
    event(f"HTTP {status}, {min(len(queries), 2)} queries checked in Prometheus")
    for query in queries:
        seen = understood(formatted_by_prometheus(server, query))
        if baseline_shape is not None:
            assert seen.shape == baseline_shape, (
                f"query structure changed:\n{seen.shape}\nvs benign\n{baseline_shape}\n"
                f"query {query!r}"
            )
        for series, matchers in seen.selectors:
            assert series in route.metric_series, f"unexpected selector {series} in {query!r}"
            # A split query carries a subset of the names; check the name-free matchers then.
            if len(queries) == 1:
                check_matchers(matchers, route.expected, query)
            else:
                fixed = [e for e in route.expected if e.label != "pod"]
                check_matchers([m for m in matchers if m[0] != "pod"], fixed, query)


@pytest.fixture(scope="module")
def benign_shapes(adapter: FuzzAdapter, prometheus_server: PrometheusServer) -> dict[str, str]:
    """The canonical shape of each route's query for ordinary values."""
    adapter.pods.replace([KubeObject("ns", "web-1", {"app": "fuzz"}, "Running")])
    adapter.prometheus.pods = [KubeObject("ns", "web-1")]
    shapes = {}
    for key, path in {
        "pods-star": f"{CM2}/namespaces/ns/pods/%2A/{CUSTOM_METRIC}",
        "pod": f"{CM2}/namespaces/ns/pods/web-1/{CUSTOM_METRIC}",
        "external": f"{EM}/namespaces/ns/{EXTERNAL_METRIC}",
    }.items():
        status, queries = adapter.get(path, {"labelSelector": "app=fuzz"} if "%2A" in path else {})
        assert status == 200, (key, status)
        assert len(queries) == 1, (key, queries)
        shapes[key] = understood(formatted_by_prometheus(prometheus_server, queries[0])).shape
    return shapes


FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


@FUZZ
@given(
    namespace=NAMES,
    pod_names=st.lists(NAMES, min_size=1, max_size=5),
    metric_selector=selectors(),
)
def test_pods_star_request_keeps_query_structure(
    adapter: FuzzAdapter,
    prometheus_server: PrometheusServer,
    benign_shapes: dict[str, str],
    namespace: str,
    pod_names: list[str],
    metric_selector: tuple[str, list[Expected]],
) -> None:
    pods = [KubeObject(namespace, name, {"app": "fuzz"}, "Running") for name in pod_names]
    adapter.pods.replace(pods)
    adapter.prometheus.pods = pods
    route = pods_star_route(namespace, pod_names, metric_selector)
    assert_adapter_safe(adapter, prometheus_server, route, benign_shapes["pods-star"])


@FUZZ
@given(namespace=NAMES, name=NAMES, metric_selector=selectors())
def test_single_pod_request_keeps_query_structure(
    adapter: FuzzAdapter,
    prometheus_server: PrometheusServer,
    benign_shapes: dict[str, str],
    namespace: str,
    name: str,
    metric_selector: tuple[str, list[Expected]],
) -> None:
    pod = KubeObject(namespace, name, {"app": "fuzz"}, "Running")
    adapter.pods.replace([pod])
    adapter.prometheus.pods = [pod]
    text, expected = metric_selector
    route = Route(
        f"{CM2}/namespaces/{seg(namespace)}/pods/{seg(name)}/{CUSTOM_METRIC}",
        {"metricLabelSelector": text} if text else {},
        (CPU_SERIES,),
        [
            *expected,
            Expected("namespace", "=", equals(namespace), "namespace"),
            Expected("pod", "=", equals(name), "pod"),
        ],
    )
    assert_adapter_safe(adapter, prometheus_server, route, benign_shapes["pod"])


@FUZZ
@given(namespace=NAMES, selector=selectors())
def test_external_request_keeps_query_structure(
    adapter: FuzzAdapter,
    prometheus_server: PrometheusServer,
    benign_shapes: dict[str, str],
    namespace: str,
    selector: tuple[str, list[Expected]],
) -> None:
    text, expected = selector
    # The default external rule is not namespaced: the namespace never enters the query.
    route = Route(
        f"{EM}/namespaces/{seg(namespace)}/{EXTERNAL_METRIC}",
        {"labelSelector": text} if text else {},
        ("kubestats_node_cpu_usage_seconds_total",),
        expected,
    )
    assert_adapter_safe(adapter, prometheus_server, route, benign_shapes["external"])


@FUZZ
@given(
    namespace=NAMES,
    pod_names=st.lists(NAMES, min_size=1, max_size=4),
    label_selector=selectors(),
    field_value=NAMES,
)
def test_resource_metrics_list_never_fails(
    adapter: FuzzAdapter,
    prometheus_server: PrometheusServer,
    namespace: str,
    pod_names: list[str],
    label_selector: tuple[str, list[Expected]],
    field_value: str,
) -> None:
    pods = [KubeObject(namespace, name, {"app": "fuzz"}, "Running") for name in pod_names]
    adapter.pods.replace(pods)
    adapter.prometheus.pods = pods
    for params in (
        {"labelSelector": label_selector[0]},
        {"fieldSelector": f"metadata.name={field_value}"},
        {"fieldSelector": field_value},
    ):
        route = Route(
            f"{RM}/namespaces/{seg(namespace)}/pods",
            params,
            (CPU_SERIES, MEMORY_SERIES),
            [Expected("namespace", "=", equals(namespace), "namespace")],
        )
        status, queries = adapter.get(route.path, route.params)
        assert status // 100 in (2, 4), f"{route.path}?{params} answered {status}"
        for query in queries:
            seen = understood(formatted_by_prometheus(prometheus_server, query))
            for series, matchers in seen.selectors:
                assert series in route.metric_series, query
                assert ("namespace", "=", namespace) in matchers, (matchers, query)
                pods_matcher = [m for m in matchers if m[0] == "pod"]
                assert len(pods_matcher) == 1, (matchers, query)


RAW_SEGMENTS = st.one_of(NAMES, st.sampled_from(["%2A", "*", "..", ".", "%2F", "%ZZ", "%C3%28"]))


@FUZZ
@given(
    group=st.sampled_from(
        [
            "custom.metrics.k8s.io/v1beta2",
            "custom.metrics.k8s.io/v1beta1",
            "metrics.k8s.io/v1beta1",
            "external.metrics.k8s.io/v1beta1",
            "custom.metrics.k8s.io/v9",
        ]
    ),
    segments=st.lists(RAW_SEGMENTS, min_size=0, max_size=6),
    query=st.one_of(hostile_text(), st.sampled_from(["labelSelector=%ZZ", "a=%C3%28&&=&"])),
)
def test_any_path_answers_without_a_server_error(
    adapter: FuzzAdapter,
    prometheus_server: PrometheusServer,
    group: str,
    segments: list[str],
    query: str,
) -> None:
    raw = [s if s.startswith("%") or s in ("*", ".", "..") else seg(s) for s in segments]
    path = f"/apis/{group}/" + "/".join(raw)
    adapter.prometheus.queries.clear()
    response = adapter.client.get(path + "?" + quote(query, safe="=&%"))
    text = response.get_data(as_text=True)
    assert response.status_code // 100 in (2, 4), (path, query, text)
    body = response.get_json(silent=True)
    assert isinstance(body, dict), (path, text)
    assert "kind" in body, (path, text)
    for sent in adapter.prometheus.queries:
        formatted_by_prometheus(prometheus_server, sent)


def test_encoded_slash_segment_gets_a_status_not_a_redirect(adapter: FuzzAdapter) -> None:
    response = adapter.client.get(f"{CM2}/%2F")
    assert response.status_code == 404, response.get_data(as_text=True)
    body = response.get_json(silent=True)
    assert isinstance(body, dict)
    assert body.get("kind") == "Status"


# --- the checker itself ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("formatted", "shape", "selectors_found"),
    [
        (
            'sum by (pod) (rate(m{a="x\\n",pod=~"a|b"}[1m]))',
            "sum by (pod) (rate(m[1m]))",
            [("m", [("a", "=", "x\n"), ("pod", "=~", "a|b")])],
        ),
        (
            'm{a="\\"} or vector(1) #"}',
            "m",
            [("m", [("a", "=", '"} or vector(1) #')])],
        ),
        (
            'm{a="x"} or vector(1) or n{b!~"\\u200b"}',
            "m or vector(1) or n",
            [("m", [("a", "=", "x")]), ("n", [("b", "!~", "\u200b")])],
        ),
    ],
    ids=["matchers", "payload-inside-literal", "payload-outside-literal"],
)
def test_understood_splits_shape_and_matchers(
    formatted: str, shape: str, selectors_found: list[tuple[str, list[tuple[str, str, str]]]]
) -> None:
    seen = understood(formatted)
    assert seen.shape == shape
    assert seen.selectors == selectors_found


@pytest.mark.parametrize(
    ("pattern", "values", "exact"),
    [
        ("web\\.v2", ["web.v2"], True),
        # An unescaped dot also matches the near miss "webxv2".
        ("web.v2", ["web.v2"], False),
        ("a|b\\|c", ["a", "b|c"], True),
        ("a|b", ["a", "b|c"], False),
    ],
    ids=["escaped-dot", "bare-dot", "escaped-bar", "missing-value"],
)
def test_regex_selects_exactly(pattern: str, values: list[str], exact: bool) -> None:
    assert regex_selects_exactly(values)(pattern) is exact
