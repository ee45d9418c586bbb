"""Who is calling and may they: authentication, authorization and the WSGI middleware.

The adapter sits behind kube-apiserver's aggregation layer, so it trusts the caller identity the
aggregator forwards in ``X-Remote-*`` headers only when the TLS client certificate is the
front-proxy certificate; everyone else must bring a bearer token that a TokenReview accepts.
Every request outside the always-allowed health paths is then checked with a
SubjectAccessReview whose attributes are derived from the path the way the generic apiserver's
RequestInfo does it.

This module holds the decisions only. The TokenReview and SubjectAccessReview calls are behind
the ``TokenReviewer`` / ``AccessReviewer`` protocols (``adapter.kube_auth_client`` implements
them) and TLS verification of the client certificate happens in the TLS layer
(``adapter.tls``), which hands the verified certificate to the WSGI environ
(``adapter.wsgi_server``).

Exceptions::

    AuthError
     ├── AuthConfigError         bad request-header settings (ConfigMap key or flag named)
     ├── RequestPathError        a path the RequestInfo rules cannot turn into attributes
     └── ReviewUnavailableError  a TokenReview / SubjectAccessReview could not be obtained
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qs, unquote_to_bytes

from cryptography import x509
from cryptography.x509.oid import NameOID

from adapter.objects import (
    encode_json,
    status,
    status_bad_request,
    status_forbidden,
    status_unauthorized,
)

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

LOG = logging.getLogger(__name__)

AUTHENTICATED_GROUP = "system:authenticated"
# The generic apiserver's delegated authorizer skips the webhook for this group
# (DelegatingAuthorizationOptions.AlwaysAllowGroups); the aggregator's availability and
# discovery checks arrive as system:kube-aggregator in it.
DEFAULT_ALWAYS_ALLOW_GROUPS = ("system:masters",)
# Probes (kubelet, load balancers) carry no credentials. "/metrics" is here because the issue asks
# for scraping without auth; the generic apiserver would send it through SAR instead.
DEFAULT_ALWAYS_ALLOW_PATHS = (
    "/healthz",
    "/healthz/*",
    "/livez",
    "/livez/*",
    "/readyz",
    "/readyz/*",
    "/metrics",
)

# Keys the middleware and the TLS server agree on inside the WSGI environ.
ENVIRON_USER = "kubemetrics.user"
ENVIRON_ATTRIBUTES = "kubemetrics.request_attributes"
ENVIRON_PEER_CERTIFICATE = "kubemetrics.verified_peer_certificate"
ENVIRON_HEADER_LINES = "kubemetrics.header_lines"

CONFIGMAP_WHERE = "ConfigMap kube-system/extension-apiserver-authentication"


class AuthError(Exception):
    """Base of this module's errors."""


class AuthConfigError(AuthError):
    """Request-header settings are malformed; the message names the key or flag."""


class RequestPathError(AuthError):
    """The path cannot be turned into request attributes (e.g. ``/apis/g/v/watch``)."""


class ReviewUnavailableError(AuthError):
    """A review call failed (network, RBAC, server error). Never carries a token."""


# ---------------------------------------------------------------------------------------------
# Identities and settings


