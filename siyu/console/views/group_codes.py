"""群活码 Group codes: one permanent QR over several customer groups (switching at a threshold or by schedule,
taking in the groups WeCom opens), invitations by tag, and migrations of personal-WeChat groups (社群迁移) with
printable posters. Plus the public landing page a customer opens from an invitation.

The services decide; these views parse a form, call one service or selector, and render.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.console.decorators import ConsoleRequest, console_view, reraise_refusal
from siyu.core.errors import SiyuError
from siyu.core.selectors import store_list
from siyu.groups.models import DEFAULT_THRESHOLD, WECOM_ROOM_LIMIT, CustomerGroup, GroupCode, GroupInvite
from siyu.groups.selectors import (
    access_group_code,
    access_group_migration,
    can_manage_group_codes,
    group_code_by_token,
    group_code_list,
    group_code_public_url_path,
    group_code_slot_counts,
    group_code_slots,
    group_code_slots_out_of_scope,
    group_code_stats,
    group_invite_list,
    group_invite_rule_list,
    group_list,
    group_migration_list,
    group_migration_stats,
    require_code_manager,
)
from siyu.groups.services import (
    GroupCodeInput,
    GroupSlotInput,
    MigrationSourceInput,
    group_code_create,
    group_code_set_status,
    group_code_sync,
    group_code_update,
    group_invite_rule_create,
    group_invite_rule_delete,
    group_migration_create,
)
from siyu.tags.selectors import tag_list

PAGE = 25


class GroupCodeForm(forms.Form):
    """The code's settings; its groups come as one table of checkboxes with a threshold and schedule each."""

    name = forms.CharField(label=_("Code name"), max_length=100)
    state = forms.CharField(
        label=_("State"), max_length=30, help_text=_("Up to 30 letters, digits, - _ . : how joins are attributed.")
    )
    store = forms.TypedChoiceField(label=_("Store"), coerce=int, required=False, empty_value=None)
    switch_mode = forms.ChoiceField(label=_("Switching"), choices=GroupCode.SwitchMode.choices)
    default_threshold = forms.IntegerField(
        label=_("Switch at (members)"), min_value=2, max_value=WECOM_ROOM_LIMIT, initial=DEFAULT_THRESHOLD
    )
    auto_create = forms.BooleanField(label=_("Let WeCom open the next group when all are full"), required=False)
    room_base_name = forms.CharField(label=_("Name of new groups"), max_length=40, required=False)
    room_base_id = forms.IntegerField(label=_("Number of the next new group"), min_value=0, initial=1)
    invite_text = forms.CharField(
        label=_("Invitation text"), max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, data: Any = None, *, stores: list[tuple[int | str, str]], **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.fields["store"].choices = stores


# Service fields the form shows under another name (group fields show above the table of groups).
SERVICE_FIELDS = {"store_id": "store"}


def _stores(request: ConsoleRequest) -> list[tuple[int | str, str]]:
    choices: list[tuple[int | str, str]] = [("", gettext("Whole brand"))] if request.actor.is_brand_wide else []
    return choices + [(s.id, f"{s.name} ({s.code})") for s in store_list(actor=request.actor)]


def _when(value: str) -> dt.datetime | None:
    """A datetime-local input, in the console's time zone."""
    if not value:
        return None
    try:
        naive = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return timezone.make_aware(naive) if timezone.is_naive(naive) else naive


def _int(value: str | None) -> int | None:
    try:
        return int(value or "")
    except ValueError:
        return None


def _group_rows(request: ConsoleRequest, code: GroupCode | None) -> list[dict[str, Any]]:
    """Every active group in scope as a row of the form, the code's own first (in their order)."""
    slots = {s.group_id: s for s in group_code_slots(code=code)} if code else {}
    data = request.POST if request.method == "POST" else None
    rows = []
    for group in group_list(actor=request.actor, status=CustomerGroup.Status.ACTIVE):
        slot = slots.get(group.id)
        key = str(group.id)
        if data is not None:
            chosen = key in data.getlist("groups")
            threshold = data.get(f"threshold_{key}", "")
            start, end = data.get(f"from_{key}", ""), data.get(f"until_{key}", "")
        else:
            chosen = slot is not None
            threshold = str(slot.threshold) if slot else ""
            start = timezone.localtime(slot.active_from).strftime("%Y-%m-%dT%H:%M") if slot and slot.active_from else ""
            end = timezone.localtime(slot.active_until).strftime("%Y-%m-%dT%H:%M") if slot and slot.active_until else ""
        rows.append(
            {
                "group": group,
                "chosen": chosen,
                "threshold": threshold,
                "from": start,
                "until": end,
                "order": slot.position if slot else 10**6,
            }
        )
    rows.sort(key=lambda r: (not r["chosen"], r["order"], -r["group"].created_at.timestamp()))
    return rows


def _kept_groups(request: ConsoleRequest, code: GroupCode | None) -> int:
    """How many of the code's groups the viewer cannot see (other stores'): said, so an edit does not surprise."""
    return len(group_code_slots_out_of_scope(actor=request.actor, code=code)) if code is not None else 0


def _form_view(request: ConsoleRequest, code: GroupCode | None) -> HttpResponse:
    require_code_manager(request.actor)
    initial: dict[str, Any] = {"auto_create": True, "switch_mode": GroupCode.SwitchMode.THRESHOLD}
    if code is not None:
        initial = {f: getattr(code, f) for f in GroupCodeForm.base_fields if f != "store"} | {"store": code.store_id}
    form = GroupCodeForm(request.POST if request.method == "POST" else None, stores=_stores(request), initial=initial)
    rows = _group_rows(request, code)
    group_error = ""
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        slots = [
            GroupSlotInput(
                group_id=r["group"].id,
                threshold=_int(r["threshold"]),
                active_from=_when(r["from"]),
                active_until=_when(r["until"]),
            )
            for r in rows
            if r["chosen"]
        ]
        values = GroupCodeInput(
            name=data["name"],
            state=data["state"],
            groups=slots,
            store_id=data["store"],
            switch_mode=data["switch_mode"],
            default_threshold=data["default_threshold"],
            auto_create=data["auto_create"],
            room_base_name=data["room_base_name"] or "",
            room_base_id=data["room_base_id"],
            invite_text=data["invite_text"] or "",
        )
        try:
            if code is None:
                code = group_code_create(actor=request.actor, data=values)
            else:
                code = group_code_update(actor=request.actor, code_id=code.id, data=values)
        except SiyuError as exc:
            reraise_refusal(exc)
            target = SERVICE_FIELDS.get(exc.field or "", exc.field)
            if exc.field and exc.field.startswith("group"):
                group_error = exc.message  # shown above the table of groups
            elif target in form.fields:
                form.add_error(target, exc.message)
            else:
                form.add_error(None, exc.message)
        else:
            messages.success(request, gettext("Group code saved."))
            return redirect("console:group_code_detail", code_id=code.id)
    context = {
        "tab": "codes",
        "form": form,
        "code": code,
        "rows": rows,
        "group_error": group_error,
        "kept_groups": _kept_groups(request, code),
    }
    status = 422 if request.method == "POST" else 200
    return render(request, "console/group_codes/form.html", context, status=status)


@require_GET
@console_view
def group_codes(request: ConsoleRequest) -> HttpResponse:
    actor = request.actor
    status = request.GET.get("status", "")
    status = status if status in GroupCode.Status.values else ""
    q = request.GET.get("q", "").strip()[:100]
    codes = group_code_list(actor=actor, status=status, q=q)
    page = Paginator(codes, PAGE).get_page(request.GET.get("page"))
    slots = group_code_slot_counts(actor=actor, codes=list(page.object_list))
    rows = [(code, slots[code.id]) for code in page.object_list]
    context = {
        "tab": "codes",
        "page": page,
        "rows": rows,
        "status": status,
        "statuses": GroupCode.Status.choices,
        "base_query": urlencode({k: v for k, v in (("q", q), ("status", status)) if v}),
        "can_manage": can_manage_group_codes(actor),
    }
    return render(request, "console/group_codes/list.html", context)


@require_http_methods(["GET", "POST"])
@console_view
def group_code_new(request: ConsoleRequest) -> HttpResponse:
    return _form_view(request, None)


@require_http_methods(["GET", "POST"])
@console_view
def group_code_edit(request: ConsoleRequest, code_id: int) -> HttpResponse:
    return _form_view(request, access_group_code(actor=request.actor, code_id=code_id))


@require_GET
@console_view
def group_code_detail(request: ConsoleRequest, code_id: int) -> HttpResponse:
    actor = request.actor
    code = access_group_code(actor=actor, code_id=code_id)
    stats = group_code_stats(actor=actor, code_id=code.id)
    invites = list(group_invite_list(actor=actor, code_id=code.id)[:20])
    chart = {"days": stats.daily.days, "joins": stats.daily.joins, "leaves": stats.daily.leaves}
    context = {
        "tab": "codes",
        "code": code,
        "stats": stats,
        "chart": chart,
        "invites": invites,
        "can_manage": can_manage_group_codes(actor),
        "public_path": group_code_public_url_path(code),
        "kept_groups": _kept_groups(request, code),
    }
    return render(request, "console/group_codes/detail.html", context)


@require_POST
@console_view
def group_code_status(request: ConsoleRequest, code_id: int) -> HttpResponse:
    status = request.POST.get("status", "")
    try:
        group_code_set_status(actor=request.actor, code_id=code_id, status=status)
    except SiyuError as exc:
        reraise_refusal(exc, include_not_found=True)
        messages.error(request, exc.message)
    return redirect("console:group_code_detail", code_id=code_id)


@require_POST
@console_view
def group_code_resync(request: ConsoleRequest, code_id: int) -> HttpResponse:
    require_code_manager(request.actor)
    code = access_group_code(actor=request.actor, code_id=code_id)
    synced = group_code_sync(tenant_id=request.actor.tenant_id, code_id=code.id)
    if synced is not None and synced.sync_error:
        messages.error(request, synced.sync_error)
    else:
        messages.success(request, gettext("The code's groups were written to WeCom."))
    return redirect("console:group_code_detail", code_id=code_id)


@require_GET
@console_view
def group_code_poster(request: ConsoleRequest, code_id: int) -> HttpResponse:
    code = access_group_code(actor=request.actor, code_id=code_id)
    caption = request.GET.get("caption", "")[:200] or code.invite_text or gettext("Scan to join our customer group")
    return render(
        request, "console/group_codes/poster.html", {"title": code.name, "qr": code.qr_code, "caption": caption}
    )


@require_http_methods(["GET", "POST"])
@console_view
def group_code_rules(request: ConsoleRequest) -> HttpResponse:
    actor = request.actor
    error = ""
    if request.method == "POST":
        try:
            if request.POST.get("delete"):
                group_invite_rule_delete(actor=actor, rule_id=_int(request.POST.get("delete")) or 0)
            else:
                group_invite_rule_create(
                    actor=actor,
                    tag_id=_int(request.POST.get("tag")) or 0,
                    code_id=_int(request.POST.get("code")) or 0,
                )
        except SiyuError as exc:
            reraise_refusal(exc)
            error = exc.message
        else:
            return redirect("console:group_code_rules")
    context = {
        "tab": "rules",
        "rules": list(group_invite_rule_list(actor=actor)),
        "tags": list(tag_list(actor=actor)) if actor.is_brand_wide else [],
        "codes": list(group_code_list(actor=actor, status=GroupCode.Status.ACTIVE)),
        "can_manage": actor.is_brand_wide,
        "error": error,
        "invites": list(group_invite_list(actor=actor)[:50]),
        "invite_labels": dict(GroupInvite.Status.choices),
    }
    return render(request, "console/group_codes/rules.html", context, status=422 if error else 200)


@require_GET
@console_view
def group_migrations(request: ConsoleRequest) -> HttpResponse:
    actor = request.actor
    rows = [group_migration_stats(actor=actor, migration_id=m.id) for m in group_migration_list(actor=actor)[:50]]
    return render(
        request,
        "console/group_codes/migrations.html",
        {"tab": "migrations", "rows": rows, "can_manage": can_manage_group_codes(actor)},
    )


class MigrationForm(forms.Form):
    name = forms.CharField(label=_("Migration name"), max_length=100)
    code = forms.TypedChoiceField(label=_("Target group code"), coerce=int)
    starts_on = forms.DateField(label=_("Starts on"), widget=forms.DateInput(attrs={"type": "date"}))
    ends_on = forms.DateField(label=_("Ends on"), widget=forms.DateInput(attrs={"type": "date"}))
    caption = forms.CharField(label=_("Poster caption"), max_length=200, required=False)
    sources = forms.CharField(
        label=_("Personal WeChat groups"),
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "老会员一群, 180\n老会员二群, 95"}),
        help_text=_("One group a line: its name, a comma, and its member count."),
    )

    def clean_sources(self) -> list[MigrationSourceInput]:
        sources = []
        for line in self.cleaned_data["sources"].splitlines():
            if not line.strip():
                continue
            name, _sep, count = line.replace("，", ",").rpartition(",")
            number = _int(count.strip())
            if not name.strip() or number is None:
                raise forms.ValidationError(gettext("Write each group as: name, member count"))
            sources.append(MigrationSourceInput(name=name.strip(), member_count=number))
        return sources


