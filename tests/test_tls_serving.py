"""The authn/authz matrix over real TLS: a gunicorn process on 127.0.0.1 in front of a tiny app.

The server runs in a child process (``python -c`` calling ``serve_for_test`` below) through
``adapter.wsgi_server.AdapterServer`` with ``AuthMiddleware``, the real Kubernetes clients and
the request-header settings read from the stand-in kube-apiserver's ConfigMap. It runs once
with the sync worker and a generated self-signed serving certificate, and once with the
gthread worker and given certificate files.

At the end, ``--tls-min-version`` and ``--tls-cipher-suites`` are checked with real handshakes
against ``serve_tls_policy_for_test`` (the same server with the policy those flags build).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from adapter.auth import (
    ENVIRON_ATTRIBUTES,
    ENVIRON_USER,
    Authenticator,
    AuthMiddleware,
    Authorizer,
    RequestAttributes,
    UserInfo,
)
from adapter.kube_auth_client import (
    AuthenticationConfigMapSource,
    KubeAccessReviewer,
    KubeTokenReviewer,
)
from adapter.tls import (
    GENERATED_CERT_NAME,
    ServingCertificate,
    ensure_serving_certificate,
    server_ssl_context,
    tls_policy_from_flags,
)
from adapter.wsgi_server import AdapterServer, ServerOptions
from tests.conftest import REPO_ROOT
from tests.kube_apiserver_standin import KubeApiserverStandin, StandinState

STARTUP_DEADLINE_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 10.0

SA_TOKEN = "standin-adapter-sa-token-5b1f"
HPA_TOKEN = "hpa-token-9c2e7d41f0"
CACHE_TOKEN = "cache-token-77aa10"
DENIED_TOKEN = "denied-token-31ce"
BAD_TOKEN = "not-a-real-token-d00d"
ALL_TOKENS = (SA_TOKEN, HPA_TOKEN, CACHE_TOKEN, DENIED_TOKEN, BAD_TOKEN)

HPA_USER = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
ALLOWED_USERS = {"alice", "carol", HPA_USER, "cache-token-user", "comma-user"}


# -------------------------------------------------------------------------------------------
# The child process


def _echo_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    user = environ.get(ENVIRON_USER)
    attributes = environ.get(ENVIRON_ATTRIBUTES)
    body = {
        "path": environ.get("PATH_INFO"),
        "user": user.name if isinstance(user, UserInfo) else None,
        "groups": list(user.groups) if isinstance(user, UserInfo) else None,
        "verb": attributes.verb if isinstance(attributes, RequestAttributes) else None,
        # What the app could still read of the identity headers: must be nothing.
        "leaked": sorted(
            key for key in environ if key.startswith(("HTTP_X_REMOTE", "HTTP_AUTHORIZATION"))
        ),
    }
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]


def serve_for_test(config_file: str) -> None:
    """Child-process entry point: serve ``_echo_app`` as the adapter would serve its API."""
    config = json.loads(Path(config_file).read_text(encoding="utf-8"))
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    configuration = kube_client.Configuration()
    kube_config.load_kube_config(
        config_file=config["kubeconfig"], client_configuration=configuration
    )
    request_header = AuthenticationConfigMapSource(kube_client.ApiClient(configuration))

    def app_factory() -> Any:
        api_client = kube_client.ApiClient(configuration)
        authenticator = Authenticator(request_header, KubeTokenReviewer(api_client))
        authorizer = Authorizer(KubeAccessReviewer(api_client))
        return AuthMiddleware(_echo_app, authenticator, authorizer)

    AdapterServer(
        app_factory,
        ServingCertificate(Path(config["cert_file"]), Path(config["key_file"])),
        lambda: request_header.current().client_ca_pem,
        ServerOptions(bind="127.0.0.1:0", workers=1, threads=config["threads"], log_level="debug"),
    ).run()


# -------------------------------------------------------------------------------------------
# Fixtures


@dataclass(frozen=True)
class Pki:
    kube_ca: trustme.CA
    front_proxy_ca: trustme.CA
    front_proxy_cert: Path
    other_cn_cert: Path
    wrong_ca_cert: Path


def _write_client_cert(cert: trustme.LeafCert, path: Path) -> Path:
    cert.private_key_and_cert_chain_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    front_proxy_ca = trustme.CA(organization_name="front-proxy-ca")
    wrong_ca = trustme.CA(organization_name="wrong-ca")
    return Pki(
        kube_ca=trustme.CA(organization_name="kube-ca"),
        front_proxy_ca=front_proxy_ca,
        front_proxy_cert=_write_client_cert(
            front_proxy_ca.issue_cert("front-proxy-client", common_name="front-proxy-client"),
            directory / "front-proxy-client.pem",
        ),
        other_cn_cert=_write_client_cert(
            front_proxy_ca.issue_cert("someone-else", common_name="someone-else"),
            directory / "other-cn.pem",
        ),
        wrong_ca_cert=_write_client_cert(
            wrong_ca.issue_cert("front-proxy-client", common_name="front-proxy-client"),
            directory / "wrong-ca.pem",
        ),
    )


def _allow_listed_users(spec: Any) -> tuple[bool, str]:
    user = spec.get("user", "")
    if user in ALLOWED_USERS or user.startswith("sar-checker-"):
        return True, f'RBAC: allowed by ClusterRoleBinding "test" to User "{user}"'
    return False, ""


@pytest.fixture(scope="module")
def standin(pki: Pki) -> Iterator[KubeApiserverStandin]:
    state = StandinState(
        service_account_token=SA_TOKEN,
        tokens={
            HPA_TOKEN: {
                "username": HPA_USER,
                "uid": "2a4e9c3c-61a4-4c7e-9d0e-3f3b1e7f0d11",
                "groups": [
                    "system:serviceaccounts",
                    "system:serviceaccounts:kube-system",
                    "system:authenticated",
                ],
            },
            CACHE_TOKEN: {"username": "cache-token-user", "groups": ["system:authenticated"]},
            DENIED_TOKEN: {"username": "mallory", "groups": ["system:authenticated"]},
        },
        access_policy=_allow_listed_users,
        configmap_data={
            "client-ca-file": pki.kube_ca.cert_pem.bytes().decode(),
            "requestheader-client-ca-file": pki.front_proxy_ca.cert_pem.bytes().decode(),
            "requestheader-allowed-names": '["front-proxy-client"]',
            "requestheader-username-headers": '["X-Remote-User"]',
            "requestheader-group-headers": '["X-Remote-Group"]',
            "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
        },
    )
    with KubeApiserverStandin(pki.kube_ca, state) as server:
        yield server


@dataclass(frozen=True)
class RunningAdapter:
    url: str
    server_ca_file: Path
    log_file: Path

    def log_text(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")


_LISTENING = re.compile(r"Listening at: https://127\.0\.0\.1:(\d+)")


def _wait_until_serving(process: subprocess.Popen[bytes], log_file: Path, ca_file: Path) -> str:
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    url = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"adapter exited with {process.returncode}:\n{log_file.read_text()}")
        if not url:
            match = _LISTENING.search(log_file.read_text(encoding="utf-8", errors="replace"))
            url = f"https://127.0.0.1:{match.group(1)}" if match else ""
        if url:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/healthz", verify=str(ca_file), timeout=2).ok:
                    return url
        time.sleep(0.1)
    pytest.fail(
        f"adapter did not serve within {STARTUP_DEADLINE_SECONDS}s:\n{log_file.read_text()}"
    )


@pytest.fixture(scope="module", params=["sync-generated-cert", "gthread-given-cert"])
def adapter(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pki: Pki,
    standin: KubeApiserverStandin,
) -> Iterator[RunningAdapter]:
    directory = tmp_path_factory.mktemp(request.param)
    if request.param == "sync-generated-cert":
        serving = ensure_serving_certificate(None, None, directory / "certs")
        server_ca_file, threads = serving.cert_file, 1
    else:
        serving_ca = trustme.CA(organization_name="serving-ca")
        leaf = serving_ca.issue_cert("127.0.0.1", "localhost")
        serving = ServingCertificate(directory / "tls.crt", directory / "tls.key")
        leaf.cert_chain_pems[0].write_to_path(str(serving.cert_file))
        leaf.private_key_pem.write_to_path(str(serving.key_file))
        server_ca_file = directory / "serving-ca.pem"
        serving_ca.cert_pem.write_to_path(str(server_ca_file))
        threads = 4
    config_file = directory / "config.json"
    config_file.write_text(
        json.dumps(
            {
                "kubeconfig": str(standin.write_kubeconfig(directory / "kubeconfig")),
                "cert_file": str(serving.cert_file),
                "key_file": str(serving.key_file),
                "threads": threads,
            }
        ),
        encoding="utf-8",
    )
    log_file = directory / "adapter.log"
    code = (
        f"from tests.test_tls_serving import serve_for_test; serve_for_test({str(config_file)!r})"
    )
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
    try:
        url = _wait_until_serving(process, log_file, server_ca_file)
        yield RunningAdapter(url, server_ca_file, log_file)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _get(
    adapter: RunningAdapter,
    path: str,
    *,
    cert: Path | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    return requests.get(
        adapter.url + path,
        cert=str(cert) if cert else None,
        headers=headers or {},
        verify=str(adapter.server_ca_file),
        timeout=REQUEST_TIMEOUT_SECONDS,
    )


UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}
PODS_PATH = "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods"


# -------------------------------------------------------------------------------------------
# The matrix


@pytest.mark.parametrize(
    ("cert_name", "headers"),
    [
        pytest.param(None, {}, id="no-cert-no-token"),
        pytest.param(
            None,
            {"X-Remote-User": "alice", "X-Remote-Group": "system:masters"},
            id="no-cert-remote-user-header-ignored",
        ),
        pytest.param(
            "other_cn_cert",
            {"X-Remote-User": "alice"},
            id="front-proxy-ca-but-cn-not-allowed",
        ),
        pytest.param(None, {"Authorization": f"Bearer {BAD_TOKEN}"}, id="invalid-token"),
        pytest.param(None, {"Authorization": "Basic YWRtaW46YWRtaW4="}, id="basic-auth-scheme"),
        pytest.param("front_proxy_cert", {}, id="front-proxy-cert-without-user-header"),
    ],
)
def test_unauthenticated_requests_get_401_status(
    adapter: RunningAdapter,
    pki: Pki,
    cert_name: str | None,
    headers: dict[str, str],
) -> None:
    cert = getattr(pki, cert_name) if cert_name else None
    response = _get(adapter, PODS_PATH, cert=cert, headers=headers)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == UNAUTHORIZED


def test_certificate_from_wrong_ca_is_refused_before_any_header_is_read(
    adapter: RunningAdapter, pki: Pki, standin: KubeApiserverStandin
) -> None:
    # Python's ssl verifies any certificate it requests, so the TLS layer refuses the handshake
    # (Go would accept it and answer 401); either way the X-Remote-User never reaches a review.
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        _get(adapter, PODS_PATH, cert=pki.wrong_ca_cert, headers={"X-Remote-User": "wrong-ca-user"})
    assert standin.access_reviews_for_user("wrong-ca-user") == []


def test_front_proxy_user_allowed_by_subject_access_review(
    adapter: RunningAdapter, pki: Pki
) -> None:
    response = _get(
        adapter,
        PODS_PATH,
        cert=pki.front_proxy_cert,
        headers={"X-Remote-User": "alice", "X-Remote-Group": "team-a"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "path": PODS_PATH,
        "user": "alice",
        "groups": ["team-a", "system:authenticated"],
        "verb": "list",
        "leaked": [],
    }


def test_front_proxy_user_denied_gets_403_status(adapter: RunningAdapter, pki: Pki) -> None:
    response = _get(
        adapter,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/http_requests",
        cert=pki.front_proxy_cert,
        headers={"X-Remote-User": "bob"},
    )
    assert response.status_code == 403
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods.custom.metrics.k8s.io "*" is forbidden: User "bob" cannot get resource '
        '"pods/http_requests" in API group "custom.metrics.k8s.io" in the namespace "default"',
        "reason": "Forbidden",
        "details": {"name": "*", "group": "custom.metrics.k8s.io", "kind": "pods"},
        "code": 403,
    }


def test_bearer_token_user_goes_through_subject_access_review(
    adapter: RunningAdapter, pki: Pki, standin: KubeApiserverStandin
) -> None:
    before = len(standin.access_reviews_for_user(HPA_USER))
    response = _get(
        adapter,
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/prod/pods/%2A/qps?labelSelector=app%3Dweb",
        # X-Remote-User without a front-proxy certificate must not override the token's user.
        headers={"Authorization": f"Bearer {HPA_TOKEN}", "X-Remote-User": "alice"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["user"] == HPA_USER
    assert response.json()["leaked"] == []
    assert len(standin.access_reviews_for_user(HPA_USER)) == before + 1


def test_bearer_token_user_denied_gets_403(adapter: RunningAdapter) -> None:
    response = _get(adapter, "/openapi/v2", headers={"Authorization": f"Bearer {DENIED_TOKEN}"})
    assert response.status_code == 403
    assert response.json()["message"] == 'forbidden: User "mallory" cannot get path "/openapi/v2"'
    assert response.json()["details"] == {}


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz", "/readyz/ping", "/metrics"])
def test_health_paths_need_no_credentials(adapter: RunningAdapter, path: str) -> None:
    response = _get(adapter, path)
    assert response.status_code == 200
    assert response.json()["user"] is None


def test_aggregator_in_system_masters_skips_subject_access_review(
    adapter: RunningAdapter, pki: Pki, standin: KubeApiserverStandin
) -> None:
    response = _get(
        adapter,
        "/apis/custom.metrics.k8s.io/v1beta2",
        cert=pki.front_proxy_cert,
        headers={"X-Remote-User": "system:kube-aggregator", "X-Remote-Group": "system:masters"},
    )
    assert response.status_code == 200
    assert standin.access_reviews_for_user("system:kube-aggregator") == []


def test_reviews_are_cached(
    adapter: RunningAdapter, pki: Pki, standin: KubeApiserverStandin
) -> None:
    sar_before = len(standin.access_reviews_for_user("carol"))
    token_before = standin.reviews_for_token(CACHE_TOKEN)
    for _ in range(3):
        by_header = _get(
            adapter, PODS_PATH, cert=pki.front_proxy_cert, headers={"X-Remote-User": "carol"}
        )
        by_token = _get(adapter, PODS_PATH, headers={"Authorization": f"Bearer {CACHE_TOKEN}"})
        assert (by_header.status_code, by_token.status_code) == (200, 200)
    # One worker process, 10 s TTLs: the first request of each kind reaches the stand-in.
    assert len(standin.access_reviews_for_user("carol")) == sar_before + 1
    assert standin.reviews_for_token(CACHE_TOKEN) == token_before + 1


@pytest.mark.parametrize(
    ("path", "resource_attributes"),
    [
        pytest.param(
            "/apis/metrics.k8s.io/v1beta1/namespaces/kube-system/pods",
            {
                "namespace": "kube-system",
                "verb": "list",
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "resource": "pods",
            },
            id="metrics-pod-list",
        ),
        pytest.param(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/web/pods/%2A/http_requests"
            "?labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29",
            {
                "namespace": "web",
                "verb": "get",
                "group": "custom.metrics.k8s.io",
                "version": "v1beta2",
                "resource": "pods",
                "subresource": "http_requests",
                "name": "*",
            },
            id="custom-metrics-pods-star",
        ),
        pytest.param(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/queues/queue_depth"
            "?labelSelector=queue%3Djobs",
            {
                "namespace": "queues",
                "verb": "list",
                "group": "external.metrics.k8s.io",
                "version": "v1beta1",
                "resource": "queue_depth",
            },
            id="external-metric",
        ),
    ],
)
def test_subject_access_review_body_is_exact(
    adapter: RunningAdapter,
    pki: Pki,
    standin: KubeApiserverStandin,
    path: str,
    resource_attributes: dict[str, str],
) -> None:
    user = f"sar-checker-{uuid.uuid4().hex[:8]}"  # fresh, so no cached decision hides the call
    response = _get(
        adapter,
        path,
        cert=pki.front_proxy_cert,
        headers={
            "X-Remote-User": user,
            "X-Remote-Group": "system:serviceaccounts",
            "X-Remote-Extra-Authentication.kubernetes.io%2fpod-Name": "hpa-0",
        },
    )
    assert response.status_code == 200, response.text
    assert standin.access_reviews_for_user(user) == [
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "extra": {"authentication.kubernetes.io/pod-name": ["hpa-0"]},
                "groups": ["system:serviceaccounts", "system:authenticated"],
                "resourceAttributes": resource_attributes,
                "user": user,
            },
        }
    ]


def test_repeated_group_headers_stay_separate_groups(
    adapter: RunningAdapter, pki: Pki, standin: KubeApiserverStandin
) -> None:
    # requests cannot repeat a header, so this one goes through http.client line by line.
    context = ssl.create_default_context(cafile=str(adapter.server_ca_file))
    context.load_cert_chain(str(pki.front_proxy_cert))
    host, port = adapter.url.removeprefix("https://").split(":")
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    try:
        connection.putrequest("GET", PODS_PATH)
        connection.putheader("X-Remote-User", "comma-user")
        connection.putheader("X-Remote-Group", "team-a")
        connection.putheader("X-Remote-Group", "odd,name")
        connection.endheaders()
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 200
    assert body["groups"] == ["team-a", "odd,name", "system:authenticated"]


def test_no_token_appears_in_the_server_log(adapter: RunningAdapter, pki: Pki) -> None:
    for token in (HPA_TOKEN, BAD_TOKEN, DENIED_TOKEN):
        _get(adapter, PODS_PATH, headers={"Authorization": f"Bearer {token}"})
    log = adapter.log_text()
    assert "bearer token rejected by TokenReview" in log  # the log does talk about tokens...
    leaked = [token for token in ALL_TOKENS if token in log]
    assert leaked == []  # ...but never shows one


def test_tls_below_1_2_is_not_offered(tmp_path: Path) -> None:
    serving = ensure_serving_certificate(None, None, tmp_path)
    context = server_ssl_context(serving, client_ca_pem="")
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE
    assert (tmp_path / GENERATED_CERT_NAME).exists()


# -------------------------------------------------------------------------------------------
# --tls-min-version and --tls-cipher-suites over real handshakes


def _plain_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def serve_tls_policy_for_test(config_file: str) -> None:
    """Child-process entry point: serve a plain app with the TLS policy of the given flags."""
    config = json.loads(Path(config_file).read_text(encoding="utf-8"))
    policy, problems = tls_policy_from_flags(config["min_version"], config["cipher_suites"])
    if problems:
        raise SystemExit("; ".join(problems))
    AdapterServer(
        lambda: _plain_app,
        ServingCertificate(Path(config["cert_file"]), Path(config["key_file"]), policy),
        lambda: "",
        ServerOptions(bind="127.0.0.1:0", workers=1, threads=1, log_level="info"),
    ).run()


@contextlib.contextmanager
def _serving_with_tls_flags(
    directory: Path, min_version: str | None, cipher_suites: str | None
) -> Iterator[tuple[int, Path]]:
    """(port, CA file) of a server started with these flag values; stopped on exit."""
    serving = ensure_serving_certificate(None, None, directory / "certs")
    config_file = directory / "tls-policy.json"
    config_file.write_text(
        json.dumps(
            {
                "cert_file": str(serving.cert_file),
                "key_file": str(serving.key_file),
                "min_version": min_version,
                "cipher_suites": cipher_suites,
            }
        ),
        encoding="utf-8",
    )
    log_file = directory / "server.log"
    code = (
        "from tests.test_tls_serving import serve_tls_policy_for_test;"
        f" serve_tls_policy_for_test({str(config_file)!r})"
    )
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
    try:
        url = _wait_until_serving(process, log_file, serving.cert_file)
        yield int(url.rsplit(":", 1)[1]), serving.cert_file
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _handshake(
    port: int, ca_file: Path, maximum: ssl.TLSVersion, ciphers: str | None = None
) -> tuple[str | None, str]:
    """(protocol, cipher) negotiated by a client limited to ``maximum`` (and ``ciphers``)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.maximum_version = maximum
    if ciphers is not None:
        context.set_ciphers(ciphers)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT_SECONDS) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        cipher = tls.cipher()
        assert cipher is not None
        return tls.version(), cipher[0]


