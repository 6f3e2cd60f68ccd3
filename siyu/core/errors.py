"""Errors every context raises; the API and console turn them into 4xx answers naming the field."""

from __future__ import annotations


class SiyuError(Exception):
    """Base of every expected, user-facing error."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationFailed(SiyuError):
    status_code = 422


class NotFound(SiyuError):
    """Raised for missing rows and, on purpose, for rows of another tenant or outside the actor's scope."""

    status_code = 404


class PermissionDenied(SiyuError):
    status_code = 403


class Conflict(SiyuError):
    status_code = 409
