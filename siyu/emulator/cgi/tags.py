"""Corp customer tags (wecom-api.md §4.2): get_corp_tag_list, add_corp_tag, edit_corp_tag, del_corp_tag, mark_tag."""

from __future__ import annotations

from typing import Any

from siyu.emulator import ids
from siyu.emulator.cgi import Call, route
from siyu.emulator.cgi.common import integer, related, string_list, text
from siyu.emulator.errors import ApiError, ErrCode
from siyu.emulator.model import Corp, Tag, TagGroup

NAME_MAX = 30
ORDER_MAX = 2**32 - 1


def _sorted_groups(groups: list[TagGroup]) -> list[TagGroup]:
    # A larger `order` sorts first (§4.2); creation order breaks ties.
    return sorted(groups, key=lambda g: (-g.order, g.create_time, g.group_id))


def _sorted_tags(tags: list[Tag]) -> list[Tag]:
    return sorted(tags, key=lambda t: (-t.order, t.create_time, t.id))


def group_json(group: TagGroup, tags: list[Tag], *, with_deleted: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "group_id": group.group_id,
        "group_name": group.group_name,
        "create_time": group.create_time,
        "order": group.order,
    }
    tag_rows = []
    for tag in _sorted_tags(tags):
        row: dict[str, Any] = {"id": tag.id, "name": tag.name, "create_time": tag.create_time, "order": tag.order}
        if with_deleted:
            row["deleted"] = tag.deleted
        tag_rows.append(row)
    if with_deleted:
        data["deleted"] = group.deleted
    data["tag"] = tag_rows
    return data


def _order(body: dict[str, Any], key: str = "order") -> int:
    order = integer(body, key, 0)
    if not 0 <= order <= ORDER_MAX:
        raise ApiError(ErrCode.INVALID_PARAMETER, f"{key} must be in [0, 2^32)")
    return order


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ApiError(ErrCode.PARAMETER_EMPTY, f"{what} is required")
    if len(value) > NAME_MAX:
        raise ApiError(ErrCode.INVALID_PARAMETER, f"{what} exceeds {NAME_MAX} characters")
    return value


@route("externalcontact/get_corp_tag_list")
def get_corp_tag_list(call: Call) -> dict[str, Any]:
    corp = call.corp
    group_ids = string_list(call.body, "group_id")
    tag_ids = string_list(call.body, "tag_id")
    if group_ids:  # group_id wins over tag_id (§4.2); queries by id also see deleted entries, flagged
        wanted = [corp.tag_groups[g] for g in dict.fromkeys(group_ids) if g in corp.tag_groups]
        groups = [group_json(g, g.tags, with_deleted=True) for g in _sorted_groups(wanted)]
    elif tag_ids:
        wanted_tags = set(tag_ids)
        groups = [
            group_json(g, [t for t in g.tags if t.id in wanted_tags], with_deleted=True)
            for g in _sorted_groups(list(corp.tag_groups.values()))
            if any(t.id in wanted_tags for t in g.tags)
        ]
    else:
        groups = [
            group_json(g, [t for t in g.tags if not t.deleted], with_deleted=False)
            for g in _sorted_groups([g for g in corp.tag_groups.values() if not g.deleted])
        ]
    return {"tag_group": groups}


def _live_group(corp: Corp, group_id: str) -> TagGroup:
    group = corp.tag_groups.get(group_id)
    if group is None or group.deleted:
        raise ApiError(ErrCode.INVALID_TAG_ID, f"tag group {group_id!r} not found")
    return group


def tags_add(
    corp: Corp,
    *,
    now: int,
    max_tags: int,
    group_id: str,
    group_name: str,
    group_order: int,
    tags: list[tuple[str, int]],
) -> tuple[TagGroup, list[Tag], bool]:
    """Add tags to the group `group_id`, or to the group named `group_name` (created if new).

    Returns the group, the created tags and whether the group is new. Shared by add_corp_tag and the simulated
    admin-console edits, which differ only in that the latter fire change_external_tag events.
    """
    if not tags:
        raise ApiError(ErrCode.PARAMETER_EMPTY, "tag is required")
    if group_id:
        group: TagGroup | None = _live_group(corp, group_id)
    else:
        group_name = _name(group_name, "group_id or group_name")
        # An existing group of that name receives the tags (§4.2).
        group = next((g for g in corp.tag_groups.values() if not g.deleted and g.group_name == group_name), None)
    existing = {t.name for t in group.tags if not t.deleted} if group else set()
    seen: set[str] = set()
    for name, _ in tags:
        if name in existing or name in seen:
            raise ApiError(ErrCode.TAG_NAME_EXISTS, f"tag {name!r} already exists in the group")
        seen.add(name)
    if corp.live_tag_count() + len(tags) > max_tags:
        raise ApiError(ErrCode.CORP_TAG_LIMIT, f"a corp may have at most {max_tags} tags")
    created_group = group is None
    if group is None:
        group = TagGroup(
            group_id=ids.tag_id(corp.corp_id, corp.next_seq()),
            group_name=group_name,
            create_time=now,
            order=group_order,
        )
        corp.tag_groups[group.group_id] = group
    created = [Tag(id=ids.tag_id(corp.corp_id, corp.next_seq()), name=n, create_time=now, order=o) for n, o in tags]
    group.tags.extend(created)
    return group, created, created_group


