"""渠道活码 Channel live codes: list, create and edit codes, their stats (adds, deletes, net adds, 7-day retention,
per day and per guide), QR downloads (PNG, SVG, printable posters), welcome messages and their sends.

Managers (HQ, region, store) create and edit codes reaching guides in their scope; everyone sees the codes of
their scope. The services decide; these views parse the form, call one service or selector, and render.
"""

from __future__ import annotations

import re
from itertools import zip_longest
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, re_path
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.channels import selectors as sel
from siyu.channels import services
from siyu.channels.models import LiveCode, WelcomeAsset, WelcomeMessage, WelcomeSend
from siyu.channels.qr import qr_data_uri, qr_png, qr_svg
from siyu.channels.welcome import ATTACHMENTS_MAX
from siyu.console.decorators import ConsoleRequest, console_view, reraise_refusal
from siyu.core.errors import SiyuError
from siyu.core.models import Guide, Role
from siyu.core.scopes import Actor
from siyu.core.selectors import guide_list, store_list
from siyu.tags.selectors import tag_list

PAGE = 25
LISTED = (LiveCode.Status.ACTIVE, LiveCode.Status.PAUSED)  # the list's status filter (deleted codes are not listed)
POSTER_SIZES = {"table": ("10cm", "15cm"), "bag": ("9cm", "5.4cm")}
DAY_NAMES = "一二三四五六日"
# Welcome failures the console explains in plain words (wecom-api.md §4.4).
REASONS = {
    41050: "欢迎语码已过期（超过 20 秒）或无效",
    41051: "客户已与导购聊过天，或欢迎语码已被使用",
    41053: "客户尚未同意会话存档",
    -2: "企业微信未应答",
}


def _can_manage(request: ConsoleRequest) -> bool:
    return request.actor.role in (Role.HQ_ADMIN, Role.REGION_MANAGER, Role.STORE_MANAGER)


def _int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


@require_GET
@console_view
def channel_codes(request: ConsoleRequest) -> HttpResponse:
    actor = request.actor
    status = request.GET.get("status", "")
    status = status if status in LISTED else ""
    q = request.GET.get("q", "").strip()[:50]
    page = Paginator(sel.live_code_list(actor=actor, status=status, q=q), PAGE).get_page(request.GET.get("page"))
    counts = sel.live_code_add_counts(actor=actor, codes=list(page.object_list))
    rows = [(code, *counts[code.id], counts[code.id][0] - counts[code.id][1]) for code in page.object_list]
    context = {
        "page": page,
        "rows": rows,
        "status": status,
        "statuses": [(s, LiveCode.Status(s).label) for s in LISTED],
        "base_query": urlencode({k: v for k, v in (("q", q), ("status", status)) if v}),
        "can_manage": _can_manage(request),
        "tab": "codes",
    }
    return render(request, "console/channels/list.html", context)


# -- welcome attachments: links, uploaded images and files, mini-programs ---------------------------------------------
# The forms post them as plain fields; the services check them with the one validator the API's requests reach too
# (siyu.channels.welcome.clean_attachments), so a mini-program the API refuses is refused here for the same reason.

_ATTACHMENT_FIELD = re.compile(r"^welcome_attachments\.(\d+)\b")
LINK_FIELDS = ("title", "url", "desc", "picurl")
MINIPROGRAM_FIELDS = ("title", "appid", "page", "cover")


def _rows(post: QueryDict, prefix: str, names: tuple[str, ...]) -> list[dict[str, str]]:
    """The posted table rows named `<prefix>_<name>`, one dict per row (a missing cell reads as empty)."""
    columns = [post.getlist(f"{prefix}_{name}") for name in names]
    return [dict(zip(names, values, strict=True)) for values in zip_longest(*columns, fillvalue="")]


