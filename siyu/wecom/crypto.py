"""WeCom callback crypto (加解密方案): signatures, AES-256-CBC message encryption and the XML envelope.

The protocol (wecom-api.md §2, official doc path 90968):

* signature = lowercase hex SHA1 of the lexicographically sorted, concatenated [token, timestamp, nonce, encrypted];
* key = base64decode(EncodingAESKey + "="), 32 bytes; IV = key[:16]; AES-256-CBC;
* plaintext = random(16) || len(msg) as 4 bytes big-endian || msg (UTF-8) || receive id (the corp id for a
  self-built app), padded with PKCS#7 to a multiple of **32** bytes (not AES's 16);
* ciphertext travels base64-encoded, inside `<xml><Encrypt>...</Encrypt></xml>` for POSTs and as `echostr` for
  the GET that verifies the callback URL.

Both sides of the protocol live here: siyu's callback endpoint decrypts and verifies, the offline emulator imports
this module to sign and encrypt the callbacks it sends. Every failure raises `CallbackCryptoError` whose `reason`
is a short, stable, log-friendly code; messages never contain key material or plaintext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import string
import struct
from xml.etree.ElementTree import Element, TreeBuilder
from xml.parsers import expat

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "BLOCK_SIZE",
    "CallbackCryptoError",
    "WeComCrypto",
    "new_callback_token",
    "new_encoding_aes_key",
    "parse_xml",
]

BLOCK_SIZE = 32  # WeCom's PKCS#7 block size; AES itself works in 16-byte blocks.
_PREFIX_LEN = 16
_LEN_FIELD = struct.Struct(">I")


class CallbackCryptoError(Exception):
    """A callback that cannot be trusted or read; `reason` is a stable code for logs and metrics.

    Reasons: bad_signature, bad_base64, bad_ciphertext, bad_padding, bad_length, bad_receive_id, bad_utf8,
    malformed_xml, missing_encrypt.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class _Forbidden(Exception):
    """A DTD, an entity declaration or an external reference: never part of a WeCom document."""


def _forbid(*_: object) -> None:
    raise _Forbidden


def parse_xml(data: bytes | str) -> Element:
    """Parse WeCom XML with DTDs, entity declarations and external references refused.

    The same refusals as defusedxml (forbid_dtd, forbid_entities, forbid_external), made on expat directly with
    the C TreeBuilder as its target: defusedxml runs Python code for every element, and every callback is parsed
    twice (the envelope, then the event) on the endpoint's hot path. Without a DTD no entity can be declared, so
    nothing can expand, and an undeclared entity is an error. Namespaces are not processed (WeCom uses none).
    The root must be `<xml>`; anything else is not a WeCom document.
    """
    builder = TreeBuilder()
    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _forbid
    parser.EntityDeclHandler = _forbid
    parser.UnparsedEntityDeclHandler = _forbid
    parser.ExternalEntityRefHandler = _forbid
    parser.buffer_text = True  # one text node per element, not one per chunk expat reads
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
        root = builder.close()
    except (expat.ExpatError, _Forbidden, ValueError) as exc:
        raise CallbackCryptoError("malformed_xml", type(exc).__name__) from exc
    if root.tag != "xml":
        raise CallbackCryptoError("malformed_xml", f"root element is <{root.tag}>, not <xml>")
    return root


def _cdata(value: str) -> str:
    # "]]>" would end the section early; split it across two sections, the standard escape.
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


# WeCom's admin console accepts only letters and digits in the callback Token and the EncodingAESKey.
_ALPHANUMERIC = string.ascii_letters + string.digits


