"""The one query layer (查询层): a validated segment rule tree compiled to SQL with SQLGlot, run on the OLTP database
(SQLite, PostgreSQL) or on the DuckDB warehouse, with the same meaning everywhere.

The compiler builds an AST (values are literal nodes SQLGlot quotes for the dialect, never spliced into strings)
over the OLTP table and column names; the warehouse loader (siyu.analytics.warehouse) copies those tables under the
same names, so one tree gives one query and one answer. Every query is for one tenant, skips merged customers and
is restricted to the actor's data scope, exactly as siyu.customers.selectors.customer_scope scopes customers.

Time windows are Asia/Shanghai days, turned into UTC instants here so every engine compares instants.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlglot.expressions as exp
from django.db import connection

from siyu.core.models import Role
from siyu.core.scopes import Actor

SHANGHAI = ZoneInfo("Asia/Shanghai")
PAID_STATUSES = ("paid", "completed")
# Tables with an index that starts (tenant_id, customer_id) and holds every column the compiler reads from them,
# so SQLite answers a per-customer aggregate from the index alone, in customer order (commerce's
# `order_customer_cover`; test_segments_plan pins it). A column added to an order condition must join that index.
COVERED = frozenset({"commerce_order"})


@dataclass(frozen=True)
class Scope:
    """The actor's data scope as plain values, so the warehouse needs no OLTP lookups while querying."""

    tenant_id: int
    brand_wide: bool
    guide_id: int | None = None
    store_ids: tuple[int, ...] = ()

    @classmethod
    def of(cls, actor: Actor) -> Scope:
        if actor.is_brand_wide:
            return cls(tenant_id=actor.tenant_id, brand_wide=True)
        if actor.role == Role.GUIDE:
            return cls(tenant_id=actor.tenant_id, brand_wide=False, guide_id=actor.guide_id or 0)
        return cls(tenant_id=actor.tenant_id, brand_wide=False, store_ids=tuple(sorted(actor.store_ids or ())))


def day_start(day: dt.date) -> dt.datetime:
    """The UTC instant an Asia/Shanghai day begins."""
    return dt.datetime.combine(day, dt.time(), tzinfo=SHANGHAI).astimezone(dt.UTC)


def _lit(value: Any) -> exp.Expression:
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def _col(table: str, name: str) -> exp.Column:
    return exp.column(name, table=table)


def _in(this: exp.Expression, values: list[Any] | tuple[Any, ...]) -> exp.Expression:
    if not values:
        return exp.false()
    return exp.In(this=this, expressions=[_lit(v) for v in values])


def _all(*conds: exp.Expression) -> exp.Expression:
    return exp.and_(*conds) if len(conds) > 1 else conds[0]


def _cmp(this: exp.Expression, cmp: str, value: Any, lit: Callable[[Any], exp.Expression] = _lit) -> exp.Expression:
    match cmp:
        case "eq":
            return exp.EQ(this=this, expression=lit(value))
        case "ne":
            return exp.NEQ(this=this, expression=lit(value))
        case "gt":
            return exp.GT(this=this, expression=lit(value))
        case "gte":
            return exp.GTE(this=this, expression=lit(value))
        case "lt":
            return exp.LT(this=this, expression=lit(value))
        case "lte":
            return exp.LTE(this=this, expression=lit(value))
        case "between":
            return exp.and_(exp.GTE(this=this, expression=lit(value[0])), exp.LTE(this=this, expression=lit(value[1])))
        case "in":
            return exp.In(this=this, expressions=[lit(v) for v in value])
    raise AssertionError(cmp)


def _holds(cmp: str, left: int, value: Any) -> bool:
    """Whether `left cmp value` holds in Python: decides how customers with no rows (count 0) are treated."""
    match cmp:
        case "eq":
            return left == value
        case "ne":
            return left != value
        case "gt":
            return left > value
        case "gte":
            return left >= value
        case "lt":
            return left < value
        case "lte":
            return left <= value
        case "between":
            return value[0] <= left <= value[1]
    raise AssertionError(cmp)


