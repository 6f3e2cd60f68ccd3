"""Input checks every service shares, so each field is refused the same way with its name attached."""

from __future__ import annotations

from siyu.core.errors import ValidationFailed

# PostgreSQL refuses NUL in text columns, and control characters in names only ever come from broken clients.
_FORBIDDEN = {chr(c) for c in range(32) if chr(c) not in "\t\n\r"} | {"\x7f"}
MAX_INT32 = 2**31 - 1


def clean_text(value: str, *, field: str, max_length: int, required: bool = False) -> str:
    """Strip `value`; refuse control characters, over-long and (when `required`) empty values."""
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} must be text", field=field)
    value = value.strip()
    if required and not value:
        raise ValidationFailed(f"{field} must not be empty", field=field)
    if any(ch in _FORBIDDEN for ch in value):
        raise ValidationFailed(f"{field} contains control characters", field=field)
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise ValidationFailed(f"{field} contains invalid characters", field=field)
    if len(value) > max_length:
        raise ValidationFailed(f"{field} is longer than {max_length} characters", field=field)
    return value


def clean_order(value: int, *, field: str = "order") -> int:
    """A sort order: a non-negative integer that fits the database column."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT32:
        raise ValidationFailed(f"{field} must be an integer from 0 to {MAX_INT32}", field=field)
    return value
