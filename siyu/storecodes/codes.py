"""The codes a store code shows, read from the contexts that own them: the one place storecodes meets them.

A store's guide code is its store-purpose channel live code (siyu.channels), its group code a group live code
(siyu.groups); the fallback is a channel live code the brand names in its settings (usually the brand IP's).
Everything here returns plain `CodeImage`s, so pages and the API never handle another context's models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from siyu.channels.models import LiveCode
from siyu.channels.selectors import live_code_for_store, live_code_list, live_code_qr_url
from siyu.core.scopes import Actor
from siyu.groups.selectors import group_code_for_store, group_code_qr_url


@dataclass(frozen=True)
class CodeImage:
    """A code as the landing page shows it: its name and the URL of its QR image."""

    id: int
    name: str
    qr_url: str


@dataclass(frozen=True)
class StoreCodes:
    guide: CodeImage | None
    group: CodeImage | None


def _image(code: Any, qr_url: str) -> CodeImage | None:
    if code is None or not qr_url:
        return None
    return CodeImage(id=code.id, name=str(getattr(code, "name", "")), qr_url=qr_url)


def store_codes_for(*, tenant_id: int, store_id: int) -> StoreCodes:
    """The store's guide code and group code (either may be missing)."""
    live = live_code_for_store(tenant_id=tenant_id, store_id=store_id)
    group = group_code_for_store(tenant_id=tenant_id, store_id=store_id)
    return StoreCodes(
        guide=_image(live, live_code_qr_url(live) if live is not None else ""),
        group=_image(group, group_code_qr_url(group) if group is not None else ""),
    )


def store_code_flags(*, tenant_id: int, store_ids: list[int]) -> dict[int, StoreCodes]:
    """store id → its codes, for a page of stores in the console and the API (two reads per store)."""
    return {store_id: store_codes_for(tenant_id=tenant_id, store_id=store_id) for store_id in store_ids}


def _usable_live_codes(tenant_id: int) -> Any:
    # The brand-wide list (the fallback is a brand setting), active codes WeCom has created a contact way for.
    return live_code_list(actor=Actor.system(tenant_id), status=LiveCode.Status.ACTIVE).exclude(config_id="")


def live_code_choices(*, tenant_id: int) -> list[tuple[int, str]]:
    """(id, name) of the brand's live codes that may serve as the fallback, for the settings form."""
    return [(c.id, c.name) for c in _usable_live_codes(tenant_id)]


def fallback_code(*, tenant_id: int, live_code_id: int | None) -> CodeImage | None:
    """The brand's fallback code, or None when none is set or it was deleted or paused since."""
    if live_code_id is None:
        return None
    code = _usable_live_codes(tenant_id).filter(id=live_code_id).first()
    return _image(code, live_code_qr_url(code)) if code is not None else None
