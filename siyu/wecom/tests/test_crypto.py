"""siyu's WeCom callback crypto: the published vectors (wecom-api.md §2.5), tampering, and interop with wechatpy.

wechatpy (`wechatpy.enterprise.crypto.WeChatCrypto`, a test-only dependency) is the independent implementation:
each side must decrypt what the other encrypts, over many random messages, keys and receive ids.
"""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException

from siyu.wecom.crypto import CallbackCryptoError, WeComCrypto

TOKEN = "123456"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
CORP_ID = "wx49f0ab532d5d035a"

# Vector A: URL verification (GET).
A_TIMESTAMP, A_NONCE = "1411443780", "437374425"
A_ECHOSTR = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
A_SIGNATURE = "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"

# Vector B: an incoming POST.
B_TIMESTAMP, B_NONCE = "1411525903", "461056294"
B_SIGNATURE = "74d92dfeb87ba7c714f89d98870ae5eb62dff26d"
B_ENCRYPT = (
    "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dG"
    "ymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4"
    "hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYE"
    "vccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0="
)
B_BODY = (
    "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n"
    f"<Encrypt><![CDATA[{B_ENCRYPT}]]></Encrypt>\n"
    "<AgentID><![CDATA[1]]></AgentID>\n</xml>"
).encode()
B_MESSAGE = (
    "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n"
    "<FromUserName><![CDATA[messense]]></FromUserName>\n"
    "<CreateTime>1411525903</CreateTime>\n"
    "<MsgType><![CDATA[text]]></MsgType>\n"
    "<Content><![CDATA[test]]></Content>\n"
    "<MsgId>4363689963896700987</MsgId>\n"
    "<AgentID>1</AgentID>\n"
    "</xml>"
)

# Vector C: a passive reply encrypted with the fixed random prefix "1234567890123456".
C_MESSAGE = (
    "<xml>\n"
    "<MsgType><![CDATA[text]]></MsgType>\n"
    "<Content><![CDATA[test]]></Content>\n"
    "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n"
    "<ToUserName><![CDATA[messense]]></ToUserName>\n"
    "<AgentID>1</AgentID>\n"
    "<CreateTime>1411525903</CreateTime>\n"
    "</xml>"
)
C_ENCRYPT = (
    "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtOb"
    "vesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8"
    "NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O"
    "5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
)
C_SIGNATURE = "407518b7649e86ef23978113f92d27afa9296533"


@pytest.fixture
def crypto() -> WeComCrypto:
    return WeComCrypto(TOKEN, AES_KEY, CORP_ID)


def test_derived_iv_matches_the_published_value(crypto: WeComCrypto) -> None:
    assert crypto._iv.hex() == "916c4f115d94103cb15a998f74a0b717"


# -- vector A ----------------------------------------------------------------------------------------------------


def test_vector_a_signature(crypto: WeComCrypto) -> None:
    assert crypto.signature(A_TIMESTAMP, A_NONCE, A_ECHOSTR) == A_SIGNATURE


def test_vector_a_url_verification_returns_the_echo(crypto: WeComCrypto) -> None:
    echo = crypto.verify_url(msg_signature=A_SIGNATURE, timestamp=A_TIMESTAMP, nonce=A_NONCE, echostr=A_ECHOSTR)
    assert echo == "5927782489442352469"


def test_vector_a_with_another_nonce_is_rejected(crypto: WeComCrypto) -> None:
    with pytest.raises(CallbackCryptoError) as info:
        crypto.verify_url(msg_signature=A_SIGNATURE, timestamp=A_TIMESTAMP, nonce="437374424", echostr=A_ECHOSTR)
    assert info.value.reason == "bad_signature"


def test_vector_a_plaintext_layout() -> None:
    # Decrypt by hand to pin the layout the vector documents: prefix, length 19, message, receive id.
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = base64.b64decode(AES_KEY + "=")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    raw = decryptor.update(base64.b64decode(A_ECHOSTR)) + decryptor.finalize()
    assert raw[:16] == b"2304fc2fe146f1f8"  # wechatpy's prefix is 16 ASCII characters
    assert int.from_bytes(raw[16:20], "big") == 19
    assert raw[20:39] == b"5927782489442352469"
    assert raw[39 : 39 + len(CORP_ID)] == CORP_ID.encode()


# -- vector B ----------------------------------------------------------------------------------------------------


def test_vector_b_signature(crypto: WeComCrypto) -> None:
    assert crypto.signature(B_TIMESTAMP, B_NONCE, B_ENCRYPT) == B_SIGNATURE


def test_vector_b_decrypt_message(crypto: WeComCrypto) -> None:
    inner = crypto.decrypt_message(body=B_BODY, msg_signature=B_SIGNATURE, timestamp=B_TIMESTAMP, nonce=B_NONCE)
    assert inner == B_MESSAGE
    assert len(inner.encode()) == 281


