"""Property-based run of the whole API with schemathesis: no request may answer 5xx or break its schema.

Every operation gets boundary cases (coverage phase) and random valid and invalid requests (fuzzing phase),
sent as the HQ admin through the real WSGI application. `call_and_validate` runs schemathesis' default
checks: no 5xx; documented status codes, content types, headers and response bodies; schema-valid requests
accepted and schema-violating ones refused; the token actually required (`ignored_auth`); Allow headers
and 405s for unsupported methods.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from siyu.api.services import api_token_create
from siyu.core.scopes import Actor
from siyu.testing import World
from siyu.wsgi import application

# Bounded so the suite stays fast; SIYU_SCHEMATHESIS_EXAMPLES=500 digs deeper before a release.
MAX_EXAMPLES = int(os.environ.get("SIYU_SCHEMATHESIS_EXAMPLES", "30"))


@pytest.fixture
def keep_test_connection() -> Iterator[None]:
    """The WSGI handler closes "old" connections around each request, which would end the test's transaction.

    Django's test Client disconnects the same handlers for the same reason.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


# The HQ token's secret is fixed so it can sit in the schema's config: schemathesis must know the header is
# the credential (it also sends requests without it and expects 401).
HQ_SECRET = "schemathesis-hq-token-0123456789abcdefghijk"


@pytest.fixture
def hq_token(world: World, keep_test_connection: None, monkeypatch: pytest.MonkeyPatch) -> None:
    membership = world.memberships["hq"]
    with monkeypatch.context() as patch:
        patch.setattr("siyu.api.services.secrets.token_urlsafe", lambda nbytes: HQ_SECRET)
        api_token_create(actor=Actor.system(membership.tenant_id), membership_id=membership.id, name="schemathesis")


# Loaded at import (the document needs no database). schemathesis.pytest.from_fixture would build it inside a
# fixture, but its lazy loader breaks on pytest 9 (it writes the removed `Node._nodeid`).
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)
schema.config.update(headers={"Authorization": f"Bearer {HQ_SECRET}"})
schema.config.generation.update(max_examples=MAX_EXAMPLES)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_fails(case: Any, hq_token: None) -> None:
    case.call_and_validate()