@dataclass(frozen=True)
class UserInfo:
    """An authenticated user as Kubernetes describes one (user.Info)."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestHeaderSettings:
    """How to read the front-proxy identity; mirrors the ``requestheader-*`` settings.

    ``client_ca_pem`` empty means request-header authentication is off: no certificate is
    asked for and every ``X-Remote-*`` header is ignored.
    """

    client_ca_pem: str = ""
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ("X-Remote-User",)
    uid_headers: tuple[str, ...] = ()
    group_headers: tuple[str, ...] = ("X-Remote-Group",)
    extra_header_prefixes: tuple[str, ...] = ("X-Remote-Extra-",)

    @property
    def enabled(self) -> bool:
        return bool(self.client_ca_pem.strip())

    def all_header_names(self) -> tuple[str, ...]:
        """Header names (and extra prefixes) that carry identity, for stripping downstream."""
        return (
            self.username_headers
            + self.uid_headers
            + self.group_headers
            + self.extra_header_prefixes
        )


def _json_string_list(data: Mapping[str, str], key: str, where: str) -> tuple[str, ...]:
    raw = data.get(key, "")
    if not raw.strip():
        return ()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as err:
        raise AuthConfigError(
            f"{where} key {key!r}: not JSON ({err.msg} at char {err.pos})"
        ) from None
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise AuthConfigError(f"{where} key {key!r}: expected a JSON array of strings, got {raw!r}")
    return tuple(value)


def request_header_settings_from_configmap(
    data: Mapping[str, str], where: str = CONFIGMAP_WHERE
) -> RequestHeaderSettings:
    """Settings from the ConfigMap's ``data``; list values are JSON arrays inside strings.

    A missing header key means an empty list, as in the generic apiserver; kube-apiserver always
    publishes them, so the defaults of the flags do not apply here.
    """
    ca_pem = data.get("requestheader-client-ca-file", "")
    if ca_pem.strip():
        check_ca_bundle(ca_pem, f"{where} key 'requestheader-client-ca-file'")
    return RequestHeaderSettings(
        client_ca_pem=ca_pem,
        allowed_names=_json_string_list(data, "requestheader-allowed-names", where),
        username_headers=_json_string_list(data, "requestheader-username-headers", where),
        uid_headers=_json_string_list(data, "requestheader-uid-headers", where),
        group_headers=_json_string_list(data, "requestheader-group-headers", where),
        extra_header_prefixes=_json_string_list(data, "requestheader-extra-headers-prefix", where),
    )


def check_ca_bundle(pem: str, where: str) -> None:
    """Raise AuthConfigError naming ``where`` unless ``pem`` holds at least one certificate."""
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as err:
        raise AuthConfigError(f"{where}: not a PEM certificate bundle ({err})") from None
    if not certificates:
        raise AuthConfigError(f"{where}: contains no certificate")


# ---------------------------------------------------------------------------------------------
# The request as authentication sees it


@dataclass(frozen=True)
class AuthRequest:
    """The parts of an HTTP request that authentication and authorization look at.

    ``header_lines`` keeps repeated headers as separate lines (one ``X-Remote-Group`` per group);
    ``verified_peer_certificate`` is the DER client certificate only if the TLS layer verified it
    against the request-header CA.
    """

    method: str
    path: str
    query: str = ""
    header_lines: tuple[tuple[str, str], ...] = ()
    verified_peer_certificate: bytes | None = None

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.header_lines if key.lower() == wanted]


def _environ_header_lines(environ: WSGIEnvironment) -> tuple[tuple[str, str], ...]:
    """Header lines from a plain WSGI environ, where repeated headers are already merged.

    Merged values are NOT split on commas: a group name may contain one, and splitting would let
    a crafted group name add groups. Under our gunicorn workers the real lines are available.
    """
    lines: list[tuple[str, str]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_") and isinstance(value, str):
            lines.append((key[5:].replace("_", "-").title(), value))
    return tuple(lines)


def auth_request_from_environ(environ: WSGIEnvironment) -> AuthRequest:
    lines = environ.get(ENVIRON_HEADER_LINES)
    header_lines = tuple(lines) if lines is not None else _environ_header_lines(environ)
    peer = environ.get(ENVIRON_PEER_CERTIFICATE)
    return AuthRequest(
        method=str(environ.get("REQUEST_METHOD", "GET")),
        path=str(environ.get("PATH_INFO", "") or "/"),
        query=str(environ.get("QUERY_STRING", "")),
        header_lines=header_lines,
        verified_peer_certificate=peer if isinstance(peer, bytes) else None,
    )


# ---------------------------------------------------------------------------------------------
# Authentication


def certificate_common_name(der: bytes) -> str:
    """Subject CN of a DER certificate; the last CN wins, as in Go's pkix.Name."""
    certificate = x509.load_der_x509_certificate(der)
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        return ""
    value = names[-1].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


_PERCENT_ESCAPE = re.compile(r"%(?![0-9a-fA-F]{2})")


