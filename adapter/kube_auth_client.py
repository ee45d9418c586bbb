"""Kubernetes calls behind authentication: TokenReview, SubjectAccessReview, the authn ConfigMap.

Each review goes to kube-apiserver through the official ``kubernetes`` client and is cached
briefly, as the generic apiserver's delegated authn/authz does (10 s by default), so a busy HPA
does not cost one review per request. Tokens are cached under their SHA-256 only; a token never
appears in a cache key, a log line or an error message. The TokenReview answer echoes the token
in ``spec``, so only its ``status`` is ever read.

Exceptions: ``adapter.auth.ReviewUnavailableError`` (from ``adapter.auth``'s tree) when a call
fails; ``adapter.auth.AuthConfigError`` when the ConfigMap content is malformed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from kubernetes import client as kube_client
from kubernetes.client.exceptions import ApiException

from adapter.auth import (
    AuthConfigError,
    Decision,
    RequestAttributes,
    RequestHeaderSettings,
    ReviewUnavailableError,
    UserInfo,
    decision_from_access_review_status,
    request_header_settings_from_configmap,
    subject_access_review_body,
    token_review_body,
    user_from_token_review_status,
)

LOG = logging.getLogger(__name__)

Clock = Callable[[], float]
K = TypeVar("K")
V = TypeVar("V")

DEFAULT_REVIEW_TIMEOUT_SECONDS = 10.0
AUTHENTICATION_CONFIGMAP_NAMESPACE = "kube-system"
AUTHENTICATION_CONFIGMAP_NAME = "extension-apiserver-authentication"


class TTLCache(Generic[K, V]):
    """A small thread-safe cache whose entries expire; the oldest go first when it is full."""

    def __init__(self, clock: Clock, max_entries: int = 4096) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires_at, value = entry
            if self._clock() >= expires_at:
                del self._entries[key]
                return None
            return value

    def put(self, key: K, value: V, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            return
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (self._clock() + ttl_seconds, value)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _api_failure(what: str, err: Exception) -> ReviewUnavailableError:
    """An error that says what failed without echoing bodies (a TokenReview body has the token)."""
    if isinstance(err, ApiException):
        hint = ""
        if err.status in (401, 403):
            hint = (
                "; the adapter's service account needs the system:auth-delegator ClusterRole "
                "(create tokenreviews and subjectaccessreviews)"
            )
        return ReviewUnavailableError(f"{what}: HTTP {err.status} {err.reason}{hint}")
    return ReviewUnavailableError(f"{what}: {type(err).__name__}")


def _create_review(
    create: Callable[..., object], model: object, timeout: float, what: str
) -> dict[str, object]:
    """POST one review and return its ``status``; any failure is a ReviewUnavailableError."""
    try:
        response = create(
            model,
            _content_type="application/json",
            _preload_content=False,
            _request_timeout=timeout,
        )
    except Exception as err:
        failure = _api_failure(what, err)
        LOG.error("%s", failure)
        raise failure from None
    return _review_status(response, what)


def _review_status(response: object, what: str) -> dict[str, object]:
    """The ``status`` of a raw review answer (read unparsed, so exactly what the server sent)."""
    data = getattr(response, "data", b"")
    try:
        document = json.loads(data)
    except (TypeError, ValueError):
        raise ReviewUnavailableError(f"{what}: the answer is not JSON") from None
    status = document.get("status") if isinstance(document, dict) else None
    return status if isinstance(status, dict) else {}


def _token_review_model(token: str) -> kube_client.V1TokenReview:
    # The client wants its model; from_dict round-trips our wire dict unchanged (tested).
    model = kube_client.V1TokenReview.from_dict(token_review_body(token))
    assert model is not None
    return model


def _access_review_model(body: dict[str, object]) -> kube_client.V1SubjectAccessReview:
    model = kube_client.V1SubjectAccessReview.from_dict(body)
    assert model is not None
    return model


@dataclass(frozen=True)
class _TokenVerdict:
    """Cached TokenReview outcome; ``user`` None records a rejected token."""

    user: UserInfo | None


class KubeTokenReviewer:
    """adapter.auth.TokenReviewer backed by ``POST .../authentication.k8s.io/v1/tokenreviews``.

    Accepted and rejected tokens are cached for ``ttl_seconds``; failed calls are not cached.
    """

    def __init__(
        self,
        api_client: kube_client.ApiClient,
        *,
        ttl_seconds: float = 10.0,
        clock: Clock = time.monotonic,
        timeout_seconds: float = DEFAULT_REVIEW_TIMEOUT_SECONDS,
        max_entries: int = 4096,
    ) -> None:
        self._api = kube_client.AuthenticationV1Api(api_client)
        self._ttl = ttl_seconds
        self._timeout = timeout_seconds
        self._cache: TTLCache[str, _TokenVerdict] = TTLCache(clock, max_entries)

    def cache_size(self) -> int:
        return len(self._cache)

    def review_token(self, token: str) -> UserInfo | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cache.get(key)
        if cached is not None:
            return cached.user
        status = _create_review(
            self._api.create_token_review,
            _token_review_model(token),
            self._timeout,
            "TokenReview failed",
        )
        user = user_from_token_review_status(status)
        if user is None:
            error = status.get("error")
            LOG.info(
                "bearer token rejected by TokenReview token_sha256_prefix=%s error=%s",
                key[:12],
                error if isinstance(error, str) else "",
            )
        self._cache.put(key, _TokenVerdict(user), self._ttl)
        return user


def _access_cache_key(body: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class KubeAccessReviewer:
    """adapter.auth.AccessReviewer backed by ``POST .../subjectaccessreviews``.

    Allowed and denied answers are cached for separate TTLs; failed calls are not cached.
    """

    def __init__(
        self,
        api_client: kube_client.ApiClient,
        *,
        allowed_ttl_seconds: float = 10.0,
        denied_ttl_seconds: float = 10.0,
        clock: Clock = time.monotonic,
        timeout_seconds: float = DEFAULT_REVIEW_TIMEOUT_SECONDS,
        max_entries: int = 4096,
    ) -> None:
        self._api = kube_client.AuthorizationV1Api(api_client)
        self._allowed_ttl = allowed_ttl_seconds
        self._denied_ttl = denied_ttl_seconds
        self._timeout = timeout_seconds
        self._cache: TTLCache[str, Decision] = TTLCache(clock, max_entries)

    def cache_size(self) -> int:
        return len(self._cache)

    def review_access(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
        body = subject_access_review_body(user, attributes)
        key = _access_cache_key(body)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        status = _create_review(
            self._api.create_subject_access_review,
            _access_review_model(body),
            self._timeout,
            "SubjectAccessReview failed",
        )
        decision = decision_from_access_review_status(status)
        self._cache.put(key, decision, self._allowed_ttl if decision.allowed else self._denied_ttl)
        return decision


class AuthenticationConfigMapSource:
    """adapter.auth.RequestHeaderSource reading kube-system/extension-apiserver-authentication.

    Refreshed lazily: the first call after ``refresh_seconds`` re-reads the ConfigMap. When a
    refresh fails the last good settings stay in force (and the failure is logged), so an API
    blip does not lock the aggregator out; before the first success, request-header
    authentication is off.
    """

    def __init__(
        self,
        api_client: kube_client.ApiClient,
        *,
        namespace: str = AUTHENTICATION_CONFIGMAP_NAMESPACE,
        name: str = AUTHENTICATION_CONFIGMAP_NAME,
        refresh_seconds: float = 60.0,
        clock: Clock = time.monotonic,
        timeout_seconds: float = DEFAULT_REVIEW_TIMEOUT_SECONDS,
    ) -> None:
        self._api = kube_client.CoreV1Api(api_client)
        self._namespace = namespace
        self._name = name
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._timeout = timeout_seconds
        self._lock = threading.Lock()
        self._settings = RequestHeaderSettings()
        self._next_refresh = float("-inf")
        self.reads = 0

    @property
    def where(self) -> str:
        return f"ConfigMap {self._namespace}/{self._name}"

    def current(self) -> RequestHeaderSettings:
        with self._lock:
            if self._clock() >= self._next_refresh:
                self._refresh()
            return self._settings

    def _refresh(self) -> None:
        self._next_refresh = self._clock() + self._refresh_seconds
        self.reads += 1
        try:
            config_map = self._api.read_namespaced_config_map(
                self._name, self._namespace, _request_timeout=self._timeout
            )
        except ApiException as err:
            LOG.error(
                "cannot read %s: HTTP %s %s; the adapter's service account needs the "
                "extension-apiserver-authentication-reader Role in kube-system",
                self.where,
                err.status,
                err.reason,
            )
            return
        except Exception as err:
            LOG.error("cannot read %s: %s", self.where, type(err).__name__)
            return
        data = config_map.data or {}
        try:
            settings = request_header_settings_from_configmap(data, self.where)
        except AuthConfigError as err:
            LOG.error("ignoring new content of %s: %s", self.where, err)
            return
        if not settings.enabled:
            LOG.warning(
                "%s has no requestheader-client-ca-file: requests through the aggregator "
                "cannot be authenticated",
                self.where,
            )
        self._settings = settings
