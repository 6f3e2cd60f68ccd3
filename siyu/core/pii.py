"""Personal data at rest: AES-256-GCM encryption plus keyed lookup hashes (blind indexes).

Values are stored as `v1:<base64(nonce || ciphertext)>`; the field name is bound as associated data so a
ciphertext copied into another column fails to decrypt. Lookups use HMAC-SHA256 with a separate key, so the
database never holds a plain phone number and an attacker with only the database cannot brute-force hashes.
Name search uses a blind index of character bigrams: it leaks bigram frequencies, which we accept in exchange
for search by partial name; phones allow exact lookup only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import unicodedata
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_VERSION = "v1"
_NON_DIGITS = re.compile(r"[^0-9]+")


def _key(setting: str) -> bytes:
    raw = getattr(settings, setting, "")
    if not raw:
        raise ImproperlyConfigured(f"{setting} is not set: run `siyu init-keys` or set the environment variable")
    key = base64.b64decode(raw)
    if len(key) != 32:
        raise ImproperlyConfigured(f"{setting} must be 32 bytes, base64-encoded")
    return key


@lru_cache(maxsize=4)
def _aead(raw_key: str) -> AESGCM:
    return AESGCM(_key("SIYU_PII_KEY"))


def _cipher() -> AESGCM:
    return _aead(settings.SIYU_PII_KEY)


def _hash_key() -> bytes:
    return _key("SIYU_PII_HASH_KEY")


def generate_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def encrypt(value: str, *, field: str) -> str:
    if value == "":
        return ""
    nonce = os.urandom(12)
    sealed = _cipher().encrypt(nonce, value.encode("utf-8"), field.encode())
    return f"{_VERSION}:{base64.b64encode(nonce + sealed).decode()}"


def decrypt(token: str, *, field: str) -> str:
    if token == "":
        return ""
    version, _, payload = token.partition(":")
    if version != _VERSION:
        raise ValueError(f"unknown PII token version {version!r}")
    blob = base64.b64decode(payload)
    return _cipher().decrypt(blob[:12], blob[12:], field.encode()).decode("utf-8")


def normalize_phone(phone: str) -> str:
    """Digits only, without the +86/0086 country prefix, so every spelling of a number hashes alike."""
    # NFKC folds full-width digits (１３８) to ASCII; any other non-ASCII digit is dropped, never hashed.
    digits = _NON_DIGITS.sub("", unicodedata.normalize("NFKC", phone))
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    elif len(digits) == 15 and digits.startswith("0086"):
        digits = digits[4:]
    return digits


def lookup_hash(value: str, *, kind: str) -> str:
    """Keyed hash for exact lookups; `kind` keeps phone hashes apart from other identity hashes."""
    mac = hmac.new(_hash_key(), f"{kind}:{value}".encode(), hashlib.sha256)
    return mac.hexdigest()


def phone_hash(phone: str) -> str:
    return lookup_hash(normalize_phone(phone), kind="phone")


def _token(text: str) -> str:
    return hmac.new(_hash_key(), f"name:{text}".encode(), hashlib.sha256).hexdigest()[:10]


def _grams(name: str) -> set[str]:
    clean = "".join(name.lower().split())
    grams = set(clean)  # single characters: a surname alone is a common search
    grams.update(clean[i : i + 2] for i in range(len(clean) - 1))
    return grams


def name_index(name: str) -> str:
    """Space-delimited blind tokens of the name's characters and bigrams."""
    if not name:
        return ""
    return " " + " ".join(sorted(_token(g) for g in _grams(name))) + " "


def name_query_tokens(query: str) -> list[str]:
    """Tokens a stored name must all contain to match `query` (bigrams, or the single character)."""
    clean = "".join(query.lower().split())
    if not clean:
        return []
    if len(clean) == 1:
        return [_token(clean)]
    return sorted({_token(clean[i : i + 2]) for i in range(len(clean) - 1)})


def mask_phone(phone: str) -> str:
    digits = normalize_phone(phone)
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def mask_name(name: str) -> str:
    if not name:
        return ""
    if len(name) == 1:
        return "*"
    return name[0] + "*" * (len(name) - 1)
