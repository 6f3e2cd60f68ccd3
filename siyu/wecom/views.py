"""The WeCom callback endpoint (回调URL): transport only, see webhooks (checks) and intake (store, answer).

Production servers route POSTs to this URL around Django's middleware (siyu.wecom.fastpath); this view is the
same intake for every other way in (the test client, a server without the WSGI route).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from siyu.wecom import intake, webhooks
from siyu.wecom.errors import CallbackRejected


def _answer(reply: intake.Reply) -> HttpResponse:
    return HttpResponse(reply.body, status=reply.status, content_type="text/plain; charset=utf-8")


# WeCom signs its requests itself and cannot send a CSRF token.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def callback(request: HttpRequest, key: str) -> HttpResponse:
    """GET: URL verification, echo the decrypted echostr. POST: verify, store, acknowledge with an empty 200."""
    params = request.GET
    remote_addr = request.META.get("REMOTE_ADDR", "")
    if request.method == "POST":
        return _answer(
            intake.receive_post(
                key=key,
                params=params,
                declared_length=request.META.get("CONTENT_LENGTH") or "0",
                read_body=lambda: request.body,
                remote_addr=remote_addr,
            )
        )
    try:
        echo = webhooks.verify_url(
            key=key,
            msg_signature=params.get("msg_signature"),
            timestamp=params.get("timestamp"),
            nonce=params.get("nonce"),
            echostr=params.get("echostr"),
        )
    except CallbackRejected as exc:
        return _answer(intake.reject("GET", key, exc, remote_addr))
    # Exactly the plaintext: no quotes, no newline, no BOM (wecom-api.md §2.2).
    return HttpResponse(echo.encode("utf-8"), content_type="text/plain; charset=utf-8")