def attachments_posted(post: QueryDict) -> list[dict[str, Any]]:
    """A welcome form's attachments in the services' input form: the link rows (title, URL, description, picture),
    new links ("title | URL" lines), the chosen uploads, the images by URL, then the mini-program rows. Blank rows
    are skipped; a half-filled one goes on, for the validator to name.

    Every saved attachment comes back with all its fields and in its saved place (`attachment_order`, one token
    per attachment as the form showed it), so a form saved as shown changes nothing, whatever the API set; new
    ones go last, in the form's order."""
    items: list[tuple[str, dict[str, Any]]] = []
    for i, row in enumerate(_rows(post, "link", LINK_FIELDS)):
        if any(value.strip() for value in row.values()):
            # Browsers send a textarea's line breaks as CRLF; the description is stored with LF, as the API sends it.
            items.append((f"link:{i}", {"msgtype": "link", **row, "desc": row["desc"].replace("\r\n", "\n")}))
    for line in filter(None, (part.strip() for part in post.get("links", "").splitlines())):
        title, _, url = (p.strip() for p in line.partition("|"))
        items.append(("", {"msgtype": "link", "title": title, "url": url}))
    for asset_id in filter(None, (_int(v) for v in post.getlist("assets"))):
        kind = post.get(f"asset_kind_{asset_id}", "image")
        items.append((f"asset:{asset_id}", {"msgtype": "file" if kind == "file" else "image", "asset_id": asset_id}))
    urls = filter(None, (v.strip() for v in post.getlist("image_urls")))
    items.extend((f"image_url:{url}", {"msgtype": "image", "pic_url": url}) for url in urls)
    for j, row in enumerate(_rows(post, "mp", MINIPROGRAM_FIELDS)):
        if any(value.strip() for value in row.values()):
            mp = {"msgtype": "miniprogram", "title": row["title"], "appid": row["appid"], "page": row["page"]}
            items.append((f"miniprogram:{j}", {**mp, "asset_id": _int(row["cover"])}))
    order = {token: i for i, token in enumerate(post.getlist("attachment_order"))}
    items.sort(key=lambda item: order.get(item[0], len(order)))  # stable: new ones keep the form's order
    return [attachment for _, attachment in items]


def _order_tokens(attachments: list[dict[str, Any]]) -> list[str]:
    """One token per attachment naming the form field it shows in (see attachments_posted)."""
    tokens: list[str] = []
    counts = {"link": 0, "miniprogram": 0}
    for a in attachments:
        kind = a.get("msgtype")
        if kind in counts:
            tokens.append(f"{kind}:{counts[kind]}")
            counts[kind] += 1
        elif kind == "image" and a.get("pic_url"):
            tokens.append(f"image_url:{a['pic_url']}")
        else:
            tokens.append(f"asset:{a.get('asset_id')}")
    return tokens


def attachments_context(actor: Actor, attachments: list[dict[str, Any]]) -> dict[str, Any]:
    """What the attachment fields show: a row per link with all its fields, the chosen uploads, the images by
    URL, and the mini-programs with one empty row to add another while there is room."""
    miniprograms = [a for a in attachments if a.get("msgtype") == "miniprogram"]
    if len(attachments) < ATTACHMENTS_MAX:
        miniprograms.append({"title": "", "appid": "", "page": "", "asset_id": None})
    assets = list(sel.welcome_assets(actor=actor))
    return {
        "link_rows": [a for a in attachments if a.get("msgtype") == "link"],
        # A mini-program's cover is an upload too, but not an attachment of its own.
        "chosen_assets": {a.get("asset_id") for a in attachments if a.get("msgtype") in ("image", "file")},
        "image_urls": [a["pic_url"] for a in attachments if a.get("msgtype") == "image" and a.get("pic_url")],
        "assets": assets,
        "cover_assets": [a for a in assets if a.kind == WelcomeAsset.Kind.IMAGE],
        "miniprograms": miniprograms,
        "attachment_order": _order_tokens(attachments),
        "attachments_max": ATTACHMENTS_MAX,
    }


def attachment_error(exc: SiyuError, attachments: list[dict[str, Any]]) -> str:
    """The services' message, saying which attachment it is about (the form has no positions, only kinds)."""
    field = exc.field or ""
    if field == "welcome_attachments" and len(attachments) > ATTACHMENTS_MAX:
        return gettext(
            "At most %(max)d attachments (links, images, files and mini-programs together): this message has %(n)d."
        ) % {"max": ATTACHMENTS_MAX, "n": len(attachments)}
    match = _ATTACHMENT_FIELD.match(field)
    if match is None or int(match.group(1)) >= len(attachments):
        return exc.message
    index = int(match.group(1))
    kind = attachments[index].get("msgtype")
    number = sum(1 for a in attachments[: index + 1] if a.get("msgtype") == kind)
    labels = {"link": gettext("Link %(n)d"), "miniprogram": gettext("Mini-program %(n)d")}
    label = labels.get(str(kind), gettext("Upload %(n)d")) % {"n": number}
    return f"{label}: {exc.message}"


