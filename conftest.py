"""Fixtures shared by every context's tests: the fixed two-brand world of `siyu.testing`."""

from __future__ import annotations

import pytest

from siyu.testing import World, build_world

pytest_plugins = ["siyu.e2e"]  # the headless browser of the e2e tests


@pytest.fixture
def world(db: None) -> World:
    return build_world()
