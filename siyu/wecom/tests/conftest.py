"""Fixtures of the WeCom connector's tests: both brands of the fixed world connected to their corps."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.core.cache import cache

from siyu.emulator.server import RunningServer
from siyu.testing import World
from siyu.wecom.models import RawCallback, WeComConnection
from siyu.wecom.services import connection_create, raw_callback_store
from siyu.wecom.tests.emulated import Brand, connect_brand, emulator_serving
from siyu.wecom.tests.support import AES_KEY, CORP_A, CORP_B, SECRET, TOKEN, signed_post
from siyu.wecom.webhooks import verify_message


@pytest.fixture
def connections(world: World) -> dict[str, WeComConnection]:
    """Brand A on corp wwA, brand B on corp wwB; same token and key, so only the receive id tells them apart."""
    return {
        "A": connection_create(
            actor=world.actor("hq"),
            corp_id=CORP_A,
            agent_id="1000002",
            contact_secret=SECRET,
            app_secret="app-secret-A",
            callback_token=TOKEN,
            encoding_aes_key=AES_KEY,
            api_base_url="http://emulator.invalid/cgi-bin/",
        ),
        "B": connection_create(
            actor=world.actor("outsider"),
            corp_id=CORP_B,
            callback_token=TOKEN,
            encoding_aes_key=AES_KEY,
        ),
    }


@pytest.fixture
def store(connections: dict[str, WeComConnection]) -> Callable[..., RawCallback]:
    """Verify and store one callback exactly as the endpoint does; returns the row (not yet processed)."""

    def store(xml: str, *, brand: str = "A") -> RawCallback:
        corp_id = connections[brand].corp_id
        request = signed_post(xml, key=corp_id, corp_id=corp_id)
        verified = verify_message(
            key=corp_id,
            msg_signature=request.query["msg_signature"],
            timestamp=request.query["timestamp"],
            nonce=request.query["nonce"],
            body=request.body,
        )
        row, created = raw_callback_store(verified=verified)
        assert created
        return row

    return store


@pytest.fixture
def emulator() -> Iterator[RunningServer]:
    """A seeded emulator corp (300 contacts, 10 groups) served over HTTP on a free port."""
    with emulator_serving() as server:
        yield server


@pytest.fixture
def brand(db: None, emulator: RunningServer) -> Iterator[Brand]:
    """A fresh brand connected to the emulator corp (nothing synced yet); the token cache starts empty."""
    cache.clear()
    yield connect_brand(emulator)
    cache.clear()