def _unescape_extra_key(encoded: str) -> str:
    # Go's url.PathUnescape fails on a malformed escape and Kubernetes then keeps the raw key.
    if _PERCENT_ESCAPE.search(encoded):
        return encoded
    try:
        return unquote_to_bytes(encoded).decode("utf-8")
    except UnicodeDecodeError:
        return encoded


def user_from_request_headers(
    request: AuthRequest, settings: RequestHeaderSettings
) -> UserInfo | None:
    """The front-proxy identity in the headers; call only after the certificate checks passed."""
    name = ""
    for header in settings.username_headers:
        values = request.header_values(header)
        if values and values[0]:
            name = values[0]
            break
    if not name:
        return None
    uid = ""
    for header in settings.uid_headers:
        values = request.header_values(header)
        if values and values[0]:
            uid = values[0]
            break
    groups = [value for header in settings.group_headers for value in request.header_values(header)]
    extra: dict[str, list[str]] = {}
    for prefix in settings.extra_header_prefixes:
        lowered_prefix = prefix.lower()
        for key, value in request.header_lines:
            if key.lower().startswith(lowered_prefix):
                extra_key = _unescape_extra_key(key[len(prefix) :].lower())
                extra.setdefault(extra_key, []).append(value)
    return UserInfo(
        name=name,
        uid=uid,
        groups=tuple(group for group in groups if group),
        extra={key: tuple(values) for key, values in extra.items()},
    )


def with_authenticated_group(user: UserInfo) -> UserInfo:
    """Add system:authenticated as Kubernetes' AuthenticatedGroupAdder does."""
    if user.name == "system:anonymous" or AUTHENTICATED_GROUP in user.groups:
        return user
    return UserInfo(user.name, user.uid, (*user.groups, AUTHENTICATED_GROUP), user.extra)


def bearer_token(request: AuthRequest) -> str | None:
    """The token of ``Authorization: Bearer <token>``; other schemes are not ours to judge."""
    values = request.header_values("Authorization")
    if not values:
        return None
    scheme, _, token = values[0].strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


class TokenReviewer(Protocol):
    def review_token(self, token: str) -> UserInfo | None:
        """The user the token belongs to, None if rejected; ReviewUnavailableError on failure."""
        ...


class RequestHeaderSource(Protocol):
    def current(self) -> RequestHeaderSettings:
        """The request-header settings in force now (may refresh from the API)."""
        ...


@dataclass(frozen=True)
class StaticRequestHeaderSource:
    """Settings fixed at start-up, from ``--requestheader-*`` flags."""

    settings: RequestHeaderSettings

    def current(self) -> RequestHeaderSettings:
        return self.settings


@dataclass(frozen=True)
class Authentication:
    """Outcome of authentication: the user, or None with the reasons each method gave."""

    user: UserInfo | None
    method: str = ""
    failures: tuple[str, ...] = ()


class Authenticator:
    """Request-header (front-proxy) first, then bearer token, as delegated authn orders them."""

    def __init__(
        self,
        request_header: RequestHeaderSource,
        token_reviewer: TokenReviewer | None,
    ) -> None:
        self._request_header = request_header
        self._token_reviewer = token_reviewer

    def request_header_settings(self) -> RequestHeaderSettings:
        return self._request_header.current()

    def authenticate(self, request: AuthRequest) -> Authentication:
        failures: list[str] = []
        settings = self._request_header.current()
        if request.verified_peer_certificate is not None and settings.enabled:
            common_name = certificate_common_name(request.verified_peer_certificate)
            if settings.allowed_names and common_name not in settings.allowed_names:
                failures.append(
                    f"front-proxy certificate CN {common_name!r} is not in "
                    f"requestheader-allowed-names {list(settings.allowed_names)}"
                )
            else:
                user = user_from_request_headers(request, settings)
                if user is not None:
                    return Authentication(with_authenticated_group(user), "front-proxy")
                failures.append("front-proxy certificate without a username header")
        token = bearer_token(request)
        if token is not None:
            if self._token_reviewer is None:
                failures.append("bearer token given but token review is disabled")
            else:
                try:
                    user = self._token_reviewer.review_token(token)
                except ReviewUnavailableError as err:
                    failures.append(f"token review failed: {err}")
                else:
                    if user is not None:
                        return Authentication(with_authenticated_group(user), "bearer-token")
                    failures.append("bearer token rejected by TokenReview")
        if not failures:
            failures.append("no front-proxy certificate and no bearer token")
        return Authentication(None, "", tuple(failures))


