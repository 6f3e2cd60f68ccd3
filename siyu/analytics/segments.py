"""Segment rule trees (人群规则树): validation of the JSON a segment is stored as, before anything compiles it.

A tree is groups (`and`, `or` with `rules`; `not` with `rule`) over leaves:

- `{"op": "has_tag" | "not_has_tag", "tag_id": 3}`
- `{"op": "attr", "field": "city", "cmp": "eq", "value": "杭州"}` over whitelisted customer fields
- `{"op": "event_count", "type": "message.received", "cmp": "gte", "value": 3, "days": 30}` (or `"from"`/`"to"`
  dates instead of `days`)
- `{"op": "orders", "measure": "count" | "amount_cents" | "last_paid", "cmp": ..., "value": ..., "shop"?,
  "product_series"?}`: paid (and completed) orders only
- `{"op": "lifecycle", "stages": ["new", ...]}`
- `{"op": "follow", "store_ids": [...]}` or `{"op": "follow", "guide_ids": [...]}`: an active follow relation with
  guides of those stores, or with those guides

`rule_validate` returns a normalised copy (whitespace trimmed, lists deduplicated and sorted) or raises RuleInvalid
(409) naming the path of the bad node, e.g. `rule.rules[2].days`, or NotFound (404) naming the path of a tag, store or
guide the brand (or the actor's scope) does not have. Dates are Asia/Shanghai days.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from siyu.analytics.events import EVENT_TYPES
from siyu.core.errors import NotFound, SiyuError
from siyu.core.models import Guide, Store
from siyu.core.scopes import Actor
from siyu.customers.models import LifecycleStage

MAX_DEPTH = 8
MAX_NODES = 100
MAX_LIST = 200
MAX_DAYS = 3650
MAX_COUNT = 1_000_000
MAX_CENTS = 10**13
MAX_TEXT = 64

GROUP_OPS = ("and", "or", "not")
LEAF_OPS = ("has_tag", "not_has_tag", "attr", "event_count", "orders", "lifecycle", "follow")
NUMBER_CMPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between")
COUNT_CMPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between")
DATE_CMPS = ("eq", "gt", "gte", "lt", "lte", "between")
# field → (kind, operators). Only these columns may be compared: the whitelist is what keeps the tree from
# reaching encrypted PII or internal columns.
ATTRIBUTES: dict[str, tuple[str, tuple[str, ...]]] = {
    "gender": ("gender", ("eq", "ne", "in")),
    "city": ("text", ("eq", "ne", "in", "contains")),
    "intent_level": ("intent", (*NUMBER_CMPS, "in")),
    "source": ("text", ("eq", "ne", "in", "contains")),
    "created_at": ("date", DATE_CMPS),
    "lifecycle_stage": ("stage", ("eq", "ne", "in")),
}
ORDER_MEASURES = {"count": COUNT_CMPS, "amount_cents": COUNT_CMPS, "last_paid": (*DATE_CMPS, "within_days")}
ORDER_SHOPS = ("tmall", "jd", "youzan", "xiaoe", "store", "mall")


class RuleInvalid(SiyuError):
    """A rule tree that does not hold together, naming the bad node's path.

    409 rather than 422: the API documents `rule` as a free-form object (its shape is this module's to check), so a
    body the OpenAPI schema accepts must not be answered as a schema violation.
    """

    status_code = 409


def _fail(path: str, message: str) -> RuleInvalid:
    return RuleInvalid(f"{path}: {message}", field=path)


def _unknown(path: str, message: str) -> NotFound:
    return NotFound(f"{path}: {message}", field=path)


class _Walk:
    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.nodes = 0
        self.tag_ids: dict[str, int] = {}
        self.store_ids: dict[str, list[int]] = {}
        self.guide_ids: dict[str, list[int]] = {}

    def node(self, node: Any, path: str, depth: int) -> dict[str, Any]:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _fail(path, f"a rule tree has at most {MAX_NODES} conditions and groups")
        if depth > MAX_DEPTH:
            raise _fail(path, f"groups nest at most {MAX_DEPTH} deep")
        if not isinstance(node, dict):
            raise _fail(path, "must be an object")
        op = node.get("op")
        if op not in GROUP_OPS and op not in LEAF_OPS:
            raise _fail(f"{path}.op", f"must be one of {', '.join(GROUP_OPS + LEAF_OPS)}")
        return getattr(self, f"_{op}")(node, path, depth)

    @staticmethod
    def _keys(node: dict[str, Any], path: str, allowed: set[str]) -> None:
        extra = sorted(set(node) - allowed - {"op"})
        if extra:
            raise _fail(f"{path}.{extra[0]}", "is not a field of this condition")

    def _and(self, node: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        self._keys(node, path, {"rules"})
        rules = node.get("rules")
        if not isinstance(rules, list) or not rules:
            raise _fail(f"{path}.rules", "must be a non-empty list")
        return {"op": node["op"], "rules": [self.node(r, f"{path}.rules[{i}]", depth + 1) for i, r in enumerate(rules)]}

    _or = _and

    def _not(self, node: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        self._keys(node, path, {"rule"})
        if "rule" not in node:
            raise _fail(f"{path}.rule", "is required")
        return {"op": "not", "rule": self.node(node["rule"], f"{path}.rule", depth + 1)}

    def _has_tag(self, node: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        self._keys(node, path, {"tag_id"})
        tag_id = _int(node.get("tag_id"), f"{path}.tag_id", 1, 2**53)
        self.tag_ids[f"{path}.tag_id"] = tag_id
        return {"op": node["op"], "tag_id": tag_id}

    _not_has_tag = _has_tag

    def _attr(self, node: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        self._keys(node, path, {"field", "cmp", "value"})
        field = node.get("field")
        if field not in ATTRIBUTES:
            raise _fail(f"{path}.field", f"must be one of {', '.join(ATTRIBUTES)}")
        kind, cmps = ATTRIBUTES[field]
        cmp = _choice(node.get("cmp"), f"{path}.cmp", cmps)
        value = _value(kind, cmp, node.get("value"), f"{path}.value")
        return {"op": "attr", "field": field, "cmp": cmp, "value": value}

    def _event_count(self, node: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        self._keys(node, path, {"type", "cmp", "value", "days", "from", "to"})
        type_ = node.get("type")
        if not isinstance(type_, str) or type_ not in EVENT_TYPES:
            raise _fail(f"{path}.type", "must be a known event type")
        cmp = _choice(node.get("cmp"), f"{path}.cmp", COUNT_CMPS)
        out = {
            "op": "event_count",
            "type": type_,
            "cmp": cmp,
            "value": _value("count", cmp, node.get("value"), f"{path}.value"),
        }
        out.update(_window(node, path, required=True))
        return out

    def _orders(self, node: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        self._keys(node, path, {"measure", "cmp", "value", "shop", "product_series"})
        measure = _choice(node.get("measure"), f"{path}.measure", tuple(ORDER_MEASURES))
        cmp = _choice(node.get("cmp"), f"{path}.cmp", ORDER_MEASURES[measure])
        if measure == "last_paid":
            kind = "days" if cmp == "within_days" else "date"
        else:
            kind = "count" if measure == "count" else "cents"
        out: dict[str, Any] = {
            "op": "orders",
            "measure": measure,
            "cmp": cmp,
            "value": _value(kind, cmp, node.get("value"), f"{path}.value"),
        }
        if "shop" in node:
            out["shop"] = _choice(node["shop"], f"{path}.shop", ORDER_SHOPS)
        if "product_series" in node:
            out["product_series"] = _text(node["product_series"], f"{path}.product_series")
        return out

    def _lifecycle(self, node: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        self._keys(node, path, {"stages"})
        return {"op": "lifecycle", "stages": _list(node.get("stages"), f"{path}.stages", "stage")}

    def _follow(self, node: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        self._keys(node, path, {"store_ids", "guide_ids"})
        if ("store_ids" in node) == ("guide_ids" in node):
            raise _fail(f"{path}.store_ids", "give either store_ids or guide_ids")
        key = "store_ids" if "store_ids" in node else "guide_ids"
        ids = _list(node[key], f"{path}.{key}", "id")
        (self.store_ids if key == "store_ids" else self.guide_ids)[f"{path}.{key}"] = ids
        return {"op": "follow", key: ids}

    def check_references(self) -> None:
        """Tags, stores and guides must be the brand's (and stores and guides in the actor's scope)."""
        from siyu.tags.models import Tag

        if self.tag_ids:
            known = set(
                Tag.objects.filter(tenant_id=self.actor.tenant_id, id__in=self.tag_ids.values()).values_list(
                    "id", flat=True
                )
            )
            for path, tag_id in self.tag_ids.items():
                if tag_id not in known:
                    raise _unknown(path, f"tag {tag_id} not found")
        for path, ids in self.store_ids.items():
            stores = Store.objects.filter(tenant_id=self.actor.tenant_id, id__in=ids)
            if self.actor.store_ids is not None:
                stores = stores.filter(id__in=self.actor.store_ids)
            missing = set(ids) - set(stores.values_list("id", flat=True))
            if missing:
                raise _unknown(path, f"store {min(missing)} not found")
        for path, ids in self.guide_ids.items():
            guides = Guide.objects.filter(tenant_id=self.actor.tenant_id, id__in=ids)
            if self.actor.guide_ids is not None:
                guides = guides.filter(id__in=self.actor.guide_ids)
            missing = set(ids) - set(guides.values_list("id", flat=True))
            if missing:
                raise _unknown(path, f"guide {min(missing)} not found")


def _int(value: Any, path: str, low: int, high: int) -> int:
    # bool is an int in Python; a JSON true is not a number here.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, "must be an integer")
    if not low <= value <= high:
        raise _fail(path, f"must be between {low} and {high}")
    return value


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT or "\x00" in value:
        raise _fail(path, f"must be text of 1 to {MAX_TEXT} characters")
    try:
        # A lone surrogate (valid in JSON, not in UTF-8) could not be sent to the database.
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(path, "must be valid Unicode text") from None
    return value.strip()


def _date(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _fail(path, "must be a date YYYY-MM-DD")
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        day = None
    if day is None or len(value) != 10:
        raise _fail(path, "must be a date YYYY-MM-DD")
    return day.isoformat()


def _choice(value: Any, path: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _fail(path, f"must be one of {', '.join(choices)}")
    return value


def _scalar(kind: str, value: Any, path: str) -> Any:
    match kind:
        case "intent":
            return _int(value, path, 0, 5)
        case "gender":
            return _int(value, path, 0, 2)
        case "text":
            return _text(value, path)
        case "date":
            return _date(value, path)
        case "stage":
            return _choice(value, path, tuple(LifecycleStage.values))
        case "count":
            return _int(value, path, 0, MAX_COUNT)
        case "cents":
            return _int(value, path, 0, MAX_CENTS)
        case "days":
            return _int(value, path, 1, MAX_DAYS)
        case "id":
            return _int(value, path, 1, 2**53)
    raise AssertionError(kind)


def _list(value: Any, path: str, kind: str) -> list[Any]:
    if not isinstance(value, list) or not value or len(value) > MAX_LIST:
        raise _fail(path, f"must be a list of 1 to {MAX_LIST} values")
    return sorted({_scalar(kind, v, f"{path}[{i}]") for i, v in enumerate(value)})


def _value(kind: str, cmp: str, value: Any, path: str) -> Any:
    if cmp == "in":
        return _list(value, path, kind)
    if cmp == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise _fail(path, "must be a list [low, high]")
        low, high = _scalar(kind, value[0], f"{path}[0]"), _scalar(kind, value[1], f"{path}[1]")
        if low > high:
            raise _fail(path, "low must not be above high")
        return [low, high]
    return _scalar(kind, value, path)


def _window(node: dict[str, Any], path: str, *, required: bool) -> dict[str, Any]:
    if "days" in node:
        if "from" in node or "to" in node:
            raise _fail(f"{path}.days", "give either days or from/to")
        return {"days": _int(node["days"], f"{path}.days", 1, MAX_DAYS)}
    if "from" in node or "to" in node:
        start = _date(node.get("from"), f"{path}.from")
        end = _date(node.get("to"), f"{path}.to")
        if start > end:
            raise _fail(f"{path}.to", "must not be before from")
        return {"from": start, "to": end}
    if required:
        raise _fail(f"{path}.days", "give days or from/to")
    return {}


def rule_validate(*, actor: Actor, rule: Any, path: str = "rule") -> dict[str, Any]:
    """The normalised tree, or RuleInvalid (409) / NotFound (404) naming the bad node's path."""
    walk = _Walk(actor)
    tree = walk.node(rule, path, 1)
    walk.check_references()
    return tree
