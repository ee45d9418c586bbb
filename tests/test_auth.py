"""Authentication/authorization decisions, wire bodies, caches and the ConfigMap source.

Pure functions are tested by tables; the Kubernetes clients talk to the loopback stand-in
kube-apiserver over real TLS with a fake clock for the TTLs.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from kubernetes import client as kube_client
from werkzeug.test import Client

from adapter.auth import (
    ENVIRON_HEADER_LINES,
    ENVIRON_PEER_CERTIFICATE,
    ENVIRON_USER,
    AuthConfigError,
    Authenticator,
    AuthMiddleware,
    Authorizer,
    AuthRequest,
    Decision,
    RequestAttributes,
    RequestHeaderSettings,
    RequestPathError,
    ReviewUnavailableError,
    StaticRequestHeaderSource,
    UserInfo,
    forbidden_status,
    request_attributes,
    request_header_settings_from_configmap,
    subject_access_review_body,
    user_from_request_headers,
)
from adapter.kube_auth_client import (
    AuthenticationConfigMapSource,
    KubeAccessReviewer,
    KubeTokenReviewer,
    TTLCache,
)
from adapter.tls import ServerContextFactory, ensure_serving_certificate
from tests.kube_apiserver_standin import KubeApiserverStandin, StandinState

SA_TOKEN = "unit-sa-token-0f3c"
GOOD_TOKEN = "unit-good-token-81ab"
BAD_TOKEN = "unit-bad-token-77de"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -------------------------------------------------------------------------------------------
# RequestInfo


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        (
            "GET",
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/*/m",
            "",
            RequestAttributes(
                "get", "", True, "custom.metrics.k8s.io", "v1beta2", "ns", "pods", "m", "*"
            ),
        ),
        (
            "GET",
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns/deployments.apps/web/m",
            "",
            RequestAttributes(
                "get",
                "",
                True,
                "custom.metrics.k8s.io",
                "v1beta1",
                "ns",
                "deployments.apps",
                "m",
                "web",
            ),
        ),
        (
            "GET",
            "/apis/custom.metrics.k8s.io/v1beta2/nodes/*/load",
            "",
            RequestAttributes(
                "get", "", True, "custom.metrics.k8s.io", "v1beta2", "", "nodes", "load", "*"
            ),
        ),
        (
            "GET",
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/metrics/m",
            "",
            RequestAttributes(
                "get", "", True, "custom.metrics.k8s.io", "v1beta2", "ns", "metrics", "", "m"
            ),
        ),
        (
            "GET",
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/queue_depth",
            "labelSelector=queue%3Djobs",
            RequestAttributes(
                "list", "", True, "external.metrics.k8s.io", "v1beta1", "ns", "queue_depth"
            ),
        ),
        (
            "GET",
            "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods/x",
            "",
            RequestAttributes("get", "", True, "metrics.k8s.io", "v1beta1", "ns", "pods", "", "x"),
        ),
        (
            "GET",
            "/apis/metrics.k8s.io/v1beta1/nodes",
            "",
            RequestAttributes("list", "", True, "metrics.k8s.io", "v1beta1", "", "nodes"),
        ),
        (
            "GET",
            "/apis/metrics.k8s.io/v1beta1/pods",
            "fieldSelector=metadata.name%3Dweb-1",
            RequestAttributes(
                "list", "", True, "metrics.k8s.io", "v1beta1", "", "pods", "", "web-1"
            ),
        ),
        (
            "GET",
            "/apis/metrics.k8s.io/v1beta1/pods",
            "fieldSelector=metadata.namespace%3Dx%2Cmetadata.name%3D..",
            RequestAttributes("list", "", True, "metrics.k8s.io", "v1beta1", "", "pods"),
        ),
        (
            "GET",
            "/apis/metrics.k8s.io/v1beta1/pods",
            "watch=true",
            RequestAttributes("watch", "", True, "metrics.k8s.io", "v1beta1", "", "pods"),
        ),
        (
            "GET",
            "/apis/metrics.k8s.io/v1beta1/pods",
            "watch=0",
            RequestAttributes("list", "", True, "metrics.k8s.io", "v1beta1", "", "pods"),
        ),
        (
            "GET",
            "/api/v1/namespaces/ns",
            "",
            RequestAttributes("get", "", True, "", "v1", "ns", "namespaces", "", "ns"),
        ),
        (
            "GET",
            "/apis/metrics.k8s.io/v1beta1/watch/namespaces/ns/pods",
            "",
            RequestAttributes("watch", "", True, "metrics.k8s.io", "v1beta1", "ns", "pods"),
        ),
        (
            "DELETE",
            "/apis/metrics.k8s.io/v1beta1/pods",
            "",
            RequestAttributes(
                "deletecollection", "", True, "metrics.k8s.io", "v1beta1", "", "pods"
            ),
        ),
        ("GET", "/apis/custom.metrics.k8s.io/v1beta2", "", RequestAttributes("get", "", False)),
        ("GET", "/apis", "", RequestAttributes("get", "", False)),
        ("HEAD", "/openapi/v2", "", RequestAttributes("head", "", False)),
    ],
    ids=[
        "custom-pods-star",
        "custom-qualified-resource",
        "custom-root-scoped-star",
        "custom-namespace-metric",
        "external-list",
        "metrics-pod-get",
        "metrics-node-list",
        "field-selector-name",
        "field-selector-invalid-name-ignored",
        "watch-query",
        "watch-zero-is-list",
        "core-namespace",
        "watch-path-prefix",
        "deletecollection",
        "group-version-discovery",
        "apis-discovery",
        "openapi-head",
    ],
)
def test_request_attributes_follow_request_info(
    method: str, path: str, query: str, expected: RequestAttributes
) -> None:
    attributes = request_attributes(method, path, query)
    assert attributes == RequestAttributes(**{**expected.__dict__, "path": path})


def test_special_verb_without_resource_is_an_error() -> None:
    with pytest.raises(RequestPathError, match=re.escape("/apis/metrics.k8s.io/v1beta1/watch")):
        request_attributes("GET", "/apis/metrics.k8s.io/v1beta1/watch")


# -------------------------------------------------------------------------------------------
# Request headers and the ConfigMap

SETTINGS = RequestHeaderSettings(
    client_ca_pem="(verified by TLS)",
    allowed_names=("front-proxy-client",),
    username_headers=("X-Remote-User", "X-Other-User"),
    group_headers=("X-Remote-Group",),
    extra_header_prefixes=("X-Remote-Extra-",),
)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([("X-Remote-User", "alice")], UserInfo("alice")),
        ([("x-remote-user", ""), ("X-OTHER-USER", "bob")], UserInfo("bob")),
        ([("X-Remote-Group", "g1")], None),
        (
            [
                ("X-Remote-User", "a"),
                ("X-Remote-Group", "g1"),
                ("X-Remote-Group", "x,y"),
                ("X-Remote-Group", ""),
            ],
            UserInfo("a", groups=("g1", "x,y")),
        ),
        (
            [
                ("X-Remote-User", "a"),
                ("X-Remote-Extra-Scopes", "s1"),
                ("X-Remote-Extra-scopes", "s2"),
                ("X-Remote-Extra-Example.com%2fKey", "v"),
                ("X-Remote-Extra-Bad%zz", "w"),
            ],
            UserInfo(
                "a", extra={"scopes": ("s1", "s2"), "example.com/key": ("v",), "bad%zz": ("w",)}
            ),
        ),
    ],
    ids=["username", "first-non-empty-username", "no-username", "groups-per-line", "extra-keys"],
)
def test_user_from_request_headers(lines: list[tuple[str, str]], expected: UserInfo | None) -> None:
    request = AuthRequest("GET", "/", header_lines=tuple(lines))
    assert user_from_request_headers(request, SETTINGS) == expected


def test_configmap_settings_parse_json_lists(tmp_path: Path) -> None:
    ca = trustme.CA()
    settings = request_header_settings_from_configmap(
        {
            "requestheader-client-ca-file": ca.cert_pem.bytes().decode(),
            "requestheader-allowed-names": '["front-proxy-client"]',
            "requestheader-username-headers": '["X-Remote-User"]',
            "requestheader-group-headers": '["X-Remote-Group"]',
            "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
        }
    )
    assert settings.enabled
    assert settings.allowed_names == ("front-proxy-client",)
    assert settings.uid_headers == ()
    assert settings.extra_header_prefixes == ("X-Remote-Extra-",)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"requestheader-allowed-names": "front-proxy-client"},
            "'requestheader-allowed-names': not JSON",
        ),
        (
            {"requestheader-group-headers": '{"a": 1}'},
            "'requestheader-group-headers': expected a JSON array",
        ),
        ({"requestheader-client-ca-file": "not pem"}, "'requestheader-client-ca-file': not a PEM"),
    ],
    ids=["not-json", "not-a-list", "bad-ca"],
)
def test_configmap_errors_name_the_key(data: dict[str, str], message: str) -> None:
    with pytest.raises(AuthConfigError, match=message) as caught:
        request_header_settings_from_configmap(data)
    assert "ConfigMap kube-system/extension-apiserver-authentication" in str(caught.value)


# -------------------------------------------------------------------------------------------
# Wire bodies and Status


def test_subject_access_review_body_omits_empty_fields() -> None:
    user = UserInfo("system:aggregator")
    attributes = request_attributes("GET", "/openapi/v2")
    assert subject_access_review_body(user, attributes) == {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "system:aggregator",
            "nonResourceAttributes": {"path": "/openapi/v2", "verb": "get"},
        },
    }


def test_kubernetes_models_send_our_bodies_unchanged() -> None:
    # kube_auth_client passes bodies through the client's models; nothing may be added or lost.
    user = UserInfo("u", "uid-1", ("g",), {"k": ("v",)})
    body = subject_access_review_body(
        user, request_attributes("GET", "/apis/g/v/namespaces/n/r/x/s")
    )
    model = kube_client.V1SubjectAccessReview.from_dict(body)
    assert kube_client.ApiClient().sanitize_for_serialization(model) == body


@pytest.mark.parametrize(
    ("path", "reason", "message", "details"),
    [
        (
            "/apis/metrics.k8s.io/v1beta1/nodes",
            "",
            'nodes.metrics.k8s.io is forbidden: User "eve" cannot list resource "nodes" '
            'in API group "metrics.k8s.io" at the cluster scope',
            {"group": "metrics.k8s.io", "kind": "nodes"},
        ),
        (
            "/apis/metrics.k8s.io/v1beta1/namespaces/a/pods/p",
            "no RBAC policy matched",
            'pods.metrics.k8s.io "p" is forbidden: User "eve" cannot get resource "pods" '
            'in API group "metrics.k8s.io" in the namespace "a": no RBAC policy matched',
            {"name": "p", "group": "metrics.k8s.io", "kind": "pods"},
        ),
        (
            "/metrics/<b>",
            "",
            'forbidden: User "eve" cannot get path "/metrics/&lt;b&gt;"',
            {},
        ),
    ],
    ids=["cluster-scope-list", "namespaced-get-with-reason", "non-resource-html-escaped"],
)
def test_forbidden_status_matches_kubernetes(
    path: str, reason: str, message: str, details: dict[str, str]
) -> None:
    status = forbidden_status(UserInfo("eve"), request_attributes("GET", path), reason)
    assert list(status) == [
        "kind",
        "apiVersion",
        "metadata",
        "status",
        "message",
        "reason",
        "details",
        "code",
    ]
    assert (status["message"], status["details"], status["code"]) == (message, details, 403)


# -------------------------------------------------------------------------------------------
# Authenticator and middleware with fakes


class FakeTokenReviewer:
    def __init__(self, users: dict[str, UserInfo], fail: bool = False) -> None:
        self.users = users
        self.fail = fail

    def review_token(self, token: str) -> UserInfo | None:
        if self.fail:
            raise ReviewUnavailableError("TokenReview failed: HTTP 503 Service Unavailable")
        return self.users.get(token)


class FakeAccessReviewer:
    def __init__(self, allowed_users: set[str], fail: bool = False) -> None:
        self.allowed_users = allowed_users
        self.fail = fail
        self.seen: list[tuple[UserInfo, RequestAttributes]] = []

    def review_access(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
        self.seen.append((user, attributes))
        if self.fail:
            raise ReviewUnavailableError("SubjectAccessReview failed: HTTP 403 Forbidden")
        return Decision(user.name in self.allowed_users)


FRONT_PROXY_CA = trustme.CA()
FRONT_PROXY_DER = FRONT_PROXY_CA.issue_cert("x", common_name="front-proxy-client")
OTHER_CN_DER = FRONT_PROXY_CA.issue_cert("y", common_name="someone-else")


def _der(cert: trustme.LeafCert) -> bytes:
    return x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes()).public_bytes(
        Encoding.DER
    )


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    user = environ.get(ENVIRON_USER)
    start_response("200 OK", [("Content-Type", "application/json")])
    leaked = sorted(k for k in environ if k.startswith(("HTTP_X_REMOTE", "HTTP_AUTHORIZATION")))
    lines = [k for k, _ in environ.get(ENVIRON_HEADER_LINES, ())]
    return [
        json.dumps({"user": getattr(user, "name", None), "leaked": leaked, "lines": lines}).encode()
    ]


def _client(
    reviewer: FakeAccessReviewer, tokens: FakeTokenReviewer | None = None, enabled: bool = True
) -> Client:
    settings = SETTINGS if enabled else RequestHeaderSettings()
    authenticator = Authenticator(
        StaticRequestHeaderSource(settings), tokens or FakeTokenReviewer({})
    )
    return Client(AuthMiddleware(_app, authenticator, Authorizer(reviewer)))


@pytest.mark.parametrize(
    ("peer", "headers", "enabled", "code", "user"),
    [
        (FRONT_PROXY_DER, {"X-Remote-User": "alice"}, True, 200, "alice"),
        (FRONT_PROXY_DER, {"X-Remote-User": "bob"}, True, 403, None),
        (OTHER_CN_DER, {"X-Remote-User": "alice"}, True, 401, None),
        (
            OTHER_CN_DER,
            {"X-Remote-User": "bob", "Authorization": "Bearer good"},
            True,
            200,
            "alice",
        ),
        (FRONT_PROXY_DER, {"X-Remote-User": "alice"}, False, 401, None),
        (None, {"X-Remote-User": "alice"}, True, 401, None),
        (None, {"Authorization": "Bearer good", "X-Remote-User": "bob"}, True, 200, "alice"),
        (None, {"Authorization": "Bearer nope"}, True, 401, None),
        (None, {"X-Remote-User": "root", "X-Remote-Group": "system:masters"}, True, 401, None),
        (
            FRONT_PROXY_DER,
            {"X-Remote-User": "agg", "X-Remote-Group": "system:masters"},
            True,
            200,
            "agg",
        ),
    ],
    ids=[
        "front-proxy-allowed",
        "front-proxy-denied",
        "cn-not-allowed",
        "cn-not-allowed-falls-to-token",
        "request-header-disabled",
        "headers-without-cert-ignored",
        "token-wins-over-unverified-header",
        "token-rejected",
        "masters-header-without-cert",
        "masters-skip-review",
    ],
)
def test_middleware_decisions(
    peer: trustme.LeafCert | None,
    headers: dict[str, str],
    enabled: bool,
    code: int,
    user: str | None,
) -> None:
    reviewer = FakeAccessReviewer({"alice"})
    client = _client(reviewer, FakeTokenReviewer({"good": UserInfo("alice")}), enabled)
    environ = {ENVIRON_PEER_CERTIFICATE: _der(peer) if peer else None}
    response = client.get(
        "/apis/metrics.k8s.io/v1beta1/pods", headers=headers, environ_overrides=environ
    )
    assert response.status_code == code
    body = response.get_json()
    if code == 200:
        assert body == {"user": user, "leaked": [], "lines": []}
    else:
        assert body["kind"] == "Status"
        assert body["code"] == code
    if user == "agg":
        assert reviewer.seen == []


def test_middleware_strips_identity_header_lines_from_the_environ() -> None:
    client = _client(FakeAccessReviewer({"alice"}))
    lines = (("X-Remote-User", "alice"), ("X-Remote-Extra-Foo", "x"), ("Accept", "*/*"))
    response = client.get(
        "/apis/metrics.k8s.io/v1beta1/pods",
        headers=dict(lines),
        environ_overrides={
            ENVIRON_PEER_CERTIFICATE: _der(FRONT_PROXY_DER),
            ENVIRON_HEADER_LINES: lines,
        },
    )
    assert response.get_json() == {"user": "alice", "leaked": [], "lines": ["Accept"]}


@pytest.mark.parametrize(
    ("path", "code", "reason"),
    [
        ("/apis/metrics.k8s.io/v1beta1/watch", 400, "BadRequest"),
        ("/apis/metrics.k8s.io/v1beta1/pods", 500, "InternalError"),
    ],
    ids=["unparseable-path", "review-unavailable"],
)
def test_middleware_errors_are_status_objects(path: str, code: int, reason: str) -> None:
    client = _client(FakeAccessReviewer({"alice"}, fail=True))
    response = client.get(
        path,
        headers={"X-Remote-User": "alice"},
        environ_overrides={ENVIRON_PEER_CERTIFICATE: _der(FRONT_PROXY_DER)},
    )
    assert (response.status_code, response.get_json()["reason"]) == (code, reason)


def test_token_review_failure_is_401_not_500() -> None:
    client = _client(FakeAccessReviewer({"alice"}), FakeTokenReviewer({}, fail=True))
    response = client.get(
        "/apis/metrics.k8s.io/v1beta1/pods", headers={"Authorization": "Bearer x"}
    )
    assert response.status_code == 401


# -------------------------------------------------------------------------------------------
# Kubernetes clients against the stand-in


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[tuple[KubeApiserverStandin, kube_client.ApiClient]]:
    ca = trustme.CA()
    ca_file = tmp_path / "kube-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    state = StandinState(
        service_account_token=SA_TOKEN,
        tokens={
            GOOD_TOKEN: {"username": "alice", "uid": "1", "groups": ["dev"], "extra": {"k": ["v"]}}
        },
        access_policy=lambda spec: (spec.get("user") == "alice", "because"),
        configmap_data={"requestheader-client-ca-file": ca.cert_pem.bytes().decode()},
    )
    with KubeApiserverStandin(ca, state) as server:
        yield server, server.api_client(ca_file)


def test_token_review_caches_accepted_and_rejected_tokens(
    standin: tuple[KubeApiserverStandin, kube_client.ApiClient], caplog: pytest.LogCaptureFixture
) -> None:
    server, api_client = standin
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    reviewer = KubeTokenReviewer(api_client, ttl_seconds=10, clock=clock)
    for _ in range(2):
        assert reviewer.review_token(GOOD_TOKEN) == UserInfo("alice", "1", ("dev",), {"k": ("v",)})
        assert reviewer.review_token(BAD_TOKEN) is None
    assert (server.reviews_for_token(GOOD_TOKEN), server.reviews_for_token(BAD_TOKEN)) == (1, 1)
    clock.now += 10
    reviewer.review_token(GOOD_TOKEN)
    assert server.reviews_for_token(GOOD_TOKEN) == 2
    server.state.fail_reviews_with = 500
    with pytest.raises(ReviewUnavailableError, match="HTTP 500"):
        reviewer.review_token("third-token-abc123")
    assert "rejected by TokenReview" in caplog.text
    for token in (GOOD_TOKEN, BAD_TOKEN, "third-token-abc123", SA_TOKEN):
        assert token not in caplog.text


def test_access_review_uses_separate_ttls_and_does_not_cache_failures(
    standin: tuple[KubeApiserverStandin, kube_client.ApiClient],
) -> None:
    server, api_client = standin
    clock = FakeClock()
    reviewer = KubeAccessReviewer(
        api_client, allowed_ttl_seconds=60, denied_ttl_seconds=5, clock=clock
    )
    attributes = request_attributes("GET", "/apis/metrics.k8s.io/v1beta1/nodes")
    assert reviewer.review_access(UserInfo("alice"), attributes) == Decision(True, "because")
    assert reviewer.review_access(UserInfo("bob"), attributes) == Decision(False, "because")
    clock.now += 6
    reviewer.review_access(UserInfo("alice"), attributes)
    reviewer.review_access(UserInfo("bob"), attributes)
    assert (
        len(server.access_reviews_for_user("alice")),
        len(server.access_reviews_for_user("bob")),
    ) == (1, 2)
    server.state.fail_reviews_with = 500
    for _ in range(2):
        with pytest.raises(ReviewUnavailableError):
            reviewer.review_access(UserInfo("carol"), attributes)
    assert len(server.access_reviews_for_user("carol")) == 0


def test_configmap_source_refreshes_and_keeps_last_good(
    standin: tuple[KubeApiserverStandin, kube_client.ApiClient],
) -> None:
    server, api_client = standin
    clock = FakeClock()
    source = AuthenticationConfigMapSource(api_client, refresh_seconds=60, clock=clock)
    first = source.current()
    assert first.enabled
    assert source.current() is first
    assert server.state.configmap_reads == 1
    server.state.configmap_data = {"requestheader-allowed-names": "not json"}
    clock.now += 60
    assert source.current() is first  # bad content: keep the last good settings
    server.state.configmap_data = None
    clock.now += 60
    assert source.current() is first  # 404: same
    assert server.state.configmap_reads == 3


def test_ttl_cache_evicts_oldest_when_full() -> None:
    cache: TTLCache[str, int] = TTLCache(FakeClock(), max_entries=2)
    for index, key in enumerate("abc"):
        cache.put(key, index, 10)
    assert (cache.get("a"), cache.get("b"), cache.get("c"), len(cache)) == (None, 1, 2, 2)


def test_server_context_is_rebuilt_when_the_client_ca_changes(tmp_path: Path) -> None:
    serving = ensure_serving_certificate(None, None, tmp_path)
    current = {"pem": ""}
    contexts = ServerContextFactory(serving, lambda: current["pem"])
    first = contexts()
    assert contexts() is first
    current["pem"] = trustme.CA().cert_pem.bytes().decode()
    second = contexts()
    assert second is not first
    assert second.verify_mode.name == "CERT_OPTIONAL"
