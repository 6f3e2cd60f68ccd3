"""The REST API (/api/v1): one NinjaAPI, token-authenticated, with one JSON error shape for every failure.

Errors: a SiyuError answers its status code with {"detail", "field"}; request validation answers 422 with
every offending field; malformed JSON 400; a missing or bad token 401. Anything else is a bug: it is logged
and answers a bare 500 (the test suite, schemathesis included, proves no request reaches it).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError, ValidationErrorContext
from typing_extensions import override

from siyu.api.auth import TokenAuth
from siyu.api.routers import (
    campaigns,
    channels,
    customers,
    group_codes,
    inheritance,
    keyword_rules,
    leads,
    lifecycle,
    me,
    org,
    privacy,
    segments,
    storecodes,
    tags,
)
from siyu.core.errors import SiyuError

logger = logging.getLogger(__name__)

API_VERSION = "1.0.0"

# Where a validation error's `loc` starts: the parameter source, then (for bodies) the parameter's name.
_LOC_PREFIX = {"body": 2, "query": 1, "path": 1, "header": 1, "cookie": 1, "form": 2, "file": 1}


class SiyuNinjaAPI(NinjaAPI):
    """NinjaAPI whose validation errors locate fields inside lists too.

    ninja renames a flattened `Query[Schema]` field's location only on an exact match, so an error in the
    second `tag` of `?tag=1&tag=x` would be reported at `filters.tag.1`; matching the longest known prefix
    reports it at `tag.1`, the name the client sent.
    """

    @override
    def validation_error_from_error_contexts(self, error_contexts: list[ValidationErrorContext]) -> ValidationError:
        errors: list[dict[str, Any]] = []
        for context in error_contexts:
            model = context.model
            reverse: dict[tuple[Any, ...], tuple[Any, ...]] = model.__ninja_flatten_map_reverse__
            for error in context.pydantic_validation_error.errors(include_url=False, include_input=False):
                loc = tuple(error["loc"])
                for cut in range(len(loc), 0, -1):
                    if loc[:cut] in reverse:
                        loc = reverse[loc[:cut]] + loc[cut:]
                        break
                errors.append({"loc": (model.__ninja_param_source__, *loc), "msg": error["msg"], "type": error["type"]})
        return ValidationError(errors)


api = SiyuNinjaAPI(
    title="siyu API",
    version=API_VERSION,
    description=(
        "The siyu (私域) REST API. Authenticate with `Authorization: Bearer <token>` (create one with "
        "`siyu api-token create`); a token acts with its member's role and data scope. Personal data is "
        "masked everywhere except `POST /customers/{id}/reveal`, which is audited. Errors are JSON: "
        '`{"detail": message, "field": name or null, "errors": [...]}`.'
    ),
    urls_namespace="api-v1",
    auth=TokenAuth(),
)
api.add_router("", me.router)
api.add_router("", customers.router)
api.add_router("", tags.router)
api.add_router("", org.router)
api.add_router("", inheritance.router)
api.add_router("", channels.router)
api.add_router("", group_codes.router)
api.add_router("", storecodes.router)
api.add_router("", campaigns.router)
api.add_router("", keyword_rules.router)
api.add_router("", segments.router)
api.add_router("", lifecycle.router)
api.add_router("", privacy.router)
api.add_router("", leads.router)


def _error(request: HttpRequest, status: int, detail: str, field: str | None = None, **extra: Any) -> HttpResponse:
    return api.create_response(request, {"detail": detail, "field": field, **extra}, status=status)


@api.exception_handler(SiyuError)
def on_siyu_error(request: HttpRequest, exc: SiyuError) -> HttpResponse:
    if exc.status_code == 422:
        # Same shape as request validation errors, so clients read one list whichever layer refused the input.
        errors = [{"field": exc.field, "message": exc.message}]
        return _error(request, 422, exc.message, exc.field, errors=errors)
    return _error(request, exc.status_code, exc.message, exc.field)


# pydantic names the union member that failed inside `loc` ("str-enum[LifecycleStage]", "constrained-int",
# "none"); those are not fields a client sent, so they are dropped from field names.
_UNION_TAGS = {"none", "int", "str", "float", "bool"}


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and (part in _UNION_TAGS or "[" in part or "-" in part)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """`("body", "payload", "identities", 0, "kind")` → "identities.0.kind"; None for the whole body."""
    parts = list(loc)[_LOC_PREFIX.get(str(loc[0]), 1) :] if loc else []
    return ".".join(str(p) for p in parts if not _is_union_tag(p)) or None


def _field_errors(raw: list[dict[str, Any]]) -> list[dict[str, str | None]]:
    """One entry per (field, message); a union's "Input should be None" only when nothing else explains it."""
    errors: list[dict[str, str | None]] = []
    for e in raw:
        # pydantic prefixes messages raised by validators with "Value error, "; the field name says enough.
        message = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        error = {"field": _field_name(e.get("loc", ())), "message": message}
        if error not in errors:
            errors.append(error)
    explained = {e["field"] for e in errors if e["message"] != "Input should be None"}
    return [e for e in errors if e["message"] != "Input should be None" or e["field"] not in explained]


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = _field_errors(exc.errors)
    detail = "; ".join(f"{e['field'] or 'request body'}: {e['message']}" for e in errors) or "invalid request"
    return _error(request, 422, detail, errors[0]["field"] if errors else None, errors=errors)


@api.exception_handler(AuthenticationError)
def on_authentication_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = _error(request, 401, "missing, unknown or revoked API token; send Authorization: Bearer <token>")
    response["WWW-Authenticate"] = 'Bearer realm="siyu"'
    return response


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    # ninja raises HttpError(400, "Cannot parse request body") for malformed JSON.
    return _error(request, exc.status_code, exc.message)


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, "not found")


@api.exception_handler(RequestDataTooBig)
def on_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return _error(request, 413, "request body too large")


@api.exception_handler(SuspiciousOperation)
def on_suspicious(request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
    return _error(request, 400, "bad request")


@api.exception_handler(Exception)
def on_unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    # A bug, never an expected outcome: log it with the traceback and answer without internals.
    logger.error("unhandled error in %s %s", request.method, request.path, exc_info=exc)
    return _error(request, 500, "internal error")