class Compiler:
    """Compiles one validated tree for one scope, at one instant `now`, for one dialect."""

    def __init__(self, *, scope: Scope, now: dt.datetime, dialect: str) -> None:
        self.scope = scope
        self.now = now
        self.dialect = dialect
        self.today = now.astimezone(SHANGHAI).date()

    # --- literals ------------------------------------------------------------------------------------------

    def ts(self, instant: dt.datetime) -> exp.Expression:
        """An instant as each engine stores it: SQLite text 'YYYY-MM-DD HH:MM:SS' in UTC (Django's format),
        PostgreSQL timestamptz, DuckDB a UTC TIMESTAMP (the loader stores them so)."""
        utc = instant.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
        if self.dialect == "sqlite":
            return exp.Literal.string(utc)
        if self.dialect == "postgres":
            return exp.cast(exp.Literal.string(f"{utc}+00:00"), "TIMESTAMPTZ")
        return exp.cast(exp.Literal.string(utc), "TIMESTAMP")

    def _date_cmp(self, this: exp.Expression, cmp: str, value: Any) -> exp.Expression:
        """A date comparison on an instant column, by whole Asia/Shanghai days."""

        def start(day: str, plus: int = 0) -> exp.Expression:
            return self.ts(day_start(dt.date.fromisoformat(day) + dt.timedelta(days=plus)))

        match cmp:
            case "eq":
                return exp.and_(
                    exp.GTE(this=this, expression=start(value)), exp.LT(this=this, expression=start(value, 1))
                )
            case "gt":
                return exp.GTE(this=this, expression=start(value, 1))
            case "gte":
                return exp.GTE(this=this, expression=start(value))
            case "lt":
                return exp.LT(this=this, expression=start(value))
            case "lte":
                return exp.LT(this=this, expression=start(value, 1))
            case "between":
                return exp.and_(
                    exp.GTE(this=this, expression=start(value[0])), exp.LT(this=this, expression=start(value[1], 1))
                )
            case "within_days":
                return exp.GTE(this=this, expression=self.ts(day_start(self.today - dt.timedelta(days=value - 1))))
        raise AssertionError(cmp)

    # --- pieces --------------------------------------------------------------------------------------------

    def _ids_in(self, table: str, where: list[exp.Expression], *, having: exp.Expression | None = None) -> exp.Select:
        """SELECT customer_id FROM table WHERE tenant AND customer set AND ... [GROUP BY customer_id HAVING ...]."""
        conds = [
            exp.EQ(this=_col("t", "tenant_id"), expression=_lit(self.scope.tenant_id)),
            exp.Not(this=exp.Is(this=_col("t", "customer_id"), expression=exp.null())),
            *where,
        ]
        if having is None:
            return exp.select(_col("t", "customer_id")).from_(exp.to_table(table).as_("t")).where(_all(*conds))
        key: exp.Expression = _col("t", "customer_id")
        if self.dialect == "sqlite" and table not in COVERED:
            # Grouping by the bare column makes SQLite walk the (tenant, customer, time) index and fetch every row
            # for its other columns; by `customer_id + 0` it scans the tenant's rows and groups in a temporary
            # B-tree instead: 3x faster at demo size. Same groups, same ids. A covered table needs neither: its
            # index holds every column a rule reads, so walking it fetches no rows and needs no sort.
            key = exp.Add(this=key, expression=exp.Literal.number(0))
        return (
            exp.select(key).from_(exp.to_table(table).as_("t")).where(_all(*conds)).group_by(key.copy()).having(having)
        )

    def _member(self, sub: exp.Select, *, negate: bool = False) -> exp.Expression:
        member = exp.In(this=_col("c", "id"), query=exp.Subquery(this=sub))
        return exp.Not(this=member) if negate else member

    def _aggregate(
        self, table: str, where: list[exp.Expression], agg: exp.Expression, cmp: str, value: Any
    ) -> exp.Expression:
        """Customers whose aggregate over their rows satisfies cmp; customers with no rows count as 0."""
        if isinstance(agg, exp.Count) and (cmp, value) in (("gte", 1), ("gt", 0), ("ne", 0)):
            # "At least one": membership alone, no grouping.
            return self._member(self._ids_in(table, where))
        if cmp in ("eq", "ne", "gt", "gte", "lt", "lte", "between") and _holds(cmp, 0, value):
            # Zero satisfies it: everyone except those with rows whose aggregate fails it.
            return self._member(
                self._ids_in(table, where, having=exp.Not(this=exp.paren(_cmp(agg, cmp, value)))), negate=True
            )
        return self._member(self._ids_in(table, where, having=_cmp(agg, cmp, value)))

    def _window(self, node: dict[str, Any], column: exp.Expression) -> list[exp.Expression]:
        if "days" in node:
            return [
                exp.GTE(this=column, expression=self.ts(day_start(self.today - dt.timedelta(days=node["days"] - 1))))
            ]
        if "from" in node:
            return [self._date_cmp(column, "between", [node["from"], node["to"]])]
        return []

    # --- nodes ---------------------------------------------------------------------------------------------

    def node(self, node: dict[str, Any]) -> exp.Expression:
        op = node["op"]
        match op:
            case "and":
                return exp.paren(exp.and_(*self._group(node["rules"], exp.and_)))
            case "or":
                return exp.paren(exp.or_(*self._group(node["rules"], exp.or_)))
            case "not":
                return exp.Not(this=exp.paren(self.node(node["rule"])))
            case "has_tag" | "not_has_tag":
                sub = self._ids_in(
                    "tags_customertag", [exp.EQ(this=_col("t", "tag_id"), expression=_lit(node["tag_id"]))]
                )
                return self._member(sub, negate=op == "not_has_tag")
            case "attr":
                column = _col("c", node["field"])
                if node["field"] == "created_at":
                    return self._date_cmp(column, node["cmp"], node["value"])
                if node["cmp"] == "contains":
                    return exp.GT(
                        this=exp.StrPosition(this=column, substr=exp.Literal.string(node["value"])),
                        expression=exp.Literal.number(0),
                    )
                return _cmp(column, node["cmp"], node["value"])
            case "lifecycle":
                return _in(_col("c", "lifecycle_stage"), node["stages"])
            case "event_count":
                where = [exp.EQ(this=_col("t", "type"), expression=_lit(node["type"]))]
                where += self._window(node, _col("t", "occurred_at"))
                return self._aggregate("analytics_event", where, exp.Count(this=exp.Star()), node["cmp"], node["value"])
            case "orders":
                return self._orders(node)
            case "follow":
                if "guide_ids" in node:
                    guides: exp.Expression = _in(_col("t", "guide_id"), node["guide_ids"])
                else:
                    guides = self._guides_of_stores(node["store_ids"])
                where = [exp.EQ(this=_col("t", "status"), expression=_lit("active")), guides]
                return self._member(self._ids_in("customers_followrelation", where))
        raise AssertionError(op)

    def _group(self, rules: list[dict[str, Any]], combine: Callable[..., exp.Expression]) -> list[exp.Expression]:
        """The members of an and/or group, with its order conditions that need orders merged into one condition.

        Each such condition is `c.id IN (customers grouped over their paid orders HAVING ...)`: two of them in one
        group read every paid order twice. Merged, one pass groups the orders once and the HAVING combines the
        conditions as the group does, each aggregating only its own rows (`SUM(CASE WHEN shop = ... THEN amount
        END)`). A customer without such rows gets NULL (COUNT 0), which fails the condition exactly as absence
        from its subquery did, since these are the conditions no-orders cannot satisfy.
        """
        merge = [r for r in rules if r["op"] == "orders" and self._needs_orders(r)]
        if len(merge) < 2:
            return [self.node(r) for r in rules]
        havings = [self._order_having(r, self._order_filter(r)) for r in merge]
        merged = self._member(self._ids_in("commerce_order", [self._paid()], having=combine(*havings)))
        out: list[exp.Expression] = []
        for rule in rules:
            if rule is merge[0]:
                out.append(merged)
            elif not any(rule is m for m in merge):
                out.append(self.node(rule))
        return out

    @staticmethod
    def _needs_orders(node: dict[str, Any]) -> bool:
        """Whether only customers with matching paid orders can satisfy the condition (no orders counts as 0)."""
        return node["measure"] == "last_paid" or not _holds(node["cmp"], 0, node["value"])

    @staticmethod
    def _paid() -> exp.Expression:
        return _in(_col("t", "status"), PAID_STATUSES)

    @staticmethod
    def _order_filter(node: dict[str, Any]) -> exp.Expression | None:
        conds: list[exp.Expression] = []
        if "shop" in node:
            conds.append(exp.EQ(this=_col("t", "shop"), expression=_lit(node["shop"])))
        if "product_series" in node:
            conds.append(exp.EQ(this=_col("t", "product_series"), expression=_lit(node["product_series"])))
        return _all(*conds) if conds else None

    def _order_having(self, node: dict[str, Any], only: exp.Expression | None) -> exp.Expression:
        """The condition on the aggregate of a customer's paid orders; with `only`, of the rows it holds for."""

        def of(value: exp.Expression) -> exp.Expression:
            return value if only is None else exp.Case(ifs=[exp.If(this=only.copy(), true=value)])

        measure, cmp, value = node["measure"], node["cmp"], node["value"]
        if measure == "count":
            agg: exp.Expression = exp.Count(this=exp.Star() if only is None else of(exp.Literal.number(1)))
            return _cmp(agg, cmp, value)
        if measure == "amount_cents":
            return _cmp(exp.Sum(this=of(_col("t", "amount_cents"))), cmp, value)
        return self._date_cmp(exp.Max(this=of(_col("t", "paid_at"))), cmp, value)

    def _orders(self, node: dict[str, Any]) -> exp.Expression:
        only = self._order_filter(node)
        where = [self._paid()] if only is None else [self._paid(), only]
        measure, cmp, value = node["measure"], node["cmp"], node["value"]
        if measure == "count":
            return self._aggregate("commerce_order", where, exp.Count(this=exp.Star()), cmp, value)
        if measure == "amount_cents":
            return self._aggregate("commerce_order", where, exp.Sum(this=_col("t", "amount_cents")), cmp, value)
        # The last paid date: only customers who paid at all have one.
        return self._member(self._ids_in("commerce_order", where, having=self._order_having(node, None)))

    def _guides_of_stores(self, store_ids: list[int] | tuple[int, ...]) -> exp.Expression:
        guides = (
            exp.select(_col("g", "id"))
            .from_(exp.to_table("core_guide").as_("g"))
            .where(
                exp.and_(
                    exp.EQ(this=_col("g", "tenant_id"), expression=_lit(self.scope.tenant_id)),
                    _in(_col("g", "store_id"), store_ids),
                )
            )
        )
        return exp.In(this=_col("t", "guide_id"), query=exp.Subquery(this=guides))

    def _scope(self) -> list[exp.Expression]:
        """customer_scope: any follow relation (current or ended) with a guide in scope."""
        if self.scope.brand_wide:
            return []
        if self.scope.guide_id is not None:
            guides: exp.Expression = exp.EQ(this=_col("t", "guide_id"), expression=_lit(self.scope.guide_id))
        elif not self.scope.store_ids:
            return [exp.false()]
        else:
            guides = self._guides_of_stores(self.scope.store_ids)
        return [self._member(self._ids_in("customers_followrelation", [guides]))]

    def select(self, rule: dict[str, Any], *projection: exp.Expression) -> exp.Select:
        conds = [
            exp.EQ(this=_col("c", "tenant_id"), expression=_lit(self.scope.tenant_id)),
            exp.Is(this=_col("c", "merged_into_id"), expression=exp.null()),
            *self._scope(),
            self.node(rule),
        ]
        return (
            exp.select(*(projection or (_col("c", "id"),)))
            .from_(exp.to_table("customers_customer").as_("c"))
            .where(_all(*conds))
        )


