"""The WeCom callback endpoint (回调URL): transport only, see webhooks (checks) and services (store)."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from siyu.wecom import webhooks
from siyu.wecom.errors import CallbackRejected
from siyu.wecom.services import raw_callback_store

logger = logging.getLogger("siyu.wecom.callback")


def _reject(request: HttpRequest, key: str, exc: CallbackRejected) -> HttpResponse:
    logger.warning(
        "rejected WeCom callback %s %s: reason=%s detail=%s ip=%s",
        request.method,
        key[:64],
        exc.reason,
        exc.detail[:200],
        request.META.get("REMOTE_ADDR", ""),
    )
    # The reason code only: enough for an operator comparing with the log, nothing an attacker can use.
    return HttpResponse(exc.reason, status=exc.status_code, content_type="text/plain; charset=utf-8")


# WeCom signs its requests itself and cannot send a CSRF token.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def callback(request: HttpRequest, key: str) -> HttpResponse:
    """GET: URL verification, echo the decrypted echostr. POST: verify, store, acknowledge with an empty 200."""
    params = request.GET
    try:
        if request.method == "GET":
            echo = webhooks.verify_url(
                key=key,
                msg_signature=params.get("msg_signature"),
                timestamp=params.get("timestamp"),
                nonce=params.get("nonce"),
                echostr=params.get("echostr"),
            )
            # Exactly the plaintext: no quotes, no newline, no BOM (wecom-api.md §2.2).
            return HttpResponse(echo.encode("utf-8"), content_type="text/plain; charset=utf-8")
        # Refuse an oversized body before reading it into memory.
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if declared.isdigit() and int(declared) > webhooks.MAX_BODY_BYTES:
            raise CallbackRejected("body_too_large", f"{declared} bytes declared")
        verified = webhooks.verify_message(
            key=key,
            msg_signature=params.get("msg_signature"),
            timestamp=params.get("timestamp"),
            nonce=params.get("nonce"),
            body=request.body,
        )
    except CallbackRejected as exc:
        return _reject(request, key, exc)
    row, created = raw_callback_store(verified=verified)
    if not created:
        logger.info("duplicate WeCom callback %s for row %s: acknowledged, nothing stored", key[:64], row.id)
    return HttpResponse(b"", content_type="text/plain; charset=utf-8")