def test_vector_b_with_a_wrong_timestamp_is_rejected(crypto: WeComCrypto) -> None:
    with pytest.raises(CallbackCryptoError) as info:
        crypto.decrypt_message(body=B_BODY, msg_signature=B_SIGNATURE, timestamp="1411525904", nonce=B_NONCE)
    assert info.value.reason == "bad_signature"


def test_vector_b_for_another_corp_is_rejected() -> None:
    other = WeComCrypto(TOKEN, AES_KEY, "wwsomeoneelse")
    with pytest.raises(CallbackCryptoError) as info:
        other.decrypt_message(body=B_BODY, msg_signature=B_SIGNATURE, timestamp=B_TIMESTAMP, nonce=B_NONCE)
    assert info.value.reason == "bad_receive_id"


# -- vector C ----------------------------------------------------------------------------------------------------


def test_vector_c_encrypts_deterministically(crypto: WeComCrypto) -> None:
    assert len(C_MESSAGE.encode()) == 247
    encrypted = crypto.encrypt(C_MESSAGE, random_prefix=b"1234567890123456")
    assert encrypted == C_ENCRYPT
    assert len(base64.b64decode(encrypted)) == 288
    assert crypto.signature(B_TIMESTAMP, B_NONCE, encrypted) == C_SIGNATURE
    assert crypto.decrypt(encrypted) == C_MESSAGE


def test_encrypt_message_signs_what_it_encrypts(crypto: WeComCrypto) -> None:
    encrypted, signature = crypto.encrypt_message(plaintext=C_MESSAGE, timestamp=B_TIMESTAMP, nonce=B_NONCE)
    assert signature == crypto.signature(B_TIMESTAMP, B_NONCE, encrypted)
    body = crypto.build_envelope(to_user=CORP_ID, encrypted=encrypted, agent_id="1")
    assert (
        body
        == (
            f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            "<AgentID><![CDATA[1]]></AgentID></xml>"
        ).encode()
    )
    assert crypto.decrypt_message(body=body, msg_signature=signature, timestamp=B_TIMESTAMP, nonce=B_NONCE) == C_MESSAGE


# -- padding edge cases ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 11, 12, 13, 43, 44, 45])
def test_padding_is_pkcs7_to_32_bytes(crypto: WeComCrypto, length: int) -> None:
    # 16 + 4 + len + 18 (receive id): with length 12 (or 44) the plaintext is already aligned and gets a full
    # extra block of 32 bytes of 0x20.
    message = "x" * length
    raw_len = 16 + 4 + length + len(CORP_ID)
    encrypted = crypto.encrypt(message)
    assert len(base64.b64decode(encrypted)) == raw_len + (32 - raw_len % 32)
    assert crypto.decrypt(encrypted) == message


# -- tampering and malformed input -------------------------------------------------------------------------------


def _flip(encrypted: str, index: int) -> str:
    data = bytearray(base64.b64decode(encrypted))
    data[index] ^= 0x01
    return base64.b64encode(bytes(data)).decode()


def test_a_flipped_bit_in_the_last_block_breaks_the_padding(crypto: WeComCrypto) -> None:
    # In CBC a flipped bit in block n-1 flips the same bit of the last plaintext block, i.e. the padding.
    tampered = _flip(C_ENCRYPT, -17)
    with pytest.raises(CallbackCryptoError) as info:
        crypto.decrypt(tampered)
    assert info.value.reason == "bad_padding"


def test_wrong_key_is_rejected() -> None:
    other_key = base64.b64encode(os.urandom(32)).decode().rstrip("=")
    with pytest.raises(CallbackCryptoError) as info:
        WeComCrypto(TOKEN, other_key, CORP_ID).decrypt(C_ENCRYPT)
    assert info.value.reason in {"bad_padding", "bad_length", "bad_receive_id", "bad_utf8"}


@pytest.mark.parametrize(
    ("encrypted", "reason"),
    [
        ("not base64!!", "bad_base64"),
        ("", "bad_ciphertext"),
        (base64.b64encode(b"short").decode(), "bad_ciphertext"),
    ],
)
def test_garbage_ciphertext_is_rejected(crypto: WeComCrypto, encrypted: str, reason: str) -> None:
    with pytest.raises(CallbackCryptoError) as info:
        crypto.decrypt(encrypted)
    assert info.value.reason == reason


