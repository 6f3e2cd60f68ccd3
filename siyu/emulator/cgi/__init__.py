"""WeCom's server API as the emulator serves it: one module per area, each endpoint registered by its path.

Endpoints receive a `Call` (the authenticated corp and app, the parsed query and JSON body, the clock's now)
and return the response fields besides errcode/errmsg, or raise `ApiError`. They run under the emulator's
state lock, so they read and write the corp freely. Operations made through the API never fire callbacks
(wecom-api.md §3); only the simulated client actions in `siyu.emulator.actions` do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from siyu.emulator.config import EmulatorConfig
    from siyu.emulator.model import App, Corp

Handler = Callable[["Call"], dict[str, Any]]


@dataclass
class Call:
    corp: Corp
    app: App
    query: dict[str, str]
    body: dict[str, Any]
    now: float
    config: EmulatorConfig
    raw: bytes = b""  # the undecoded body, for routes taking multipart uploads (media/upload)


@dataclass(frozen=True)
class Route:
    path: str
    handler: Handler
    methods: tuple[str, ...]
    # Customer-contact APIs need a token of an app configured in 「可调用应用」, else 48002 (wecom-api.md §1).
    contact_api: bool
    writes: bool
    raw_body: bool = False  # multipart, not JSON: the handler reads Call.raw


ROUTES: dict[str, Route] = {}


def route(
    path: str,
    *,
    methods: tuple[str, ...] = ("POST",),
    contact_api: bool = True,
    writes: bool = False,
    raw_body: bool = False,
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        full = "/cgi-bin/" + path
        if full in ROUTES:
            raise RuntimeError(f"{full} registered twice")
        ROUTES[full] = Route(full, handler, methods, contact_api, writes, raw_body)
        return handler

    return register


def load_routes() -> dict[str, Route]:
    """Import every endpoint module (each registers itself) and return the routing table."""
    from siyu.emulator.cgi import (  # noqa: F401
        contact_way,
        contacts,
        groupchat,
        groupmsg,
        join_way,
        media,
        message,
        moments,
        org,
        tags,
        transfer,
        welcome,
    )

    return ROUTES
