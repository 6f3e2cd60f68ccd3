"""关键词打标 Chat keyword tagging: the brand's keyword rules (list, create, edit, enable/disable, delete) and how far
the session archive has been read, with a button to read new messages now.

HQ only: other roles get the forbidden page. The services decide; these views parse the form, call one service or
selector, and render.
"""

from __future__ import annotations

import re
from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.console.decorators import ConsoleRequest, console_view, reraise_refusal
from siyu.core.errors import SiyuError
from siyu.core.jobs import enqueue_on_commit
from siyu.tags import selectors, services
from siyu.tags.models import KeywordRule
from siyu.tags.selectors import tag_list
from siyu.tags.tasks import chat_archive_pull_run

_WORD_SEPARATORS = re.compile(r"[\n,，、;；]")
FIELDS = ("name", "keywords", "exclusions", "tag_ids", "mode", "scope")


def parse_words(text: str) -> list[str]:
    """One word per line, or separated by commas (, ，、) or semicolons; blanks are skipped."""
    return [w.strip() for w in _WORD_SEPARATORS.split(text) if w.strip()]


def _ids(values: list[str]) -> list[int]:
    return [int(v) for v in values if v.isdigit()]


def _values(request: ConsoleRequest) -> dict[str, Any]:
    post = request.POST
    return {
        "name": post.get("name", ""),
        "keywords": parse_words(post.get("keywords", "")),
        "exclusions": parse_words(post.get("exclusions", "")),
        "tag_ids": _ids(post.getlist("tags")),
        "mode": post.get("mode", KeywordRule.Mode.ANY),
        "scope": post.get("scope", KeywordRule.Scope.BOTH),
        "customer_only": post.get("customer_only") == "on",
        "enabled": post.get("enabled") == "on",
    }


def _render_form(
    request: ConsoleRequest, rule: KeywordRule | None, values: dict[str, Any], errors: dict[str, str]
) -> HttpResponse:
    context = {
        "rule": rule,
        "values": {**values, "keywords": "\n".join(values["keywords"]), "exclusions": "\n".join(values["exclusions"])},
        "errors": errors,
        "tags": tag_list(actor=request.actor),
        "modes": KeywordRule.Mode.choices,
        "scopes": KeywordRule.Scope.choices,
    }
    return render(request, "console/keyword_rules/form.html", context, status=422 if errors else 200)


def _error(exc: SiyuError) -> dict[str, str]:
    field = (exc.field or "form").split(".")[0]
    return {field if field in FIELDS else "form": exc.message}


@require_GET
@console_view
def keyword_rules(request: ConsoleRequest) -> HttpResponse:
    actor = request.actor
    counts = selectors.keyword_rule_tagged_counts(actor=actor)
    context = {
        "rows": [(rule, counts.get(rule.id, 0)) for rule in selectors.keyword_rule_list(actor=actor)],
        "cursors": list(selectors.chat_archive_cursors(actor=actor)[:3]),
    }
    return render(request, "console/keyword_rules/list.html", context)


@require_http_methods(["GET", "POST"])
@console_view
def keyword_rule_new(request: ConsoleRequest) -> HttpResponse:
    selectors.require_keyword_admin(request.actor)
    if request.method == "GET":
        blank = {"name": "", "keywords": [], "exclusions": [], "tag_ids": [], "mode": KeywordRule.Mode.ANY,
                 "scope": KeywordRule.Scope.BOTH, "customer_only": True, "enabled": True}  # fmt: skip
        return _render_form(request, None, blank, {})
    values = _values(request)
    try:
        services.keyword_rule_create(actor=request.actor, **values)
    except SiyuError as exc:
        reraise_refusal(exc)
        return _render_form(request, None, values, _error(exc))
    messages.success(request, gettext("Keyword rule created: it applies to the chat messages read from now on."))
    return redirect("console:keyword_rules")


@require_http_methods(["GET", "POST"])
@console_view
def keyword_rule_edit(request: ConsoleRequest, rule_id: int) -> HttpResponse:
    rule = selectors.access_keyword_rule(actor=request.actor, rule_id=rule_id)
    if request.method == "GET":
        values = {
            "name": rule.name,
            "keywords": rule.keywords,
            "exclusions": rule.exclusions,
            "tag_ids": [t.id for t in rule.tags.all()],
            "mode": rule.mode,
            "scope": rule.scope,
            "customer_only": rule.customer_only,
            "enabled": rule.enabled,
        }
        return _render_form(request, rule, values, {})
    values = _values(request)
    try:
        services.keyword_rule_update(actor=request.actor, rule_id=rule.id, **values)
    except SiyuError as exc:
        reraise_refusal(exc)
        return _render_form(request, rule, values, _error(exc))
    messages.success(request, gettext("Keyword rule saved."))
    return redirect("console:keyword_rules")


@require_POST
@console_view
def keyword_rule_action(request: ConsoleRequest, rule_id: int, action: str) -> HttpResponse:
    """enable / disable / delete: one service call each; errors come back as a message."""
    rule = selectors.access_keyword_rule(actor=request.actor, rule_id=rule_id)
    try:
        if action in ("enable", "disable"):
            services.keyword_rule_update(actor=request.actor, rule_id=rule.id, enabled=action == "enable")
            done = gettext("Keyword rule enabled.") if action == "enable" else gettext("Keyword rule disabled.")
        elif action == "delete":
            services.keyword_rule_delete(actor=request.actor, rule_id=rule.id)
            done = gettext("Keyword rule deleted; the tags it applied stay on the customers.")
        else:
            raise SiyuError(gettext("Unknown action."))
    except SiyuError as exc:
        reraise_refusal(exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("console:keyword_rules")


@require_POST
@console_view
def keyword_rules_pull(request: ConsoleRequest) -> HttpResponse:
    """Read the new archived messages now instead of at the worker's next sweep."""
    selectors.require_keyword_admin(request.actor)
    enqueue_on_commit(chat_archive_pull_run, request.actor.tenant_id)
    messages.success(request, gettext("Reading new chat messages: refresh in a moment to see what was tagged."))
    return redirect("console:keyword_rules")


urlpatterns: list[URLPattern] = [
    path("tags/keyword-rules/", keyword_rules, name="keyword_rules"),
    path("tags/keyword-rules/new/", keyword_rule_new, name="keyword_rule_new"),
    path("tags/keyword-rules/pull/", keyword_rules_pull, name="keyword_rules_pull"),
    path("tags/keyword-rules/<int:rule_id>/", keyword_rule_edit, name="keyword_rule_edit"),
    path("tags/keyword-rules/<int:rule_id>/<slug:action>/", keyword_rule_action, name="keyword_rule_action"),
]