def compile_ids(
    *, rule: dict[str, Any], scope: Scope, now: dt.datetime, dialect: str, limit: int | None = None, offset: int = 0
) -> str:
    """SQL for the matching customer ids in id order (a page of them with `limit`)."""
    select = Compiler(scope=scope, now=now, dialect=dialect).select(rule).order_by(_col("c", "id"))
    if limit is not None:
        select = select.limit(limit).offset(offset)
    return select.sql(dialect=dialect)


def compile_count(*, rule: dict[str, Any], scope: Scope, now: dt.datetime, dialect: str) -> str:
    return Compiler(scope=scope, now=now, dialect=dialect).select(rule, exp.Count(this=exp.Star())).sql(dialect=dialect)


def oltp_dialect() -> str:
    return "postgres" if connection.vendor == "postgresql" else "sqlite"


def oltp_ids(
    *, rule: dict[str, Any], scope: Scope, now: dt.datetime, limit: int | None = None, offset: int = 0
) -> list[int]:
    sql = compile_ids(rule=rule, scope=scope, now=now, dialect=oltp_dialect(), limit=limit, offset=offset)
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


def oltp_count(*, rule: dict[str, Any], scope: Scope, now: dt.datetime) -> int:
    with connection.cursor() as cursor:
        cursor.execute(compile_count(rule=rule, scope=scope, now=now, dialect=oltp_dialect()))
        return int(cursor.fetchone()[0])


def warehouse_ids(
    *, db: Any, rule: dict[str, Any], scope: Scope, now: dt.datetime, limit: int | None = None, offset: int = 0
) -> list[int]:
    """The same ids from the DuckDB warehouse (`db`: a connection from siyu.analytics.warehouse)."""
    sql = compile_ids(rule=rule, scope=scope, now=now, dialect="duckdb", limit=limit, offset=offset)
    return [row[0] for row in db.execute(sql).fetchall()]


def warehouse_count(*, db: Any, rule: dict[str, Any], scope: Scope, now: dt.datetime) -> int:
    return int(db.execute(compile_count(rule=rule, scope=scope, now=now, dialect="duckdb")).fetchone()[0])