def new_callback_token(length: int = 32) -> str:
    """A random callback Token (at most 32 letters and digits), as WeCom's "random" button makes one."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


def new_encoding_aes_key() -> str:
    """A random EncodingAESKey: 43 letters and digits, i.e. 32 random bytes in base64 without the final '='.

    Every 43-character base64 string decodes to 32 bytes, so drawing the characters directly is as good as
    encoding random bytes, and avoids '+' and '/', which WeCom's admin console refuses.
    """
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(43))


class WeComCrypto:
    """Signs, encrypts and decrypts WeCom callbacks for one app (token, EncodingAESKey, receive id)."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if len(encoding_aes_key) != 43:
            raise ValueError("EncodingAESKey must be 43 characters (base64 of 32 bytes without the trailing '=')")
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error as exc:
            raise ValueError("EncodingAESKey is not valid base64") from exc
        if len(key) != 32:  # pragma: no cover - 43 valid base64 characters always decode to 32 bytes
            raise ValueError("EncodingAESKey must decode to 32 bytes")
        self.token = token
        self.receive_id = receive_id
        self._receive_id_bytes = receive_id.encode("utf-8")
        self._key = key
        self._iv = key[:16]
        # The cipher's parameters never change: checked and built once, not on every callback.
        self._cipher = Cipher(algorithms.AES(key), modes.CBC(key[:16]))

    # -- signature -------------------------------------------------------------------------------------------

    def signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        """SHA1 hex of the sorted, concatenated token, timestamp, nonce and ciphertext."""
        # Sorted as UTF-8 bytes, as the reference SDKs do; for UTF-8 this equals code-point order anyway.
        parts = sorted(p.encode("utf-8") for p in (self.token, timestamp, nonce, encrypted))
        return hashlib.sha1(b"".join(parts)).hexdigest()  # noqa: S324 - SHA1 is what the protocol prescribes

    def _check_signature(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        expected = self.signature(timestamp, nonce, encrypted)
        # Constant-time, so response timing does not reveal how much of a forged signature was right.
        if not hmac.compare_digest(expected.encode(), msg_signature.strip().lower().encode("utf-8")):
            raise CallbackCryptoError("bad_signature")

    # -- cipher ----------------------------------------------------------------------------------------------

    def encrypt(self, plaintext: str, *, random_prefix: bytes | None = None) -> str:
        """Encrypt `plaintext` for this receive id; `random_prefix` (16 bytes) only for reproducible tests."""
        prefix = os.urandom(_PREFIX_LEN) if random_prefix is None else random_prefix
        if len(prefix) != _PREFIX_LEN:
            raise ValueError(f"random_prefix must be {_PREFIX_LEN} bytes")
        msg = plaintext.encode("utf-8")
        raw = prefix + _LEN_FIELD.pack(len(msg)) + msg + self._receive_id_bytes
        pad = BLOCK_SIZE - len(raw) % BLOCK_SIZE  # 1..32: a full block of 32 when already aligned
        raw += bytes([pad]) * pad
        encryptor = self._cipher.encryptor()
        return base64.b64encode(encryptor.update(raw) + encryptor.finalize()).decode("ascii")

    def decrypt(self, encrypted: str) -> str:
        """Decrypt a base64 ciphertext, checking padding, length and that it was meant for our receive id."""
        try:
            data = base64.b64decode(encrypted.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CallbackCryptoError("bad_base64") from exc
        if not data or len(data) % 16:
            raise CallbackCryptoError("bad_ciphertext", f"{len(data)} bytes is not a whole number of AES blocks")
        decryptor = self._cipher.decryptor()
        raw = decryptor.update(data) + decryptor.finalize()
        pad = raw[-1]
        # Strict PKCS#7: every padding byte carries the pad length. The reference SDKs only read the last byte;
        # checking all of them turns a wrong key or a tampered block into a clean rejection instead of garbage.
        if not 1 <= pad <= BLOCK_SIZE or pad > len(raw) or raw[-pad:] != bytes([pad]) * pad:
            raise CallbackCryptoError("bad_padding")
        body = raw[_PREFIX_LEN:-pad]
        if len(body) < _LEN_FIELD.size:
            raise CallbackCryptoError("bad_length", "plaintext shorter than its header")
        (msg_len,) = _LEN_FIELD.unpack_from(body)
        if msg_len > len(body) - _LEN_FIELD.size:
            raise CallbackCryptoError("bad_length", "message length exceeds the plaintext")
        msg = body[_LEN_FIELD.size : _LEN_FIELD.size + msg_len]
        receive_id = body[_LEN_FIELD.size + msg_len :]
        if not hmac.compare_digest(receive_id, self._receive_id_bytes):
            raise CallbackCryptoError("bad_receive_id")
        try:
            return msg.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CallbackCryptoError("bad_utf8") from exc

    # -- the protocol's two inbound requests -----------------------------------------------------------------

    def verify_url(self, *, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """Check the URL-verification GET and return the plaintext the endpoint must echo."""
        self._check_signature(msg_signature, timestamp, nonce, echostr)
        return self.decrypt(echostr)

    def decrypt_message(self, *, body: bytes, msg_signature: str, timestamp: str, nonce: str) -> str:
        """Verify and decrypt a POSTed `<xml><Encrypt>` envelope; returns the inner XML as text."""
        root = parse_xml(body)
        node = root.find("Encrypt")
        encrypted = (node.text or "").strip() if node is not None else ""
        if not encrypted:
            raise CallbackCryptoError("missing_encrypt")
        self._check_signature(msg_signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)

    # -- the sending side (the emulator, and tests) ----------------------------------------------------------

    def encrypt_message(self, *, plaintext: str, timestamp: str, nonce: str) -> tuple[str, str]:
        """Encrypt and sign `plaintext`; returns (encrypted, msg_signature)."""
        encrypted = self.encrypt(plaintext)
        return encrypted, self.signature(timestamp, nonce, encrypted)

    def build_envelope(self, *, to_user: str, encrypted: str, agent_id: str = "") -> bytes:
        """The POST body WeCom sends: ToUserName (the corp id), Encrypt and AgentID (empty when none)."""
        return (
            "<xml>"
            f"<ToUserName>{_cdata(to_user)}</ToUserName>"
            f"<Encrypt>{_cdata(encrypted)}</Encrypt>"
            f"<AgentID>{_cdata(agent_id)}</AgentID>"
            "</xml>"
        ).encode()
