"""API test fixtures: one live token per persona of the fixed world, and a client that refuses any 5xx."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client

from siyu.api.services import api_token_create
from siyu.core.scopes import Actor
from siyu.testing import VISIBLE, World

PERSONAS = sorted(VISIBLE)
BASE = "/api/v1"


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


class ApiClient:
    """Calls the API like a client would; every answer must be JSON (or empty) and never a server error."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.client = Client()

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: str | bytes | None = None,
        params: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> Answer:
        headers: dict[str, str] = {}
        bearer = token if token is not None else self.token
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        data: Any = raw if raw is not None else (json.dumps(body) if body is not None else None)
        url = path if path.startswith(BASE) else BASE + path
        if params:
            response = self.client.generic(method, url, headers=headers, QUERY_STRING=urlencode(params, doseq=True))
        else:
            kwargs: dict[str, Any] = {"headers": headers}
            if data is not None:
                kwargs.update(data=data, content_type="application/json")
            response = self.client.generic(method, url, **kwargs)
        assert response.status_code < 500, response.content
        content = response.content
        if response.get("Content-Type", "").startswith("image/"):
            parsed: Any = content  # a picture (a live code's QR): the bytes themselves
        else:
            parsed = json.loads(content) if content else None
        return Answer(status=response.status_code, body=parsed, headers=dict(response.headers))

    def get(self, path: str, **params: Any) -> Answer:
        return self.call("GET", path, params=params or None)

    def post(self, path: str, body: Any = None) -> Answer:
        return self.call("POST", path, body=body)

    def patch(self, path: str, body: Any = None) -> Answer:
        return self.call("PATCH", path, body=body)

    def delete(self, path: str) -> Answer:
        return self.call("DELETE", path)


@pytest.fixture
def tokens(world: World) -> dict[str, str]:
    """A live API token for every persona, issued by its brand's system actor."""
    issued = {}
    for persona in PERSONAS:
        membership = world.memberships[persona]
        issued[persona] = api_token_create(
            actor=Actor.system(membership.tenant_id), membership_id=membership.id, name=f"{persona} test"
        ).secret
    return issued