# -- the create / edit form ---------------------------------------------------------------------------------------

FALLBACK_KEPT = "keep"  # the fallback select's value for "keep the fallback guide you may not choose"

_WINDOW = re.compile(r"^([1-7])(?:-([1-7]))?\s+(\d{2}:\d{2})-(\d{2}:\d{2})$")


def parse_schedule(text: str) -> list[dict[str, Any]]:
    """ "1-5 09:00-18:00" per line (1 = Monday … 7 = Sunday) → the service's windows; ValueError on bad lines."""
    windows = []
    for line in filter(None, (part.strip() for part in re.split(r"[;\n]", text))):
        match = _WINDOW.match(line)
        if match is None:
            raise ValueError(line)
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if last < first:
            raise ValueError(line)
        windows.append({"days": list(range(first - 1, last)), "start": match.group(3), "end": match.group(4)})
    return windows


def format_schedule(windows: list[dict[str, Any]]) -> str:
    lines = []
    for w in windows:
        days = w["days"]
        span = f"{days[0] + 1}-{days[-1] + 1}" if len(days) > 1 else f"{days[0] + 1}"
        lines.append(f"{span} {w['start']}-{w['end']}")
    return "; ".join(lines)


def _form_values(request: ConsoleRequest) -> tuple[dict[str, Any], dict[str, str]]:
    """The posted form as service arguments, and the errors found while parsing it (by field)."""
    post = request.POST
    errors: dict[str, str] = {}
    guide_ids = [g for g in (_int(v) for v in post.getlist("guides")) if g]
    options: dict[int, dict[str, Any]] = {}
    for guide_id in guide_ids:
        cap_text = post.get(f"cap_{guide_id}", "").strip()
        cap = None
        if cap_text:
            cap = _int(cap_text)
            if cap is None:
                errors["guide_ids"] = gettext("Daily caps must be whole numbers of 1 or more.")
        try:
            schedule = parse_schedule(post.get(f"schedule_{guide_id}", ""))
        except ValueError as exc:
            errors["guide_ids"] = gettext("Schedule line “%(line)s” is not like “1-5 09:00-18:00”.") % {"line": exc}
            schedule = []
        options[guide_id] = {"daily_cap": cap, "schedule": schedule}
    values = {
        "name": post.get("name", ""),
        "guide_ids": guide_ids,
        "guide_options": options,
        "strategy": post.get("strategy", LiveCode.Strategy.ROUND_ROBIN),
        "tag_ids": [t for t in (_int(v) for v in post.getlist("tags")) if t],
        "fallback_guide_id": _int(post.get("fallback")),
        "welcome_text": post.get("welcome_text", ""),
        "welcome_attachments": attachments_posted(post),
    }
    return values, errors


def _form_context(request: ConsoleRequest, code: LiveCode | None, values: dict[str, Any] | None) -> dict[str, Any]:
    actor = request.actor
    guides = list(guide_list(actor=actor).filter(status=Guide.Status.ACTIVE))
    members = {m.guide_id: m for m in sel.live_code_guides(code)} if code else {}
    welcome = sel.welcome_for_code(code) if code else None
    if values is None:
        values = {
            "name": code.name if code else "",
            "state": code.state if code else "",
            "purpose": code.purpose if code else LiveCode.Purpose.CHANNEL,
            "store_id": code.store_id if code else None,
            "strategy": code.strategy if code else LiveCode.Strategy.ROUND_ROBIN,
            "guide_ids": list(members),
            "guide_options": {g: {"daily_cap": m.daily_cap, "schedule": m.schedule} for g, m in members.items()},
            "tag_ids": list(code.tags.values_list("id", flat=True)) if code else [],
            "fallback_guide_id": code.fallback_guide_id if code else None,
            "welcome_text": welcome.text if welcome else "",
            "welcome_attachments": welcome.attachments if welcome else [],
        }
    options = values.get("guide_options", {})
    # A fallback guide the reader may not choose (set by a manager above them, or one who has left WeCom): the form
    # neither names them nor drops them, it offers to keep them (posted as "keep"; see channel_code_edit).
    keepable = code is not None and code.fallback_guide_id not in (None, *(g.id for g in guides))
    fallback = values["fallback_guide_id"]
    fallback_kept = keepable and code is not None and (fallback is False or fallback == code.fallback_guide_id)
    guide_rows = [
        {
            "guide": g,
            "checked": g.id in values["guide_ids"],
            "cap": (options.get(g.id) or {}).get("daily_cap") or "",
            "schedule": format_schedule((options.get(g.id) or {}).get("schedule") or []),
        }
        for g in guides
    ]
    return {
        "code": code,
        "values": values,
        "guide_rows": guide_rows,
        "guides": guides,
        "fallback_keepable": keepable,
        "fallback_kept": fallback_kept,
        "stores": store_list(actor=actor),
        "tags": tag_list(actor=actor).select_related("group"),
        **attachments_context(actor, values["welcome_attachments"]),
        "strategies": LiveCode.Strategy.choices,
        "purposes": LiveCode.Purpose.choices,
        "tab": "codes",
    }