def test_a_length_field_beyond_the_plaintext_is_rejected(crypto: WeComCrypto) -> None:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = base64.b64decode(AES_KEY + "=")
    raw = b"r" * 16 + (10_000).to_bytes(4, "big") + b"hello" + CORP_ID.encode()
    raw += bytes([32 - len(raw) % 32]) * (32 - len(raw) % 32)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    forged = base64.b64encode(encryptor.update(raw) + encryptor.finalize()).decode()
    with pytest.raises(CallbackCryptoError) as info:
        crypto.decrypt(forged)
    assert info.value.reason == "bad_length"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "malformed_xml"),
        (b"not xml at all", "malformed_xml"),
        (b"<xml><Encrypt>abc</Encrypt>", "malformed_xml"),
        (b"<html><Encrypt>abc</Encrypt></html>", "malformed_xml"),
        (b"<xml><ToUserName>x</ToUserName></xml>", "missing_encrypt"),
        (b"<xml><Encrypt><![CDATA[]]></Encrypt></xml>", "missing_encrypt"),
        # Entity expansion ("billion laughs") and external entities are refused before anything is expanded.
        (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
            b"<xml><Encrypt>&lol2;</Encrypt></xml>",
            "malformed_xml",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Encrypt>&e;</Encrypt></xml>',
            "malformed_xml",
        ),
    ],
)
def test_malformed_envelopes_are_rejected(crypto: WeComCrypto, body: bytes, reason: str) -> None:
    with pytest.raises(CallbackCryptoError) as info:
        crypto.decrypt_message(body=body, msg_signature=B_SIGNATURE, timestamp=B_TIMESTAMP, nonce=B_NONCE)
    assert info.value.reason == reason


@pytest.mark.parametrize("key", ["", "short", AES_KEY + "A", AES_KEY[:-1] + "!"])
def test_a_bad_encoding_aes_key_is_refused_at_construction(key: str) -> None:
    with pytest.raises(ValueError, match="EncodingAESKey"):
        WeComCrypto(TOKEN, key, CORP_ID)


def test_random_prefix_must_be_16_bytes(crypto: WeComCrypto) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        crypto.encrypt("x", random_prefix=b"short")


def test_cdata_terminator_in_the_envelope_is_escaped(crypto: WeComCrypto) -> None:
    encrypted, signature = crypto.encrypt_message(plaintext="hi", timestamp="1", nonce="2")
    body = crypto.build_envelope(to_user="a]]>b", encrypted=encrypted)
    assert crypto.decrypt_message(body=body, msg_signature=signature, timestamp="1", nonce="2") == "hi"


# -- interop with wechatpy ---------------------------------------------------------------------------------------

aes_keys = st.binary(min_size=32, max_size=32).map(lambda key: base64.b64encode(key).decode().rstrip("="))
receive_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=32).map(lambda s: "ww" + s)
tokens = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=32)
digits = st.integers(min_value=0, max_value=10**10).map(str)
# Any text WeCom could carry: CJK, emoji, control characters, XML metacharacters (the ciphertext hides them all).
messages = st.text(max_size=3000)


@settings(max_examples=200, deadline=None)
@given(key=aes_keys, receive_id=receive_ids, token=tokens, message=messages, timestamp=digits, nonce=digits)
def test_wechatpy_decrypts_what_we_encrypt(
    key: str, receive_id: str, token: str, message: str, timestamp: str, nonce: str
) -> None:
    ours = WeComCrypto(token, key, receive_id)
    theirs = WeChatCrypto(token, key, receive_id)
    encrypted, signature = ours.encrypt_message(plaintext=message, timestamp=timestamp, nonce=nonce)
    body = ours.build_envelope(to_user=receive_id, encrypted=encrypted, agent_id="1000002")
    assert theirs.decrypt_message(body.decode(), signature, timestamp, nonce) == message
    assert theirs.check_signature(signature, timestamp, nonce, encrypted) == message


@settings(max_examples=200, deadline=None)
@given(key=aes_keys, receive_id=receive_ids, token=tokens, message=messages, timestamp=digits, nonce=digits)
def test_we_decrypt_what_wechatpy_encrypts(
    key: str, receive_id: str, token: str, message: str, timestamp: str, nonce: str
) -> None:
    ours = WeComCrypto(token, key, receive_id)
    theirs = WeChatCrypto(token, key, receive_id)
    envelope = theirs.encrypt_message(message, nonce, timestamp)
    # wechatpy's reply envelope carries its own MsgSignature; read it back out like a client of the reply would.
    from siyu.wecom.crypto import parse_xml

    root = parse_xml(envelope.encode())
    signature = root.findtext("MsgSignature") or ""
    assert signature == ours.signature(timestamp, nonce, root.findtext("Encrypt") or "")
    assert ours.decrypt_message(body=envelope.encode(), msg_signature=signature, timestamp=timestamp, nonce=nonce) == (
        message
    )


@settings(max_examples=50, deadline=None)
@given(key=aes_keys, message=messages, timestamp=digits, nonce=digits)
def test_both_refuse_each_others_forgeries(key: str, message: str, timestamp: str, nonce: str) -> None:
    ours = WeComCrypto("token", key, "wwcorp")
    theirs = WeChatCrypto("token", key, "wwcorp")
    encrypted, signature = ours.encrypt_message(plaintext=message, timestamp=timestamp, nonce=nonce)
    with pytest.raises(InvalidSignatureException):
        theirs.check_signature(signature, timestamp, nonce + "1", encrypted)
    with pytest.raises(CallbackCryptoError):
        ours.verify_url(msg_signature=signature, timestamp=timestamp, nonce=nonce + "1", echostr=encrypted)
