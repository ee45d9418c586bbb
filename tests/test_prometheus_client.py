"""The Prometheus client against pytest-httpserver (plain and TLS) and pure response decoding."""

from __future__ import annotations

import json
import math
import os
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from pytest_httpserver import HTTPServer
from urllib3.exceptions import InsecureRequestWarning
from werkzeug import Request, Response

from adapter.prometheus import (
    PrometheusClient,
    PrometheusConfigError,
    PrometheusError,
    PrometheusQueryError,
    PrometheusResponseError,
    PrometheusSettings,
    PrometheusUnavailableError,
    Sample,
    ScalarResult,
    UnexpectedResultTypeError,
    VectorResult,
    decode_query_response,
    format_timeout,
    parse_header_flags,
)
from tests.prometheus_server import PrometheusServer

TOKEN = "s3cr3t-token-value"


def success(data: object, warnings: list[str] | None = None) -> str:
    document: dict[str, Any] = {"status": "success", "data": data}
    if warnings:
        document["warnings"] = warnings
    return json.dumps(document)


def vector(*elements: tuple[dict[str, str], float, str]) -> str:
    return success(
        {
            "resultType": "vector",
            "result": [{"metric": m, "value": [t, v]} for m, t, v in elements],
        }
    )


@dataclass
class Recorder:
    """Records every request and answers with a fixed response."""

    status: int = 200
    body: str = vector()
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, request: Request) -> Response:
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "args": request.args.to_dict(flat=False),
                "form": request.form.to_dict(flat=False),
                "headers": dict(request.headers),
                "url_length": len(request.full_path),
            }
        )
        if self.delay:
            time.sleep(self.delay)
        return Response(self.body, status=self.status, content_type="application/json")

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1]


@pytest.fixture
def recorder(httpserver: HTTPServer) -> Recorder:
    answer = Recorder()
    httpserver.expect_request("/api/v1/query").respond_with_handler(answer)
    httpserver.expect_request("/api/v1/series").respond_with_handler(answer)
    httpserver.expect_request("/api/v1/label/pod/values").respond_with_handler(answer)
    httpserver.expect_request("/api/v1/labels").respond_with_handler(answer)
    httpserver.expect_request("/prom/api/v1/query").respond_with_handler(answer)
    return answer


def make_client(httpserver: HTTPServer, **overrides: Any) -> PrometheusClient:
    settings = PrometheusSettings(url=httpserver.url_for("/"), timeout=5.0, **overrides)
    return PrometheusClient(settings)


# --- results -----------------------------------------------------------------------------------


def test_vector_with_special_values(httpserver: HTTPServer, recorder: Recorder) -> None:
    recorder.body = vector(
        ({"pod": "a"}, 1700000000.5, "1.5"),
        ({"pod": "b"}, 1700000000, "NaN"),
        ({"pod": "c"}, 1700000000, "+Inf"),
        ({"pod": "d"}, 1700000000, "-Inf"),
    )
    result = make_client(httpserver).query('sum(x{pod=~"a|b"}) by (pod)', at=1700000000.5)
    assert isinstance(result, VectorResult)
    assert result.samples[0] == Sample({"pod": "a"}, 1.5, 1700000000.5)
    assert math.isnan(result.samples[1].value)
    assert [s.value for s in result.samples[2:]] == [math.inf, -math.inf]
    assert recorder.last["args"]["query"] == ['sum(x{pod=~"a|b"}) by (pod)']
    assert recorder.last["args"]["time"] == ["1700000000.500"]


def test_scalar(httpserver: HTTPServer, recorder: Recorder) -> None:
    recorder.body = success({"resultType": "scalar", "result": [1700000000, "42"]}, ["partial"])
    assert make_client(httpserver).query("scalar(vector(42))") == ScalarResult(
        42.0, 1700000000.0, ("partial",)
    )


@pytest.mark.parametrize(
    ("result_type", "result"),
    [("matrix", [{"metric": {}, "values": [[1, "1"]]}]), ("string", [1, "hello"])],
    ids=["matrix", "string"],
)
def test_matrix_and_string_are_typed_errors(
    httpserver: HTTPServer, recorder: Recorder, result_type: str, result: object
) -> None:
    recorder.body = success({"resultType": result_type, "result": result})
    with pytest.raises(UnexpectedResultTypeError, match=f"returned a {result_type}") as caught:
        make_client(httpserver).query("x[5m]")
    assert caught.value.result_type == result_type


# --- errors ------------------------------------------------------------------------------------