@require_http_methods(["GET", "POST"])
@console_view
def group_migration_new(request: ConsoleRequest) -> HttpResponse:
    actor = request.actor
    require_code_manager(actor)
    form = MigrationForm(request.POST if request.method == "POST" else None)
    form.fields["code"].choices = [(c.id, f"{c.name} ({c.state})") for c in group_code_list(actor=actor)]
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            migration = group_migration_create(
                actor=actor,
                name=data["name"],
                code_id=data["code"],
                starts_on=data["starts_on"],
                ends_on=data["ends_on"],
                caption=data["caption"] or "",
                sources=data["sources"],
            )
        except SiyuError as exc:
            reraise_refusal(exc)
            target = {"code_id": "code"}.get(exc.field or "", exc.field or "")
            form.add_error(target if target in form.fields else None, exc.message)
        else:
            return redirect("console:group_migration_detail", migration_id=migration.id)
    status = 422 if request.method == "POST" else 200
    return render(
        request, "console/group_codes/migration_form.html", {"tab": "migrations", "form": form}, status=status
    )


@require_GET
@console_view
def group_migration_detail(request: ConsoleRequest, migration_id: int) -> HttpResponse:
    stats = group_migration_stats(actor=request.actor, migration_id=migration_id)
    chart = {"days": stats.daily.days, "joins": stats.daily.joins, "leaves": stats.daily.leaves}
    return render(
        request, "console/group_codes/migration_detail.html", {"tab": "migrations", "stats": stats, "chart": chart}
    )


