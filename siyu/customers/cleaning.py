"""Validation of customer input shared by the customers services (services.py, identity.py, resolver.py)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from siyu.core import pii
from siyu.core.errors import ValidationFailed
from siyu.core.validation import clean_text
from siyu.customers.models import Identity

MAX_NAME = 64
MAX_CITY = 50
MAX_ADDRESS = 200
MAX_IDENTITY = 128
_PHONE_CHARS = re.compile(r"^[0-9+\-() ]+$")


def clean_name(name: str) -> str:
    return clean_text(name, field="name", max_length=MAX_NAME)


def clean_city(city: str) -> str:
    return clean_text(city, field="city", max_length=MAX_CITY)


def clean_address(address: str) -> str:
    return clean_text(address, field="address", max_length=MAX_ADDRESS)


def clean_phone(phone: str) -> str:
    if phone.strip() == "":
        return ""
    # Only the characters people write phone numbers with; anything else is a typo, not a number to guess at.
    if not _PHONE_CHARS.match(unicodedata.normalize("NFKC", phone)):
        raise ValidationFailed("phone may contain only digits, spaces, '+', '-' and parentheses", field="phone")
    digits = pii.normalize_phone(phone)
    if not (len(digits) == 11 and digits.startswith("1")):
        raise ValidationFailed("phone must be an 11-digit mainland mobile number", field="phone")
    return digits


def clean_choice(value: Any, choices: Iterable[Any], field: str) -> Any:
    allowed = list(choices)
    if value not in allowed:
        raise ValidationFailed(f"{field} must be one of {', '.join(map(str, allowed))}", field=field)
    return value


def identity_value(kind: str, value: str, *, field: str = "identities") -> str:
    """The value of identity (kind, value) as stored: phones as their keyed hash, others as given (trimmed)."""
    clean_choice(kind, Identity.Kind.values, f"{field}.kind")
    value = clean_text(value, field=f"{field}.value", max_length=MAX_IDENTITY, required=True)
    if kind == Identity.Kind.PHONE:
        return pii.phone_hash(clean_phone(value))
    return value