@route("externalcontact/add_corp_tag", writes=True)
def add_corp_tag(call: Call) -> dict[str, Any]:
    body = call.body
    raw_tags = body.get("tag")
    if not isinstance(raw_tags, list) or not raw_tags:
        raise ApiError(ErrCode.PARAMETER_EMPTY, "tag is required")
    if not all(isinstance(raw, dict) for raw in raw_tags):
        raise ApiError(ErrCode.INVALID_PARAMETER, "each tag must be an object")
    group, created, _ = tags_add(
        call.corp,
        now=int(call.now),
        max_tags=call.config.max_corp_tags,
        group_id=text(body, "group_id"),
        group_name=body.get("group_name") or "",
        group_order=_order(body),
        tags=[(_name(raw.get("name"), "tag name"), _order(raw)) for raw in raw_tags],
    )
    return {"tag_group": group_json(group, created, with_deleted=False)}


def tag_edit(corp: Corp, target_id: str, *, name: str | None, order: int | None) -> str:
    """Rename/reorder a tag or a tag group; returns "tag" or "tag_group" (the TagType of the event it would fire)."""
    if name is not None:
        name = _name(name, "name")
    group = corp.tag_groups.get(target_id)
    if group is not None and not group.deleted:
        if name is not None and any(
            g.group_name == name for g in corp.tag_groups.values() if not g.deleted and g is not group
        ):
            raise ApiError(ErrCode.TAG_NAME_EXISTS, f"tag group {name!r} already exists")
        group.group_name = name if name is not None else group.group_name
        group.order = order if order is not None else group.order
        return "tag_group"
    found = corp.tag_index().get(target_id)
    if found is None:
        raise ApiError(ErrCode.INVALID_TAG_ID, f"tag {target_id!r} not found")
    owner, tag = found
    if name is not None and any(t.name == name for t in owner.tags if not t.deleted and t is not tag):
        raise ApiError(ErrCode.TAG_NAME_EXISTS, f"tag {name!r} already exists in the group")
    tag.name = name if name is not None else tag.name
    tag.order = order if order is not None else tag.order
    return "tag"


@route("externalcontact/edit_corp_tag", writes=True)
def edit_corp_tag(call: Call) -> dict[str, Any]:
    body = call.body
    tag_edit(
        call.corp,
        text(body, "id", missing=ErrCode.INVALID_TAG_ID),
        name=body.get("name") or None,
        order=_order(body) if body.get("order") is not None else None,
    )
    return {}


def delete_tags(corp: Corp, tag_ids: list[str], group_ids: list[str]) -> list[TagGroup]:
    """Tombstone tags and groups and strip them from customers; returns the groups emptied as a result."""
    index = corp.tag_index()
    for tag_id in tag_ids:
        if tag_id not in index:
            raise ApiError(ErrCode.INVALID_TAG_ID, f"tag {tag_id!r} not found")
    groups = [_live_group(corp, g) for g in group_ids]
    gone: set[str] = set(tag_ids)
    for group in groups:
        group.deleted = True
        gone.update(t.id for t in group.tags if not t.deleted)
        for tag in group.tags:
            tag.deleted = True
    emptied = []
    for tag_id in tag_ids:
        owner, tag = index[tag_id]
        tag.deleted = True
        # A group whose last tag goes is deleted with it (§4.2).
        if not owner.deleted and all(t.deleted for t in owner.tags):
            owner.deleted = True
            emptied.append(owner)
    for customer in corp.contacts.values():
        for follow in customer.follows.values():
            if gone.intersection(follow.tag_ids):
                follow.tag_ids = [t for t in follow.tag_ids if t not in gone]
    return emptied


@route("externalcontact/del_corp_tag", writes=True)
def del_corp_tag(call: Call) -> dict[str, Any]:
    tag_ids = string_list(call.body, "tag_id")
    group_ids = string_list(call.body, "group_id")
    if not tag_ids and not group_ids:
        raise ApiError(ErrCode.PARAMETER_EMPTY, "tag_id and group_id cannot both be empty")
    delete_tags(call.corp, tag_ids, group_ids)
    return {}


def apply_marks(corp: Corp, userid: str, external_userid: str, add: list[str], remove: list[str]) -> None:
    customer = related(corp, userid, external_userid)
    index = corp.tag_index()
    for tag_id in (*add, *remove):
        if tag_id not in index:
            raise ApiError(ErrCode.INVALID_TAG_ID, f"tag {tag_id!r} not found")
    follow = customer.follows[userid]
    tags = [t for t in follow.tag_ids if t not in set(remove)]
    tags.extend(t for t in dict.fromkeys(add) if t not in tags)
    follow.tag_ids = tags


@route("externalcontact/mark_tag", writes=True)
def mark_tag(call: Call) -> dict[str, Any]:
    body = call.body
    userid = text(body, "userid", missing=ErrCode.MISSING_USERID)
    external_userid = text(body, "external_userid", missing=ErrCode.MISSING_EXTERNAL_USERID)
    add, remove = string_list(body, "add_tag"), string_list(body, "remove_tag")
    if not add and not remove:
        raise ApiError(ErrCode.PARAMETER_EMPTY, "add_tag and remove_tag cannot both be empty")
    apply_marks(call.corp, userid, external_userid, add, remove)
    return {}
