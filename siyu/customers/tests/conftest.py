"""Customers test fixtures: the API tests' per-persona tokens (siyu/api/tests/conftest.py) for the OneID API tests."""

from __future__ import annotations

from siyu.api.tests.conftest import tokens

__all__ = ["tokens"]