ERROR_CASES = [
    (
        "bad_data_400",
        400,
        json.dumps({"status": "error", "errorType": "bad_data", "error": "1:5: parse error"}),
        PrometheusQueryError,
        "HTTP 400 bad_data: 1:5: parse error",
    ),
    (
        "execution_422",
        422,
        json.dumps({"status": "error", "errorType": "execution", "error": "too many samples"}),
        PrometheusQueryError,
        "HTTP 422 execution: too many samples",
    ),
    (
        "unavailable_503",
        503,
        json.dumps({"status": "error", "errorType": "timeout", "error": "query timed out"}),
        PrometheusUnavailableError,
        "HTTP 503 timeout: query timed out",
    ),
    (
        "proxy_502_html",
        502,
        "<html>Bad Gateway</html>",
        PrometheusUnavailableError,
        "HTTP 502: <html>Bad Gateway</html>",
    ),
    (
        "not_found_404",
        404,
        "404 page not found",
        PrometheusResponseError,
        "path in --prometheus-url",
    ),
    ("unauthorized_401", 401, "", PrometheusResponseError, "check the bearer token"),
    ("uri_too_long_414", 414, "", PrometheusResponseError, "--prometheus-verb=POST"),
    ("not_json", 200, "<html>Grafana</html>", PrometheusResponseError, "response is not JSON"),
    ("not_success", 200, json.dumps({"status": "weird"}), PrometheusResponseError, "no status"),
    (
        "bad_value",
        200,
        vector(({"a": "b"}, 1, "one")),
        PrometheusResponseError,
        "sample value 'one' is not a number",
    ),
    (
        "bad_labels",
        200,
        success({"resultType": "vector", "result": [{"metric": {"a": 1}, "value": [1, "1"]}]}),
        PrometheusResponseError,
        "labels must be an object of strings",
    ),
    (
        "native_histogram",
        200,
        success({"resultType": "vector", "result": [{"metric": {}, "histogram": [1, {}]}]}),
        PrometheusResponseError,
        "native histogram sample",
    ),
    (
        "unknown_result_type",
        200,
        success({"resultType": "table", "result": []}),
        PrometheusResponseError,
        "unknown resultType 'table'",
    ),
]


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [c[1:] for c in ERROR_CASES],
    ids=[c[0] for c in ERROR_CASES],
)
def test_error_responses(
    httpserver: HTTPServer,
    recorder: Recorder,
    status: int,
    body: str,
    error: type[PrometheusError],
    message: str,
) -> None:
    recorder.status, recorder.body = status, body
    with pytest.raises(error) as caught:
        make_client(httpserver).query("up")
    assert message in str(caught.value)


def test_query_error_keeps_prometheus_fields(httpserver: HTTPServer, recorder: Recorder) -> None:
    recorder.status = 400
    recorder.body = json.dumps({"status": "error", "errorType": "bad_data", "error": "boom"})
    with pytest.raises(PrometheusQueryError) as caught:
        make_client(httpserver).query("up{")
    assert (caught.value.status, caught.value.error_type, caught.value.error) == (
        400,
        "bad_data",
        "boom",
    )


def test_timeout(httpserver: HTTPServer, recorder: Recorder) -> None:
    recorder.delay = 1.0
    client = PrometheusClient(PrometheusSettings(url=httpserver.url_for("/"), timeout=0.2))
    with pytest.raises(PrometheusUnavailableError, match=r"did not answer within 0.2s"):
        client.query("up")


def test_connection_refused() -> None:
    client = PrometheusClient(PrometheusSettings(url="http://127.0.0.1:9/", timeout=2))
    with pytest.raises(PrometheusUnavailableError, match="cannot reach Prometheus"):
        client.query("up")


# --- how requests are made ---------------------------------------------------------------------


def test_timeout_parameter_is_positive_and_matches(
    httpserver: HTTPServer, recorder: Recorder
) -> None:
    client = PrometheusClient(PrometheusSettings(url=httpserver.url_for("/"), timeout=12.5))
    client.query("up")
    assert recorder.last["args"]["timeout"] == ["12500ms"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(30, "30s"), (12.5, "12500ms"), (0.0001, "1ms"), (1.0, "1s"), (0.25, "250ms")],
    ids=["whole", "fraction", "tiny_rounds_up", "one", "quarter"],
)
def test_format_timeout(seconds: float, text: str) -> None:
    assert format_timeout(seconds) == text