# ---------------------------------------------------------------------------------------------
# Request attributes (the generic apiserver's RequestInfo)


@dataclass(frozen=True)
class RequestAttributes:
    """What is being asked for, in the terms a SubjectAccessReview uses."""

    verb: str
    path: str
    is_resource_request: bool
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


_API_PREFIXES = ("api", "apis")
_GROUPLESS_API_PREFIXES = ("api",)
_SPECIAL_VERBS = ("proxy", "watch")
_SPECIAL_VERBS_NO_SUBRESOURCES = ("proxy",)
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


def _split_path(path: str) -> list[str]:
    trimmed = path.strip("/")
    return trimmed.split("/") if trimmed else []


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _field_selector_exact_name(selector: str) -> str | None:
    """Value of ``metadata.name=`` / ``==`` in a field selector (RequiresExactMatch)."""
    for term in _split_unescaped(selector, ","):
        for operator in ("!=", "==", "="):
            key, found, value = term.partition(operator)
            if found:
                if operator != "!=" and key.strip() == "metadata.name":
                    return re.sub(r"\\(.)", r"\1", value)
                break
    return None


def _valid_path_segment_name(name: str) -> bool:
    return name not in (".", "..") and "/" not in name and "%" not in name


def request_attributes(method: str, path: str, query: str = "") -> RequestAttributes:
    """Attributes of a request, following apiserver's RequestInfoFactory.NewRequestInfo.

    ``path`` is the percent-decoded path (WSGI ``PATH_INFO``), so ``%2A`` is already ``*``.
    """
    non_resource = RequestAttributes(verb=method.lower(), path=path, is_resource_request=False)
    parts = _split_path(path)
    if len(parts) < 3 or parts[0] not in _API_PREFIXES:
        return non_resource
    prefix = parts[0]
    parts = parts[1:]
    group = ""
    if prefix not in _GROUPLESS_API_PREFIXES:
        if len(parts) < 3:
            return non_resource
        group = parts[0]
        parts = parts[1:]
    version = parts[0]
    parts = parts[1:]

    if parts[0] in _SPECIAL_VERBS:
        if len(parts) < 2:
            raise RequestPathError(f"unable to determine kind and namespace from path {path!r}")
        verb = parts[0]
        parts = parts[1:]
    else:
        verb = _METHOD_VERBS.get(method.upper(), "")

    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]

    resource = parts[0]
    name = parts[1] if len(parts) >= 2 else ""
    subresource = ""
    if len(parts) >= 3 and verb not in _SPECIAL_VERBS_NO_SUBRESOURCES:
        subresource = parts[2]

    if not name and verb == "get":
        params = parse_qs(query, keep_blank_values=True)
        watch = params.get("watch")
        verb = "watch" if watch and watch[0].lower() not in ("0", "false") else "list"
        field_selector = params.get("fieldSelector")
        if field_selector:
            selected = _field_selector_exact_name(field_selector[0])
            if selected is not None and _valid_path_segment_name(selected):
                name = selected
    if not name and verb == "delete":
        verb = "deletecollection"

    return RequestAttributes(
        verb=verb,
        path=path,
        is_resource_request=True,
        api_group=group,
        api_version=version,
        namespace=namespace,
        resource=resource,
        subresource=subresource,
        name=name,
    )


# ---------------------------------------------------------------------------------------------
# Wire bodies


def token_review_body(token: str) -> dict[str, object]:
    """authentication.k8s.io/v1 TokenReview request; audiences omitted (the API server's own)."""
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }


