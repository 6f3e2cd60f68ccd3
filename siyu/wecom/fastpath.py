"""The WSGI route for WeCom's event pushes: POST /wecom/callback/<key>/ answered without Django's request stack.

A busy corp pushes thousands of events a second, and each needs only what siyu.wecom.intake does: verify,
decrypt, store, answer. Sessions, authentication, locale, CSRF, messages and templates do nothing for a request
WeCom signs itself, yet they cost several times the intake's own work; so siyu.wsgi puts this route in front of
Django, and only these POSTs take it. Everything else — the URL-verification GET included — goes to Django, and
the Django view (siyu.wecom.views.callback) answers the same POSTs identically for any other way in.

Database connections: Django closes its connections at the end of each request (request_finished); this route
sends no request signals and keeps one connection per server thread open, which is what makes it cheap on
SQLite. A connection that fails is closed by the intake and opened afresh by the next request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_plus

from siyu.wecom import intake

logger = logging.getLogger("siyu.wecom.callback")

PREFIX = "/wecom/callback/"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _key(path: str) -> str | None:
    """The <key> of /wecom/callback/<key>/, or None for any other path (Django then answers, e.g. 404)."""
    if not path.startswith(PREFIX) or not path.endswith("/"):
        return None
    key = path[len(PREFIX) : -1]
    return key if key and "/" not in key else None


def _params(query: str) -> dict[str, str]:
    """The query string's parameters, the last value winning (as Django's QueryDict.get does).

    urllib's parse_qsl costs more than the rest of the request's parsing; the signed query is three short
    values, which only need unquoting when they contain an escape.
    """
    params: dict[str, str] = {}
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        if name:
            params[name] = value
    return params


def _read_body(environ: dict[str, Any], declared: str) -> bytes:
    stream = environ["wsgi.input"]
    if declared.isdigit():
        return bytes(stream.read(int(declared)))
    # No Content-Length (chunked): read at most one byte past the limit, so the intake can refuse it.
    return bytes(stream.read(intake.webhooks.MAX_BODY_BYTES + 1))


def _callback(environ: dict[str, Any], start_response: Callable[..., Any], key: str) -> Iterable[bytes]:
    declared = environ.get("CONTENT_LENGTH") or ""
    try:
        reply = intake.receive_post(
            key=key,
            params=_params(environ.get("QUERY_STRING", "")),
            declared_length=declared or "0",
            read_body=lambda: _read_body(environ, declared),
            remote_addr=environ.get("REMOTE_ADDR", ""),
            coalesce_processing=True,
        )
    except Exception:
        # Never a traceback to the sender; WeCom retries a 500.
        logger.exception("WeCom callback %s failed", key[:64])
        reply = intake.Reply(500, b"error")
    status = HTTPStatus(reply.status)
    start_response(
        f"{status.value} {status.phrase}",
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(reply.body))),
            ("X-Content-Type-Options", "nosniff"),
        ],
    )
    return [reply.body]


def with_callback_route(app: WSGIApp) -> WSGIApp:
    """Wrap siyu's WSGI application: WeCom's callback POSTs go to the intake, every other request to `app`."""

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST":
            # WSGI hands the path over as latin-1; Django reads it as UTF-8, and so does the key here.
            raw = environ.get("PATH_INFO", "")
            key = _key(raw.encode("latin-1", "replace").decode("utf-8", "replace"))
            if key is not None:
                return _callback(environ, start_response, key)
        return app(environ, start_response)

    return application
