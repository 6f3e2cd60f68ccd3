"""Fixtures of the groups tests: the fixed world (personas, guides G1..G3 and the brand IP), and a brand connected
to a seeded emulator corp served over HTTP (shared with the WeCom connector's tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache

from siyu.emulator.server import RunningServer
from siyu.wecom.tests.emulated import Brand, connect_brand, emulator_serving


@pytest.fixture
def emulator() -> Iterator[RunningServer]:
    with emulator_serving() as server:
        yield server


@pytest.fixture
def brand(db: None, emulator: RunningServer) -> Iterator[Brand]:
    cache.clear()
    yield connect_brand(emulator)
    cache.clear()