def user_from_token_review_status(status: Mapping[str, object]) -> UserInfo | None:
    """The user of a TokenReview ``status`` (JSON dict), None unless authenticated."""
    if status.get("authenticated") is not True:
        return None
    raw_user = status.get("user")
    user = raw_user if isinstance(raw_user, Mapping) else {}
    name = user.get("username")
    if not isinstance(name, str) or not name:
        return None
    uid = user.get("uid")
    groups = user.get("groups")
    extra = user.get("extra")
    return UserInfo(
        name=name,
        uid=uid if isinstance(uid, str) else "",
        groups=tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else (),
        extra={
            str(key): tuple(str(v) for v in values)
            for key, values in (extra.items() if isinstance(extra, Mapping) else ())
            if isinstance(values, list)
        },
    )


def subject_access_review_body(user: UserInfo, attributes: RequestAttributes) -> dict[str, object]:
    """authorization.k8s.io/v1 SubjectAccessReview as the webhook authorizer sends it.

    Empty fields are left out, matching Go's ``omitempty`` on every spec field.
    """
    spec: dict[str, object] = {"user": user.name}
    if user.uid:
        spec["uid"] = user.uid
    if user.groups:
        spec["groups"] = list(user.groups)
    if user.extra:
        spec["extra"] = {key: list(values) for key, values in user.extra.items()}
    if attributes.is_resource_request:
        resource_attributes = {
            "namespace": attributes.namespace,
            "verb": attributes.verb,
            "group": attributes.api_group,
            "version": attributes.api_version,
            "resource": attributes.resource,
            "subresource": attributes.subresource,
            "name": attributes.name,
        }
        spec["resourceAttributes"] = {k: v for k, v in resource_attributes.items() if v}
    else:
        spec["nonResourceAttributes"] = {"path": attributes.path, "verb": attributes.verb}
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": spec,
    }


# ---------------------------------------------------------------------------------------------
# Authorization


@dataclass(frozen=True)
class Decision:
    """An authorization answer. ``reason`` comes from the reviewer and may be empty."""

    allowed: bool
    reason: str = ""


def decision_from_access_review_status(status: Mapping[str, object]) -> Decision:
    reason = status.get("reason")
    error = status.get("evaluationError")
    text = reason if isinstance(reason, str) else ""
    if isinstance(error, str) and error and status.get("allowed") is not True:
        text = f"{text}; evaluation error: {error}" if text else f"evaluation error: {error}"
    return Decision(allowed=status.get("allowed") is True, reason=text)