def _render_form(
    request: ConsoleRequest, code: LiveCode | None, values: dict[str, Any] | None, errors: dict[str, str]
) -> HttpResponse:
    context = {**_form_context(request, code, values), "errors": errors}
    return render(request, "console/channels/form.html", context, status=422 if errors else 200)


@require_http_methods(["GET", "POST"])
@console_view
def channel_code_new(request: ConsoleRequest) -> HttpResponse:
    services._require_manager(request.actor)
    if request.method == "GET":
        return _render_form(request, None, None, {})
    values, errors = _form_values(request)
    values["state"] = request.POST.get("state", "").strip()
    values["purpose"] = request.POST.get("purpose", LiveCode.Purpose.CHANNEL)
    values["store_id"] = _int(request.POST.get("store"))
    if not errors:
        try:
            code = services.live_code_create(actor=request.actor, **values)
        except SiyuError as exc:
            reraise_refusal(exc)
            errors[(exc.field or "form").split(".")[0]] = attachment_error(exc, values["welcome_attachments"])
        else:
            messages.success(request, gettext("Live code created."))
            return redirect("console:channel_code_detail", live_code_id=code.id)
    return _render_form(request, None, values, errors)


@require_http_methods(["GET", "POST"])
@console_view
def channel_code_edit(request: ConsoleRequest, live_code_id: int) -> HttpResponse:
    code = sel.access_live_code(actor=request.actor, live_code_id=live_code_id)
    services._require_editable(request.actor, code)
    if request.method == "GET":
        return _render_form(request, code, None, {})
    values, errors = _form_values(request)
    values["state"] = request.POST.get("state", code.state).strip()
    if request.POST.get("fallback") == FALLBACK_KEPT:
        values["fallback_guide_id"] = False  # the service's "unchanged"
    if not errors:
        try:
            services.live_code_update(actor=request.actor, live_code_id=code.id, **values)
        except SiyuError as exc:
            reraise_refusal(exc)
            if exc.field == "live_code_id":
                raise  # the code itself has gone meanwhile: console_view's 404, not a form error
            errors[(exc.field or "form").split(".")[0]] = attachment_error(exc, values["welcome_attachments"])
        else:
            messages.success(request, gettext("Live code saved."))
            return redirect("console:channel_code_detail", live_code_id=code.id)
    values.setdefault("purpose", code.purpose)
    return _render_form(request, code, values, errors)


# -- detail, stats, QR ---------------------------------------------------------------------------------------------


@require_GET
@console_view
def channel_code_detail(request: ConsoleRequest, live_code_id: int) -> HttpResponse:
    actor = request.actor
    code = sel.access_live_code(actor=actor, live_code_id=live_code_id)
    stats = sel.live_code_stats(actor=actor, live_code_id=code.id)
    chart = {
        "days": [d.day.strftime("%m-%d") for d in stats.by_day],
        "adds": [d.adds for d in stats.by_day],
        "deletes": [d.deletes for d in stats.by_day],
        "net": [d.net for d in stats.by_day],
    }
    sends = [
        (s, REASONS.get(s.errcode, s.error)) for s in sel.welcome_send_list(actor=actor, live_code_id=code.id)[:20]
    ]
    context = {
        "code": code,
        "stats": stats,
        "chart": chart,
        "members": sel.live_code_members(actor=actor, code=code),
        "next_users": sel.live_code_next_users(actor=actor, code=code),
        "tags": code.tags.all(),
        "welcome": sel.welcome_for_code(code),
        "sends": sends,
        "recent": sel.live_code_adds(actor=actor, live_code_id=code.id).select_related("guide")[:10],
        "can_manage": _can_manage(request),
        "public_png": sel.live_code_qr_url(code, "png") if code.config_id else "",
        "tab": "codes",
    }
    return render(request, "console/channels/detail.html", context)