def test_tls_min_version_13_refuses_a_tls_12_client(tmp_path: Path) -> None:
    with _serving_with_tls_flags(tmp_path, "VersionTLS13", None) as (port, ca_file):
        assert _handshake(port, ca_file, ssl.TLSVersion.TLSv1_3)[0] == "TLSv1.3"
        with pytest.raises(ssl.SSLError, match=r"(?i)protocol version|alert"):
            _handshake(port, ca_file, ssl.TLSVersion.TLSv1_2)


def test_tls_cipher_suites_are_the_only_ones_offered_for_tls_12(tmp_path: Path) -> None:
    # The generated certificate is ECDSA. OpenSSL prefers AES-GCM on its own, so ChaCha20 being
    # chosen shows the list is used; kube-prometheus passes this legacy Go spelling.
    suites = "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    with _serving_with_tls_flags(tmp_path, None, suites) as (port, ca_file):
        assert _handshake(port, ca_file, ssl.TLSVersion.TLSv1_2) == (
            "TLSv1.2",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
        )
        with pytest.raises(ssl.SSLError, match=r"(?i)handshake failure|alert"):
            _handshake(port, ca_file, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES256-GCM-SHA384")
        # TLS 1.3 suites are not configurable (as in Go): a 1.3 client still gets in.
        assert _handshake(port, ca_file, ssl.TLSVersion.TLSv1_3)[0] == "TLSv1.3"
