"""The codes a store code shows, read from the contexts that own them: the one place storecodes meets them.

A store's guide code is its store-purpose channel live code (siyu.channels), its group code a group live code
(siyu.groups); the fallback is a channel live code the brand names in its settings (usually the brand IP's).
Everything here returns plain `CodeImage`s, so pages and the API never handle another context's models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from siyu.channels.models import LiveCode
from siyu.channels.selectors import live_code_for_store, live_code_list, live_code_members, live_code_qr_url
from siyu.core.scopes import Actor
from siyu.groups.models import GroupCode
from siyu.groups.selectors import (
    group_code_for_store,
    group_code_list,
    group_code_qr_url,
    group_code_slots_in_scope,
)


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


def _codes_of_stores(actor: Actor, store_ids: list[int]) -> tuple[dict[int, LiveCode], dict[int, GroupCode]]:
    """Each store's active guide code and group code, the newest where there are several, in two queries.

    Read through the owning contexts' scoped lists: the codes of a store in the actor's scope are in its scope.
    """
    live: dict[int, LiveCode] = {}
    rows = live_code_list(actor=actor, status=LiveCode.Status.ACTIVE, purpose=LiveCode.Purpose.STORE)
    for code in rows.filter(store_id__in=store_ids).exclude(config_id="").select_related(None):
        live.setdefault(code.store_id, code)  # type: ignore[arg-type]  # newest first: keep the first
    groups: dict[int, GroupCode] = {}
    for group in group_code_list(actor=actor, status=GroupCode.Status.ACTIVE).filter(store_id__in=store_ids):
        groups.setdefault(group.store_id, group)  # type: ignore[arg-type]
    return live, groups


def _images(live: LiveCode | None, group: GroupCode | None) -> StoreCodes:
    return StoreCodes(
        guide=_image(live, live_code_qr_url(live) if live is not None else ""),
        group=_image(group, group_code_qr_url(group) if group is not None else ""),
    )


def store_code_flags(*, actor: Actor, store_ids: list[int]) -> dict[int, StoreCodes]:
    """store id → its codes, for a page of stores in the console and the API: two queries, whatever the page."""
    if not store_ids:
        return {}
    live, groups = _codes_of_stores(actor, store_ids)
    return {store_id: _images(live.get(store_id), groups.get(store_id)) for store_id in store_ids}


@dataclass(frozen=True)
class StoreCodeDetail:
    """A store's codes as its console page shows them, with who answers them, cut to the viewer's scope."""

    codes: StoreCodes
    guides: list[str]  # the guide code's guides, in its order
    groups: list[tuple[str, str]]  # (group name, owner's name) of the group code's groups, in its order


def store_code_detail(*, actor: Actor, store_id: int) -> StoreCodeDetail:
    """The codes of a store in the actor's scope (the caller has checked that) and the guides and groups behind
    them that the actor may see: a store's guide code may list guides of other stores (a neighbour's guide
    covering a shift, the brand IP) and its group code groups owned by them; their names stay out of view for
    a viewer whose scope does not reach them (HQ → region → store → guide; a franchisee its stores' guides)."""
    live, groups = _codes_of_stores(actor, [store_id])
    code, group = live.get(store_id), groups.get(store_id)
    # The owning contexts cut the lists to the actor's scope; shown in the code's own order.
    members = sorted(live_code_members(actor=actor, code=code), key=lambda m: (m.position, m.id)) if code else []
    slots = group_code_slots_in_scope(actor=actor, code=group) if group is not None else []
    guides = [member.guide.name for member in members]
    owned = [(slot.group.name, slot.group.owner.name) for slot in slots]
    return StoreCodeDetail(codes=_images(code, group), guides=guides, groups=owned)


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
