"""标签 Tags: the brand's tag catalogue (every role reads it; HQ creates, renames, reorders and deletes groups and
tags, in place with HTMX) and the automatic tagging rules (自动打标, HQ only: list, form, run now, last run counts).

The services decide; these views parse the form, call one service or selector, and render. Catalogue changes answer
htmx with the groups panel re-rendered (200 with the error in it on a refusal: htmx swaps only successful answers),
plain posts with a redirect.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.console.decorators import ConsoleRequest, console_view, reraise_refusal
from siyu.core.errors import SiyuError
from siyu.core.models import Role
from siyu.tags import rules, services
from siyu.tags.models import TagRule
from siyu.tags.selectors import tag_customer_counts, tag_group_list, tag_list


def _groups_context(request: ConsoleRequest, error: str = "") -> dict[str, Any]:
    counts = tag_customer_counts(actor=request.actor)
    groups = [(g, [(t, counts.get(t.id, 0)) for t in g.tags.all()]) for g in tag_group_list(actor=request.actor)]
    return {"groups": groups, "can_edit": request.actor.role == Role.HQ_ADMIN, "error": error}


@require_GET
@console_view
def tag_catalogue(request: ConsoleRequest) -> HttpResponse:
    return render(request, "console/tags/list.html", _groups_context(request))


def _order(text: str) -> int:
    text = text.strip()
    return int(text) if text.isdigit() else 0


def _catalogue_answer(request: ConsoleRequest, done: str, error: str) -> HttpResponse:
    if request.htmx:
        return render(request, "console/tags/_groups.html", _groups_context(request, error))
    if error:
        messages.error(request, error)
    else:
        messages.success(request, done)
    return redirect("console:tag_list")


@require_POST
@console_view
def tag_catalogue_change(request: ConsoleRequest, action: str) -> HttpResponse:
    """group-new / tag-new / group-rename / tag-rename / group-delete / tag-delete: one service call each."""
    post, actor = request.POST, request.actor
    target = _order(post.get("id", ""))
    try:
        if action == "group-new":
            tags = [t.strip() for t in post.get("tags", "").replace("，", ",").split(",") if t.strip()]
            services.tag_group_create(
                actor=actor, name=post.get("name", ""), order=_order(post.get("order", "")), tags=tags
            )
            done = gettext("Tag group created.")
        elif action == "tag-new":
            services.tag_create(
                actor=actor, group_id=target, name=post.get("name", ""), order=_order(post.get("order", ""))
            )
            done = gettext("Tag created.")
        elif action == "group-rename":
            services.tag_group_update(
                actor=actor, group_id=target, name=post.get("name", ""), order=_order(post.get("order", ""))
            )
            done = gettext("Tag group saved.")
        elif action == "tag-rename":
            services.tag_update(
                actor=actor, tag_id=target, name=post.get("name", ""), order=_order(post.get("order", ""))
            )
            done = gettext("Tag saved.")
        elif action == "group-delete":
            n = services.tag_group_delete(actor=actor, group_id=target)
            done = gettext("Tag group deleted; its tags were taken off %(n)s customers.") % {"n": n}
        elif action == "tag-delete":
            n = services.tag_delete(actor=actor, tag_id=target)
            done = gettext("Tag deleted; it was taken off %(n)s customers.") % {"n": n}
        else:
            raise SiyuError(gettext("Unknown action."))
    except SiyuError as exc:
        reraise_refusal(exc)
        return _catalogue_answer(request, "", exc.message)
    return _catalogue_answer(request, done, "")


# -- automatic tagging rules -----------------------------------------------------------------------------------------

RULE_FIELDS = ("name", "kind", "tag_id", "event_type", "min_count", "within_days", "product_series", "tier",
               "metric", "bands")  # fmt: skip


def _int(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return -1  # refused by the service, naming the field


def _bands(text: str) -> list[dict[str, Any]]:
    """One band a line: tag id, min, max (max may be empty), separated by commas."""
    bands = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.replace("，", ",").split(",")]
        if not any(parts):
            continue
        parts += [""] * (3 - len(parts))
        bands.append({"tag_id": _int(parts[0]), "min": _int(parts[1]) or 0, "max": _int(parts[2])})
    return bands


def _rule_values(request: ConsoleRequest, kind: str | None = None) -> dict[str, Any]:
    post = request.POST
    kind = kind or post.get("kind", TagRule.Kind.BEHAVIOUR)
    params: dict[str, Any]
    if kind == TagRule.Kind.BEHAVIOUR:
        params = {"event_type": post.get("event_type", ""), "min_count": _int(post.get("min_count", "")),
                  "within_days": _int(post.get("within_days", ""))}  # fmt: skip
    elif kind == TagRule.Kind.PURCHASE:
        params = {"product_series": post.get("product_series", ""), "min_count": _int(post.get("min_count", "")),
                  "within_days": _int(post.get("within_days", ""))}  # fmt: skip
    elif kind == TagRule.Kind.TIER:
        params = {"tier": post.get("tier", "")}
    else:
        params = {"metric": post.get("metric", ""), "bands": _bands(post.get("bands", "")),
                  "within_days": _int(post.get("within_days", ""))}  # fmt: skip
    return {
        "name": post.get("name", ""),
        "kind": kind,
        "tag_id": _int(post.get("tag_id", "")) if kind != TagRule.Kind.RFM else None,
        "params": params,
        "enabled": post.get("enabled") == "on",
    }


def _form_values(rule: TagRule | None) -> dict[str, Any]:
    if rule is None:
        return {"name": "", "kind": TagRule.Kind.BEHAVIOUR, "tag_id": None, "params": {}, "enabled": True, "bands": ""}
    bands = "\n".join(
        f"{b['tag_id']}, {b['min']}, {'' if b['max'] is None else b['max']}" for b in rule.params.get("bands", [])
    )
    return {"name": rule.name, "kind": rule.kind, "tag_id": rule.tag_id, "params": rule.params,
            "enabled": rule.enabled, "bands": bands}  # fmt: skip


def _render_rule_form(
    request: ConsoleRequest, rule: TagRule | None, values: dict[str, Any], errors: dict[str, str]
) -> HttpResponse:
    context = {
        "rule": rule,
        "values": values,
        "errors": errors,
        "tags": tag_list(actor=request.actor),
        "kinds": TagRule.Kind.choices,
        "metrics": rules.RFM_METRICS,
    }
    return render(request, "console/tags/rule_form.html", context, status=422 if errors else 200)


def _rule_error(exc: SiyuError) -> dict[str, str]:
    field = (exc.field or "form").split(".")[0]
    return {field if field in RULE_FIELDS else "form": exc.message}


@require_GET
@console_view
def tag_rule_list(request: ConsoleRequest) -> HttpResponse:
    return render(request, "console/tags/rules.html", {"rules": list(rules.tag_rule_list(actor=request.actor))})


@require_http_methods(["GET", "POST"])
@console_view
def tag_rule_new(request: ConsoleRequest) -> HttpResponse:
    rules.require_rule_admin(request.actor)
    if request.method == "GET":
        return _render_rule_form(request, None, _form_values(None), {})
    values = _rule_values(request)
    try:
        rules.tag_rule_create(actor=request.actor, **values)
    except SiyuError as exc:
        reraise_refusal(exc)
        shown = {**values, "bands": request.POST.get("bands", "")}
        return _render_rule_form(request, None, shown, _rule_error(exc))
    messages.success(request, gettext("Tagging rule created: it runs every night, or now with Run now."))
    return redirect("console:tag_rules")


@require_http_methods(["GET", "POST"])
@console_view
def tag_rule_edit(request: ConsoleRequest, rule_id: int) -> HttpResponse:
    rule = rules.access_tag_rule(actor=request.actor, rule_id=rule_id)
    if request.method == "GET":
        return _render_rule_form(request, rule, _form_values(rule), {})
    values = _rule_values(request, kind=rule.kind)  # the kind is fixed: its select is disabled on edit
    try:
        rules.tag_rule_update(
            actor=request.actor,
            rule_id=rule.id,
            name=values["name"],
            tag_id=values["tag_id"],
            params=values["params"],
            enabled=values["enabled"],
        )
    except SiyuError as exc:
        reraise_refusal(exc)
        shown = {**values, "bands": request.POST.get("bands", "")}
        return _render_rule_form(request, rule, shown, _rule_error(exc))
    messages.success(request, gettext("Tagging rule saved."))
    return redirect("console:tag_rules")


@require_POST
@console_view
def tag_rule_action(request: ConsoleRequest, rule_id: int, action: str) -> HttpResponse:
    """run / enable / disable / delete: one service call each; errors come back as a message."""
    rule = rules.access_tag_rule(actor=request.actor, rule_id=rule_id)
    try:
        if action == "run":
            run = rules.tag_rule_run_now(actor=request.actor, rule_id=rule.id)
            done = gettext("Rule run: %(added)s tagged, %(removed)s untagged, %(matched)s carry its tags.") % {
                "added": run.added,
                "removed": run.removed,
                "matched": run.matched,
            }
        elif action in ("enable", "disable"):
            rules.tag_rule_update(actor=request.actor, rule_id=rule.id, enabled=action == "enable")
            done = gettext("Tagging rule enabled.") if action == "enable" else gettext("Tagging rule disabled.")
        elif action == "delete":
            rules.tag_rule_delete(actor=request.actor, rule_id=rule.id)
            done = gettext("Tagging rule deleted; the tags it applied stay on the customers.")
        else:
            raise SiyuError(gettext("Unknown action."))
    except SiyuError as exc:
        reraise_refusal(exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("console:tag_rules")


urlpatterns: list[URLPattern] = [
    path("tags/", tag_catalogue, name="tag_list"),
    path("tags/catalogue/<slug:action>/", tag_catalogue_change, name="tag_catalogue_change"),
    path("tags/rules/", tag_rule_list, name="tag_rules"),
    path("tags/rules/new/", tag_rule_new, name="tag_rule_new"),
    path("tags/rules/<int:rule_id>/", tag_rule_edit, name="tag_rule_edit"),
    path("tags/rules/<int:rule_id>/<slug:action>/", tag_rule_action, name="tag_rule_action"),
]