class AccessReviewer(Protocol):
    def review_access(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
        """Ask the API server; ReviewUnavailableError when the call fails."""
        ...


class Authorizer:
    """Always-allow groups first, then a SubjectAccessReview."""

    def __init__(
        self,
        reviewer: AccessReviewer,
        always_allow_groups: Sequence[str] = DEFAULT_ALWAYS_ALLOW_GROUPS,
    ) -> None:
        self._reviewer = reviewer
        self._always_allow_groups = tuple(always_allow_groups)

    def authorize(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
        if any(group in self._always_allow_groups for group in user.groups):
            return Decision(allowed=True, reason="member of an always-allowed group")
        return self._reviewer.review_access(user, attributes)


# ---------------------------------------------------------------------------------------------
# Status objects (metav1.Status as the generic apiserver writes them)


def forbidden_status(
    user: UserInfo, attributes: RequestAttributes, reason: str
) -> dict[str, object]:
    """responsewriters.ForbiddenStatusError → apierrors.NewForbidden, field for field."""
    if not attributes.is_resource_request:
        return status_forbidden(
            user=user.name, verb=attributes.verb, path=attributes.path, reason=reason
        )
    return status_forbidden(
        user=user.name,
        verb=attributes.verb,
        group=attributes.api_group,
        resource=attributes.resource,
        subresource=attributes.subresource,
        name=attributes.name,
        namespace=attributes.namespace,
        reason=reason,
    )


# ---------------------------------------------------------------------------------------------
# WSGI middleware

_REASON_PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    500: "Internal Server Error",
}


def path_is_always_allowed(path: str, patterns: Iterable[str]) -> bool:
    """Exact match, or prefix match for patterns ending in ``*`` (as AlwaysAllowPaths)."""
    for pattern in patterns:
        if pattern.endswith("*"):
            if path.startswith(pattern[:-1]):
                return True
        elif path == pattern:
            return True
    return False


def _identity_environ_keys(settings: RequestHeaderSettings) -> tuple[str, ...]:
    return tuple(
        "HTTP_" + name.upper().replace("-", "_")
        for name in (*settings.username_headers, *settings.uid_headers, *settings.group_headers)
    )


def _strip_credentials(environ: WSGIEnvironment, settings: RequestHeaderSettings) -> None:
    """Remove Authorization and identity headers so the app cannot trust them by mistake."""
    environ.pop("HTTP_AUTHORIZATION", None)
    for key in _identity_environ_keys(settings):
        environ.pop(key, None)
    prefixes = tuple(
        "HTTP_" + prefix.upper().replace("-", "_") for prefix in settings.extra_header_prefixes
    )
    if prefixes:
        for key in [k for k in environ if k.startswith(prefixes)]:
            del environ[key]
    lines = environ.get(ENVIRON_HEADER_LINES)
    if lines is not None:
        drop = {name.lower() for name in settings.all_header_names()} | {"authorization"}
        extra = tuple(prefix.lower() for prefix in settings.extra_header_prefixes)
        environ[ENVIRON_HEADER_LINES] = tuple(
            (key, value)
            for key, value in lines
            if key.lower() not in drop and not (extra and key.lower().startswith(extra))
        )


class AuthMiddleware:
    """Wrap any WSGI app: 401 unless authenticated, 403 unless authorized.

    On success the app finds the ``UserInfo`` under ``environ[ENVIRON_USER]`` and the
    ``RequestAttributes`` under ``environ[ENVIRON_ATTRIBUTES]``; Authorization and identity
    headers are removed from the environ first.
    """

    def __init__(
        self,
        app: WSGIApplication,
        authenticator: Authenticator,
        authorizer: Authorizer,
        always_allow_paths: Sequence[str] = DEFAULT_ALWAYS_ALLOW_PATHS,
    ) -> None:
        self._app = app
        self._authenticator = authenticator
        self._authorizer = authorizer
        self._always_allow_paths = tuple(always_allow_paths)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = auth_request_from_environ(environ)
        settings = self._authenticator.request_header_settings()
        if path_is_always_allowed(request.path, self._always_allow_paths):
            _strip_credentials(environ, settings)
            return self._app(environ, start_response)

        authentication = self._authenticator.authenticate(request)
        _strip_credentials(environ, settings)
        if authentication.user is None:
            LOG.info(
                "unauthenticated request method=%s path=%s reasons=%s",
                request.method,
                request.path,
                "; ".join(authentication.failures),
            )
            return self._reply(start_response, status_unauthorized())
        user = authentication.user

        try:
            attributes = request_attributes(request.method, request.path, request.query)
        except RequestPathError as err:
            return self._reply(start_response, status_bad_request(str(err)))
        try:
            decision = self._authorizer.authorize(user, attributes)
        except ReviewUnavailableError as err:
            LOG.error(
                "authorization check failed user=%s path=%s: %s", user.name, request.path, err
            )
            return self._reply(
                start_response,
                status(
                    500,
                    "InternalError",
                    "Internal error occurred: could not check authorization with a "
                    f"SubjectAccessReview: {err}",
                ),
            )
        if not decision.allowed:
            LOG.info(
                "forbidden user=%s verb=%s path=%s reason=%s",
                user.name,
                attributes.verb,
                request.path,
                decision.reason,
            )
            return self._reply(start_response, forbidden_status(user, attributes, decision.reason))

        environ[ENVIRON_USER] = user
        environ[ENVIRON_ATTRIBUTES] = attributes
        return self._app(environ, start_response)

    def _reply(self, start_response: StartResponse, failure: Mapping[str, object]) -> list[bytes]:
        code = failure["code"]
        assert isinstance(code, int)
        body = encode_json(failure)
        start_response(
            f"{code} {_REASON_PHRASES.get(code, 'Error')}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("X-Content-Type-Options", "nosniff"),
            ],
        )
        return [body]
