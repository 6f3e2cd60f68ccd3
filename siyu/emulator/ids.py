"""Identifiers shaped like WeCom's, derived from (corp, kind, counter) so a replay produces the same ids."""

from __future__ import annotations

import base64
import hashlib
import string

_ALPHABET = string.ascii_letters + string.digits


def _digest(*parts: object) -> bytes:
    return hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()


def _alnum(raw: bytes, length: int) -> str:
    number = int.from_bytes(raw, "big")
    out = []
    for _ in range(length):
        number, rem = divmod(number, len(_ALPHABET))
        out.append(_ALPHABET[rem])
    return "".join(out)


def external_userid(corp_id: str, n: int) -> str:
    # Self-built apps see "wm" + 30 characters (third-party apps see "wo..."; not emulated).
    return "wm" + _alnum(_digest(corp_id, "ext", n), 30)


def unionid(corp_id: str, n: int) -> str:
    return "o" + _alnum(_digest(corp_id, "union", n), 27)


def chat_id(corp_id: str, n: int) -> str:
    return "wr" + _alnum(_digest(corp_id, "chat", n), 30)


def tag_id(corp_id: str, n: int) -> str:
    # Corp tag ids look like "et" + 30 characters; tag groups the same.
    return "et" + _alnum(_digest(corp_id, "tag", n), 30)


def config_id(corp_id: str, n: int) -> str:
    return _digest(corp_id, "contact_way", n).hex()[:32]


def welcome_code(corp_id: str, n: int) -> str:
    return _alnum(_digest(corp_id, "welcome", n), 43)


def msgid(corp_id: str, n: int) -> str:
    return "msg" + _alnum(_digest(corp_id, "msg", n), 29)


def secret(seed: int, corp_id: str, agentid: int) -> str:
    return _alnum(_digest(seed, corp_id, "secret", agentid), 43)


def callback_token(seed: int, corp_id: str) -> str:
    return _alnum(_digest(seed, corp_id, "callback-token"), 15)


def encoding_aes_key(seed: int, corp_id: str) -> str:
    # 43 characters of base64 = 32 key bytes without the trailing "=" (wecom-api.md §2.1).
    return base64.b64encode(_digest(seed, corp_id, "aes-key")).decode()[:43]


def archive_msgid(corp_id: str, n: int, seconds: int) -> str:
    # The session archive's msgids look like "11930598857592605935_1603875608": a large number, "_", unix seconds.
    number = int.from_bytes(_digest(corp_id, "archive", n)[:8], "big")
    return f"{number}_{seconds}"


def join_way_id(corp_id: str, n: int) -> str:
    return _digest(corp_id, "join_way", n).hex()[:32]


def moment_id(corp_id: str, n: int) -> str:
    return "mom" + _alnum(_digest(corp_id, "moment", n), 29)


def jobid(corp_id: str, n: int) -> str:
    return "job" + _alnum(_digest(corp_id, "job", n), 29)


def media_id(corp_id: str, n: int) -> str:
    # Temporary media ids look like "3a8asd892asd8asd" ... in the docs: 1 digit then letters and digits, 64 long.
    return "3" + _alnum(_digest(corp_id, "media", n), 63)
