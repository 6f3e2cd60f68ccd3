"""Errors of the WeCom connector: rejected callbacks and failed API calls."""

from __future__ import annotations

# HTTP status per rejection reason: 404 when we do not know the receiver, 403 when the request cannot be trusted
# (forged, replayed, meant for another corp), 413 when too large, 400 when it is trusted but unreadable.
_STATUS = {
    "unknown_connection": 404,
    "not_configured": 404,
    "bad_signature": 403,
    "unsigned": 403,
    "stale_timestamp": 403,
    "nonce_reused": 403,
    "bad_receive_id": 403,
    "body_too_large": 413,
}


class CallbackRejected(Exception):
    """A callback request siyu refuses; `reason` is the stable code logged and counted, never shown in detail."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

    @property
    def status_code(self) -> int:
        return _STATUS.get(self.reason, 400)


class WeComAPIError(Exception):
    """WeCom answered with a non-zero errcode (or could not be reached, see the subclasses)."""

    def __init__(self, errcode: int, errmsg: str, endpoint: str) -> None:
        super().__init__(f"WeCom {endpoint} failed: errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.endpoint = endpoint


class WeComTransportError(WeComAPIError):
    """No usable answer: timeout, connection error, HTTP 5xx or a body that is not JSON (errcode -2)."""

    def __init__(self, message: str, endpoint: str) -> None:
        super().__init__(-2, message, endpoint)
