"""The Flask application: discovery, OpenAPI, the three metrics APIs and the ops endpoints.

Routes parse the request (``adapter.request_paths``), call a provider and write what it
returns; they never see PromQL. Every answer is ``Content-Type: application/json`` with
``kind`` and ``apiVersion`` (the health texts and ``/metrics`` aside), and every error is a
``Status`` object whose message says what to fix. Discovery answers 406 when the client accepts
only aggregated discovery, so that every aggregator version falls back to ``/apis/G/V``.

``create_app(settings, providers, clock)`` is the only way to build the app: no module-level
app, so tests build it with their own providers and clock. No exceptions of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from adapter.discovery_docs import (
    GROUP_VERSIONS,
    CustomMetricResource,
    DiscoveryError,
    api_group,
    api_group_list,
    custom_metrics_resource_list,
    external_metrics_resource_list,
    metrics_resource_list,
    negotiate_discovery,
)
from adapter.objects import (
    JsonObject,
    encode_json,
    status,
    status_internal,
    status_method_not_allowed,
    status_not_acceptable,
    status_not_found,
)
from adapter.openapi import openapi_v2, openapi_v3_group_version, openapi_v3_index
from adapter.ops import Operations, ops_blueprint
from adapter.providers import ProviderError, Providers
from adapter.request_paths import (
    CustomMetricsRequest,
    ExternalMetricsRequest,
    RequestPathError,
    parse_request,
)

LOG = logging.getLogger(__name__)

Clock = Callable[[], float]

NOT_FOUND_MESSAGE = "the server could not find the requested resource"


@dataclass(frozen=True)
class ApiSettings:
    """What the API layer needs besides providers."""

    build_version: str = "unversioned"


def json_response(document: JsonObject, code: int = 200) -> Response:
    return Response(encode_json(document), status=code, content_type="application/json")


def status_response(body: JsonObject) -> Response:
    code = body.get("code")
    return json_response(body, code if isinstance(code, int) else 500)


def _raw_path() -> str:
    """The path as sent (still percent-encoded), so ``%2A`` and ``%2F`` keep their meaning."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw.startswith("/"):
        return raw.partition("?")[0]
    return quote(request.path)


def _not_acceptable() -> Response | None:
    if negotiate_discovery(request.headers.get("Accept")) == "not_acceptable":
        return status_response(status_not_acceptable())
    return None


def create_app(
    settings: ApiSettings,
    providers: Providers,
    clock: Clock = time.time,
    *,
    operations: Operations | None = None,
) -> Flask:
    """The WSGI application serving every adapter path."""
    ops = operations if operations is not None else Operations()
    app = Flask("kubemetrics_adapter")
    app.url_map.strict_slashes = False
    # Werkzeug answers "a//b" (also a decoded "%2F" segment) with an HTML 308 redirect; clients of
    # an aggregated API expect a Status, so such paths are simply not found.
    app.url_map.merge_slashes = False
    # Flask's JSON provider is not used for bodies: encode_json keeps the builders' key order.

    def served(group: str) -> bool:
        return group in providers.served_groups()

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def record(response: Response) -> Response:
        started = g.get("started")
        if isinstance(started, float):
            ops.metrics.observe_request(
                request.path, response.status_code, time.perf_counter() - started
            )
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/apis")
    def apis() -> Response:
        return _not_acceptable() or json_response(api_group_list(providers.served_groups()))

    @app.get("/apis/<group>")
    def group_document(group: str) -> Response:
        if not served(group):
            return status_response(status_not_found(NOT_FOUND_MESSAGE))
        return _not_acceptable() or json_response(api_group(group))

    @app.get("/apis/<group>/<version>")
    def resource_list(group: str, version: str) -> Response:
        if not served(group) or version not in GROUP_VERSIONS.get(group, ()):
            return status_response(status_not_found(NOT_FOUND_MESSAGE))
        refused = _not_acceptable()
        if refused is not None:
            return refused
        registry = providers.registry()
        try:
            if group == "metrics.k8s.io":
                return json_response(metrics_resource_list())
            if group == "custom.metrics.k8s.io":
                entries = [
                    CustomMetricResource(str(i.group_resource), i.metric, i.namespaced)
                    for i in registry.custom_metrics()
                ]
                return json_response(custom_metrics_resource_list(version, entries))
            return json_response(external_metrics_resource_list(registry.external_metrics()))
        except DiscoveryError as err:
            LOG.error("discovery document for %s/%s: %s", group, version, err)
            return status_response(
                status_internal(str(err), hint="fix the rules so each resource has one scope")
            )

    @app.get("/apis/<group>/<version>/<path:_rest>")
    def metrics_request(group: str, version: str, _rest: str) -> Response:
        if not served(group):
            return status_response(status_not_found(NOT_FOUND_MESSAGE))
        try:
            parsed = parse_request(_raw_path(), request.query_string.decode("latin-1"))
        except RequestPathError as err:
            return status_response(status(err.status, err.reason, str(err)))
        try:
            if isinstance(parsed, CustomMetricsRequest):
                return json_response(providers.custom.handle(parsed))
            if isinstance(parsed, ExternalMetricsRequest):
                return json_response(providers.external.handle(parsed))
            if providers.resource is None or not providers.serves_resource_metrics():
                return status_response(status_not_found(NOT_FOUND_MESSAGE))
            return json_response(providers.resource.handle(parsed))
        except ProviderError as err:
            if err.code >= 500:
                LOG.warning("%s %s: %s", request.method, request.full_path, err)
            return status_response(err.status)

    @app.get("/openapi/v2")
    def openapi_v2_document() -> Response:
        return json_response(
            openapi_v2(providers.served_groups(), build_version=settings.build_version)
        )

    @app.get("/openapi/v3")
    def openapi_v3_document() -> Response:
        return json_response(
            openapi_v3_index(providers.served_groups(), build_version=settings.build_version)
        )

    @app.get("/openapi/v3/apis/<group>/<version>")
    def openapi_v3_group(group: str, version: str) -> Response:
        if not served(group) or version not in GROUP_VERSIONS.get(group, ()):
            return status_response(status_not_found(NOT_FOUND_MESSAGE))
        return json_response(
            openapi_v3_group_version(group, version, build_version=settings.build_version)
        )

    app.register_blueprint(ops_blueprint(ops, providers.explain))

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        if err.code == 405:
            return status_response(status_method_not_allowed(request.method, request.path))
        if err.code == 404:
            return status_response(status_not_found(NOT_FOUND_MESSAGE))
        code = err.code or 500
        return status_response(status(code, err.name.replace(" ", ""), err.description or ""))

    @app.errorhandler(Exception)
    def unexpected(err: Exception) -> Response:
        LOG.exception("unexpected error answering %s %s", request.method, request.path)
        return status_response(
            status_internal(f"{type(err).__name__} while answering {request.path}")
        )

    return app


def wsgi_app(app: Flask) -> Any:
    """The WSGI callable of ``app`` (for wrapping in middleware)."""
    return app.wsgi_app