@require_POST
@console_view
def channel_code_action(request: ConsoleRequest, live_code_id: int, action: str) -> HttpResponse:
    actions = {
        "pause": services.live_code_pause,
        "resume": services.live_code_resume,
        "delete": services.live_code_delete,
        "retry": services.live_code_retry,
    }
    if action not in actions:
        raise Http404("unknown action")
    live_code_id = int(live_code_id)
    try:
        actions[action](actor=request.actor, live_code_id=live_code_id)
    except SiyuError as exc:
        reraise_refusal(exc, include_not_found=True)
        messages.error(request, exc.message)
    else:
        messages.success(request, gettext("Done."))
    if action == "delete":
        return redirect("console:channel_codes")
    return redirect("console:channel_code_detail", live_code_id=live_code_id)


def _qr_response(code: LiveCode, fmt: str, *, download: bool) -> HttpResponse:
    branding = sel.qr_branding(tenant_id=code.tenant_id)
    logo = bytes(branding.logo) if branding and branding.logo else None
    link = sel.live_code_link(code)
    if fmt == "svg":
        response = HttpResponse(qr_svg(link, logo=logo), content_type="image/svg+xml")
    else:
        response = HttpResponse(qr_png(link, logo=logo), content_type="image/png")
    if download:
        response["Content-Disposition"] = f'attachment; filename="live-code-{code.id}.{fmt}"'
    response["Cache-Control"] = "private, max-age=300"
    return response


@require_GET
@console_view
def channel_code_qr(request: ConsoleRequest, live_code_id: int, fmt: str) -> HttpResponse:
    code = sel.access_live_code(actor=request.actor, live_code_id=int(live_code_id))
    if not code.config_id or code.status == LiveCode.Status.DELETED:
        raise Http404("no QR")
    return _qr_response(code, fmt, download=request.GET.get("download") == "1")


@require_GET
def channel_qr_public(request: HttpRequest, token: str, fmt: str) -> HttpResponse:
    """The QR picture landing pages show without a login, by the code's unguessable token."""
    code = sel.live_code_by_qr_token(token=token)
    if code is None:
        raise Http404("no such code")
    return _qr_response(code, fmt, download=False)


@require_GET
@console_view
def channel_code_poster(request: ConsoleRequest, live_code_id: int) -> HttpResponse:
    code = sel.access_live_code(actor=request.actor, live_code_id=live_code_id)
    if not code.config_id:
        raise Http404("no QR")
    size = request.GET.get("size", "table")
    size = size if size in POSTER_SIZES else "table"
    branding = sel.qr_branding(tenant_id=code.tenant_id)
    logo = bytes(branding.logo) if branding and branding.logo else None
    width, height = POSTER_SIZES[size]
    context = {
        "code": code,
        "size": size,
        "width": width,
        "height": height,
        "qr": qr_data_uri(sel.live_code_link(code), logo=logo),
        "caption": (branding.caption if branding and branding.caption else gettext("Scan to add our guide")),
        "brand": request.membership.tenant.name,
    }
    return render(request, "console/channels/poster.html", context)


# -- welcome messages, assets, logo --------------------------------------------------------------------------------


def _welcome_values(request: ConsoleRequest) -> dict[str, Any]:
    """What the welcome form shows: what was posted, the message named by ?edit=<id>, or an empty form."""
    if request.method == "POST" and request.POST.get("form") == "welcome":
        return {
            "scope": request.POST.get("scope", WelcomeMessage.Scope.DEFAULT),
            "guide_id": _int(request.POST.get("guide")),
            "text": request.POST.get("text", ""),
            "attachments": attachments_posted(request.POST),
        }
    editing = _int(request.GET.get("edit"))
    message = sel.welcome_messages(actor=request.actor).filter(id=editing).first() if editing else None
    if editing and message is None:
        raise Http404("no such welcome message")
    if message is None:
        return {"scope": "", "guide_id": None, "text": "", "attachments": []}
    return {
        "scope": message.scope,
        "guide_id": message.guide_id,
        "text": message.text,
        "attachments": message.attachments,
    }