@require_GET
@console_view
def group_migration_poster(request: ConsoleRequest, migration_id: int, source_id: int) -> HttpResponse:
    migration = access_group_migration(actor=request.actor, migration_id=migration_id)
    source = migration.sources.filter(id=source_id).first()
    if source is None:
        raise Http404("no such source group")
    caption = migration.caption or gettext("Service upgrade: scan to join the new group for your welcome gift")
    context = {"title": migration.name, "qr": source.qr_code, "caption": caption, "subtitle": source.name}
    return render(request, "console/group_codes/poster.html", context)


@require_GET
def group_code_public(request: HttpRequest, token: str) -> HttpResponse:
    """The landing page of an invitation, for customers (no sign-in): the code's QR to long-press."""
    code = group_code_by_token(token=token)
    if code is None:
        raise Http404("no such group code")
    active = code.status == GroupCode.Status.ACTIVE and bool(code.qr_code) and not code.is_full
    return render(request, "console/group_codes/public.html", {"code": code, "active": active})


urlpatterns: list[URLPattern] = [
    path("acquisition/group-codes/", group_codes, name="group_codes"),
    path("acquisition/group-codes/new/", group_code_new, name="group_code_new"),
    path("acquisition/group-codes/rules/", group_code_rules, name="group_code_rules"),
    path("acquisition/group-codes/migrations/", group_migrations, name="group_migrations"),
    path("acquisition/group-codes/migrations/new/", group_migration_new, name="group_migration_new"),
    path(
        "acquisition/group-codes/migrations/<int:migration_id>/",
        group_migration_detail,
        name="group_migration_detail",
    ),
    path(
        "acquisition/group-codes/migrations/<int:migration_id>/poster/<int:source_id>/",
        group_migration_poster,
        name="group_migration_poster",
    ),
    path("acquisition/group-codes/<int:code_id>/", group_code_detail, name="group_code_detail"),
    path("acquisition/group-codes/<int:code_id>/edit/", group_code_edit, name="group_code_edit"),
    path("acquisition/group-codes/<int:code_id>/status/", group_code_status, name="group_code_status"),
    path("acquisition/group-codes/<int:code_id>/sync/", group_code_resync, name="group_code_sync"),
    path("acquisition/group-codes/<int:code_id>/poster/", group_code_poster, name="group_code_poster"),
    path("g/<str:token>/", group_code_public, name="group_code_public"),
]