@pytest.mark.parametrize("seconds", [0, -1, math.nan, math.inf], ids=["zero", "neg", "nan", "inf"])
def test_format_timeout_rejects_non_positive(seconds: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        format_timeout(seconds)


def test_short_query_is_get_long_query_is_post(httpserver: HTTPServer, recorder: Recorder) -> None:
    client = make_client(httpserver, post_threshold_bytes=200)
    client.query("up")
    assert recorder.last["method"] == "GET"
    long_query = 'sum(x{pod=~"' + "|".join(f"pod-{i}" for i in range(100)) + '"})'
    client.query(long_query)
    assert recorder.last["method"] == "POST"
    assert recorder.last["form"]["query"] == [long_query]
    assert recorder.last["form"]["timeout"] == ["5s"]
    assert recorder.last["args"] == {}
    assert recorder.last["url_length"] < 50


def test_verb_post_always_posts(httpserver: HTTPServer, recorder: Recorder) -> None:
    make_client(httpserver, verb="POST").query("up")
    assert recorder.last["method"] == "POST"
    assert recorder.last["form"]["query"] == ["up"]


def test_headers_and_token_are_sent(
    httpserver: HTTPServer, recorder: Recorder, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    client = make_client(
        httpserver,
        bearer_token_file=str(token_file),
        headers=parse_header_flags(["X-Scope-OrgID=tenant-a"]),
    )
    client.query("up")
    assert recorder.last["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert recorder.last["headers"]["X-Scope-Orgid"] == "tenant-a"
    # A rotated token is picked up without restarting.
    token_file.write_text("rotated-token-longer", encoding="utf-8")
    os.utime(token_file, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    client.query("up")
    assert recorder.last["headers"]["Authorization"] == "Bearer rotated-token-longer"


def test_token_never_appears_in_errors(httpserver: HTTPServer, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN, encoding="utf-8")
    httpserver.expect_request("/api/v1/query").respond_with_data("nope", status=401)
    client = make_client(httpserver, bearer_token_file=str(token_file))
    with pytest.raises(PrometheusResponseError) as caught:
        client.query("up")
    assert TOKEN not in str(caught.value)
    token_file.unlink()
    with pytest.raises(PrometheusConfigError, match="cannot read bearer token file") as caught2:
        client.query("up")
    assert TOKEN not in str(caught2.value)


def test_base_url_with_sub_path(httpserver: HTTPServer, recorder: Recorder) -> None:
    client = PrometheusClient(PrometheusSettings(url=httpserver.url_for("/prom/"), timeout=5))
    client.query("up")
    assert recorder.last["path"] == "/prom/api/v1/query"


def test_series(httpserver: HTTPServer, recorder: Recorder) -> None:
    recorder.body = success([{"__name__": "up", "job": "a"}, {"__name__": "up", "job": "b"}])
    series = make_client(httpserver).series(['{__name__="up"}', "x"], start=1700000000.25)
    assert series == [{"__name__": "up", "job": "a"}, {"__name__": "up", "job": "b"}]
    assert recorder.last["args"]["match[]"] == ['{__name__="up"}', "x"]
    assert recorder.last["args"]["start"] == ["1700000000.250"]
    assert "end" not in recorder.last["args"]


def test_label_values(httpserver: HTTPServer, recorder: Recorder) -> None:
    recorder.body = success(["web-1", "web-2"])
    values = make_client(httpserver).label_values("pod", ['up{namespace="a"}'], end=5.0)
    assert values == ["web-1", "web-2"]
    assert recorder.last["args"] == {"match[]": ['up{namespace="a"}'], "end": ["5.000"]}
    with pytest.raises(ValueError, match="not a Prometheus label name"):
        make_client(httpserver).label_values("../x")


def test_label_names(httpserver: HTTPServer, recorder: Recorder) -> None:
    recorder.body = success(["__name__", "namespace", "pod"])
    names = make_client(httpserver).label_names(["up", 'x{a="b"}'], start=1.5, end=5.0)
    assert names == ["__name__", "namespace", "pod"]
    assert recorder.last["path"] == "/api/v1/labels"
    assert recorder.last["args"] == {
        "match[]": ["up", 'x{a="b"}'],
        "start": ["1.500"],
        "end": ["5.000"],
    }


# --- settings and flags ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "headers"),
    [
        (["X-Scope-OrgID=tenant"], (("X-Scope-OrgID", "tenant"),)),
        (["Authorization=Basic a2V5OnZhbA=="], (("Authorization", "Basic a2V5OnZhbA=="),)),
        (["A=b=c"], (("A", "b=c"),)),
        (["A"], (("A", ""),)),
        (["Foo=bar", "foo=baz", "fOO=qux"], (("Foo", "bar, baz, qux"),)),
        ([], ()),
    ],
    ids=["org_id", "basic_auth", "split_on_first_equals", "no_equals", "repeated", "none"],
)
def test_parse_header_flags(flags: list[str], headers: tuple[tuple[str, str], ...]) -> None:
    assert parse_header_flags(flags) == headers


@pytest.mark.parametrize(
    ("flag", "message"),
    [("=v", "non-empty HTTP token"), ("A b=v", "HTTP token"), ("A=x\r\nEvil: 1", "CR, LF")],
    ids=["empty_name", "space_in_name", "header_injection"],
)
def test_parse_header_flags_errors(flag: str, message: str) -> None:
    with pytest.raises(PrometheusConfigError, match=message):
        parse_header_flags([flag])


def test_settings_report_every_problem(tmp_path: Path) -> None:
    settings = PrometheusSettings(
        url="ftp://x",
        timeout=-1,
        client_cert_file=str(tmp_path / "missing.crt"),
        bearer_token_file=str(tmp_path / "missing-token"),
    )
    problems = settings.problems()
    assert len(problems) == 5
    with pytest.raises(PrometheusConfigError) as caught:
        PrometheusClient(settings)
    for fragment in ("http:// or https://", "positive", "given together", "missing-token"):
        assert fragment in str(caught.value)


# --- TLS ---------------------------------------------------------------------------------------


@dataclass
class TLSSetup:
    server: HTTPServer
    ca_file: Path
    client_cert: Path
    client_key: Path


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TLSSetup]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca.configure_trust(server_context)
    server_context.verify_mode = ssl.CERT_REQUIRED  # like Prometheus' client_auth_type
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client = ca.issue_cert("adapter@example.com")
    client_cert, client_key = tmp_path / "client.crt", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(str(client_cert))
    client.private_key_pem.write_to_path(str(client_key))
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=server_context)
    server.expect_request("/api/v1/query").respond_with_data(
        vector(), content_type="application/json"
    )
    server.start()
    try:
        yield TLSSetup(server, ca_file, client_cert, client_key)
    finally:
        server.clear()
        if server.is_running():
            server.stop()


def test_tls_verified_with_ca_file_and_client_cert(tls_server: TLSSetup) -> None:
    settings = PrometheusSettings(
        url=tls_server.server.url_for("/"),
        ca_file=str(tls_server.ca_file),
        client_cert_file=str(tls_server.client_cert),
        client_key_file=str(tls_server.client_key),
    )
    assert PrometheusClient(settings).query("up") == VectorResult(())


def test_tls_unknown_ca_is_refused_by_default(tls_server: TLSSetup) -> None:
    client = PrometheusClient(PrometheusSettings(url=tls_server.server.url_for("/")))
    with pytest.raises(PrometheusUnavailableError, match=r"TLS with .* failed"):
        client.query("up")


def test_tls_client_certificate_is_required_by_this_server(tls_server: TLSSetup) -> None:
    settings = PrometheusSettings(
        url=tls_server.server.url_for("/"), ca_file=str(tls_server.ca_file)
    )
    with pytest.raises(PrometheusUnavailableError):
        PrometheusClient(settings).query("up")


def test_insecure_skips_verification_loudly(tls_server: TLSSetup) -> None:
    settings = PrometheusSettings(
        url=tls_server.server.url_for("/"),
        insecure_skip_tls_verify=True,
        client_cert_file=str(tls_server.client_cert),
        client_key_file=str(tls_server.client_key),
    )
    with pytest.warns(InsecureRequestWarning):
        assert PrometheusClient(settings).query("up") == VectorResult(())


# --- pure decoding and a real Prometheus -------------------------------------------------------


def test_decode_query_response_is_pure() -> None:
    body = vector(({"pod": "a"}, 1, "2")).encode()
    assert decode_query_response(200, body) == VectorResult((Sample({"pod": "a"}, 2.0, 1.0),))


@pytest.mark.e2e
def test_against_real_prometheus(prometheus_server: PrometheusServer) -> None:
    client = PrometheusClient(PrometheusSettings(url=prometheus_server.url + "/", timeout=10))
    result = client.query('label_replace(vector(1), "pod", "web-1", "", "")', at=1700000000)
    assert result == VectorResult((Sample({"pod": "web-1"}, 1.0, 1700000000.0),))
    assert client.query("scalar(vector(NaN))").value != client.query("scalar(vector(NaN))").value
    with pytest.raises(PrometheusQueryError) as caught:
        client.query("sum(")
    assert caught.value.error_type == "bad_data"
    with pytest.raises(UnexpectedResultTypeError):
        client.query('"a string"')
    long_query = "vector(1) + " * 600 + "vector(1)"
    assert isinstance(client.query(long_query), VectorResult)  # sent as POST
    assert client.series(['{__name__="up"}'], start=1700000000, end=1700000060) == []
    assert client.label_values("job") == []