@require_http_methods(["GET", "POST"])
@console_view
def channel_welcome(request: ConsoleRequest) -> HttpResponse:
    actor = request.actor
    errors: dict[str, str] = {}
    welcome = _welcome_values(request)
    if request.method == "POST":
        form = request.POST.get("form")
        try:
            if form == "welcome":
                services.welcome_message_save(
                    actor=actor,
                    scope=welcome["scope"],
                    guide_id=welcome["guide_id"],
                    text=welcome["text"],
                    attachments=welcome["attachments"],
                )
            elif form == "asset":
                upload = request.FILES.get("file")
                services.welcome_asset_upload(
                    actor=actor,
                    kind=request.POST.get("kind", "image"),
                    name=upload.name if upload else "",
                    content=upload.read() if upload else b"",
                    content_type=upload.content_type if upload else "",
                )
            elif form == "logo":
                upload = request.FILES.get("logo")
                services.qr_branding_save(
                    actor=actor,
                    logo=(upload.read() if upload else None) if not request.POST.get("remove") else b"",
                    caption=request.POST.get("caption"),
                )
        except SiyuError as exc:
            reraise_refusal(exc)
            # Unknown guides or uploads are the form's errors (a 404 page would lose what was typed).
            key = "welcome_attachments" if (exc.field or "").startswith("welcome_attachments") else form or "form"
            errors[key] = attachment_error(exc, welcome["attachments"])
        else:
            messages.success(request, gettext("Saved."))
            return redirect("console:channel_welcome")
    context = {
        "welcomes": sel.welcome_messages(actor=actor),
        "welcome": welcome,
        **attachments_context(actor, welcome["attachments"]),
        "guides": guide_list(actor=actor).filter(status=Guide.Status.ACTIVE),
        "branding": sel.qr_branding(tenant_id=actor.tenant_id),
        "errors": errors,
        "can_manage": _can_manage(request),
        "is_hq": actor.is_brand_wide,
        "tab": "welcome",
    }
    return render(request, "console/channels/welcome.html", context, status=422 if errors else 200)


@require_GET
@console_view
def channel_welcome_sends(request: ConsoleRequest) -> HttpResponse:
    status = request.GET.get("status", WelcomeSend.Status.FAILED)
    status = status if status in WelcomeSend.Status.values else ""
    raw_code = request.GET.get("live_code_id", "")
    code = None
    if raw_code:
        # One code's sends: a code outside the scope (or another brand's, or no code at all) is a 404, like the API.
        live_code_id = _int(raw_code)
        if live_code_id is None:
            raise Http404("live_code_id must be a live code's id")
        code = sel.access_live_code(actor=request.actor, live_code_id=live_code_id)
    sends = sel.welcome_send_list(actor=request.actor, live_code_id=code.id if code else None, status=status)
    page = Paginator(sends, PAGE).get_page(request.GET.get("page"))
    rows = [(s, REASONS.get(s.errcode, s.error)) for s in page.object_list]
    query = {"status": status or "all", **({"live_code_id": str(code.id)} if code else {})}
    context = {
        "page": page,
        "rows": rows,
        "status": status,
        "statuses": WelcomeSend.Status.choices,
        "code": code,
        "base_query": urlencode(query),
        "tab": "sends",
    }
    return render(request, "console/channels/sends.html", context)


urlpatterns: list[URLPattern] = [
    path("acquisition/channel-codes/", channel_codes, name="channel_codes"),
    path("acquisition/channel-codes/new/", channel_code_new, name="channel_code_new"),
    path("acquisition/channel-codes/welcome/", channel_welcome, name="channel_welcome"),
    path("acquisition/channel-codes/sends/", channel_welcome_sends, name="channel_welcome_sends"),
    path("acquisition/channel-codes/<int:live_code_id>/", channel_code_detail, name="channel_code_detail"),
    path("acquisition/channel-codes/<int:live_code_id>/edit/", channel_code_edit, name="channel_code_edit"),
    path("acquisition/channel-codes/<int:live_code_id>/poster/", channel_code_poster, name="channel_code_poster"),
    re_path(
        r"^acquisition/channel-codes/(?P<live_code_id>[0-9]+)/qr\.(?P<fmt>png|svg)$",
        channel_code_qr,
        name="channel_code_qr",
    ),
    re_path(
        r"^acquisition/channel-codes/(?P<live_code_id>[0-9]+)/(?P<action>pause|resume|delete|retry)/$",
        channel_code_action,
        name="channel_code_action",
    ),
    re_path(r"^c/qr/(?P<token>[A-Za-z0-9_-]{20,64})\.(?P<fmt>png|svg)$", channel_qr_public, name="channel_qr_public"),
]
