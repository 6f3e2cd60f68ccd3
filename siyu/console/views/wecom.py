"""企业微信设置 WeCom settings: the connection with its test, sync status and history, and the raw-callback log.

Brand-level settings: HQ admins only. Everyone else gets the "not allowed" page, the callback log included (its
events name customers and members of every store).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.console.decorators import ConsoleRequest, console_view
from siyu.console.selectors import CheapPaginator
from siyu.console.wecom_forms import CallbackFilterForm, ConnectionForm
from siyu.core.errors import Conflict, NotFound, PermissionDenied, SiyuError
from siyu.customers.models import Identity
from siyu.customers.selectors import customer_by_identity
from siyu.wecom.crypto import new_callback_token, new_encoding_aes_key
from siyu.wecom.models import SyncRun
from siyu.wecom.selectors import (
    COUNT_KEYS,
    SyncRunSummary,
    connection_settings,
    connection_test,
    raw_callback_detail,
    raw_callback_list,
    sync_history,
    sync_status,
)
from siyu.wecom.services import (
    SyncBusy,
    connection_create,
    connection_update,
    raw_callback_retry,
    sync_request,
)

# Plain words for what the connection test found (codes from siyu.wecom.selectors.ConnectionCheck).
PROBLEMS = {
    "not_configured": _("No secret is saved for this app."),
    "bad_secret": _(
        "WeCom refused the secret: check that it belongs to this app, was copied whole, and was not reset since."
    ),
    "bad_corp_id": _("WeCom does not know this corp ID: copy it from WeCom's admin console, My company."),
    "not_permitted": _(
        "This app may not call this API: enable it and add it to Customer contact, apps that may call the API."
    ),
    "not_visible": _("These members or departments are outside the app's visible range."),
    "ip_not_allowed": _("WeCom refused this server's IP address: add it to the app's trusted IPs."),
    "rate_limited": _("WeCom is limiting calls right now: try again in a minute."),
    "wecom_busy": _("WeCom was busy: try again."),
    "wecom_error": _("WeCom answered with an error."),
    "unreachable": _("Could not connect to the API base URL: check the address, DNS and firewall."),
    "timeout": _("The API base URL did not answer in time."),
    "http_error": _("The API base URL answered with an HTTP error: is it WeCom's API?"),
    "bad_response": _("The answer was not WeCom's: is the API base URL right?"),
    "unexpected": _("The test could not run: the server log has the details."),
}
STEPS = {
    "gettoken": _("Get an access token"),
    "department/list": _("Read the departments"),
    "externalcontact/get_follow_user_list": _("Read the members with customer contact"),
}
SECRETS = {"contact": _("Customer contact secret"), "app": _("App secret")}
PHASES = {"members": _("Members"), "tags": _("Corp tags"), "contacts": _("Contacts"), "groups": _("Customer groups")}
GENERATORS = {"callback_token": new_callback_token, "encoding_aes_key": new_encoding_aes_key}
# How long the sync panel keeps waiting for a worker to start a sync it asked for.
QUEUE_PATIENCE = 600


def _hq_only(request: ConsoleRequest) -> None:
    if not request.actor.is_brand_wide:
        raise PermissionDenied(gettext("Only HQ admins can see and change the brand's WeCom settings."))


# -- connection ----------------------------------------------------------------------------------------------


def _callback_url(request: ConsoleRequest, corp_id: str) -> str:
    return request.build_absolute_uri(reverse("wecom:callback", args=[corp_id]))


@require_http_methods(["GET", "POST"])
@console_view
def connection(request: ConsoleRequest) -> HttpResponse:
    _hq_only(request)
    current = connection_settings(actor=request.actor)
    form = ConnectionForm(request.POST if request.method == "POST" else None, current=current)
    if request.method == "POST" and form.is_valid():
        try:
            if current is None:
                connection_create(actor=request.actor, **form.changes())
            else:
                connection_update(actor=request.actor, changes=form.changes())
        except Conflict:
            # What the form cannot know: another brand holds this corp (corp ids are global in WeCom).
            form.add_error("corp_id", gettext("Another brand is already connected to this corp ID."))
        except SiyuError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, gettext("WeCom connection saved."))
            return redirect("console:wecom")
    context = {
        "form": form,
        "current": current,
        "callback_url": _callback_url(request, current.corp_id) if current else "",
        "callback_url_example": _callback_url(request, "CORP_ID"),
    }
    return render(request, "console/wecom/connection.html", context, status=422 if form.errors else 200)


@require_POST
@console_view
def connection_test_view(request: ConsoleRequest) -> HttpResponse:
    """Try the saved connection (HTMX): calls WeCom with a short timeout, shows each step in plain words."""
    _hq_only(request)
    try:
        result = connection_test(actor=request.actor)
    except NotFound:
        return render(request, "console/wecom/_test_result.html", {"missing": True})
    checks = [
        {
            "check": check,
            "step": STEPS.get(check.endpoint, check.endpoint),
            "secret": SECRETS.get(check.secret, check.secret),
            "problem": PROBLEMS.get(check.problem, "") if check.problem else "",
        }
        for check in result.checks
    ]
    return render(request, "console/wecom/_test_result.html", {"result": result, "checks": checks})


@require_GET
@never_cache
@console_view
def generate(request: ConsoleRequest, field: str) -> HttpResponse:
    """A fresh random callback token or EncodingAESKey in its input (HTMX); nothing is saved until the form is."""
    _hq_only(request)
    if field not in GENERATORS:
        raise Http404("no such field")
    form = ConnectionForm(current=None, initial={field: GENERATORS[field]()})
    return HttpResponse(str(form[field]))


# -- sync ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseCounts:
    key: str
    label: str
    created: int
    updated: int
    unchanged: int
    deleted: int


@dataclass(frozen=True)
class RunView:
    """A sync run with the words the page shows for it (status, phase) and its counts per phase, in phase order."""

    run: SyncRunSummary
    status_label: str
    phase_label: str
    phases: list[PhaseCounts]

    @property
    def phase_position(self) -> int:
        """1-based position of the current phase among the run's phases (for "phase 2 of 4")."""
        return self.run.phases.index(self.run.phase) + 1 if self.run.phase in self.run.phases else 0

    @property
    def phases_done(self) -> int:
        return len(self.run.phases) if self.run.status == SyncRun.Status.SUCCEEDED else self.phase_position - 1


def _run_view(run: SyncRunSummary) -> RunView:
    statuses = dict(SyncRun.Status.choices)
    return RunView(
        run=run,
        status_label=str(statuses.get(run.status, run.status)),
        phase_label=str(PHASES.get(run.phase, run.phase)),
        phases=[
            PhaseCounts(
                key=phase,
                label=str(PHASES.get(phase, phase)),
                **{key: int(run.counts.get(phase, {}).get(key, 0)) for key in COUNT_KEYS},
            )
            for phase in run.phases
        ],
    )


@dataclass(frozen=True)
class SyncPanel:
    """What the sync panel shows: where the brand's sync stands, the history, and whether to keep polling."""

    latest: RunView | None
    last_success: RunView | None
    running: bool  # the latest run is alive (recent heartbeat)
    history: list[RunView]
    requested: float | None  # when "sync now" was clicked (unix time), while no run has picked it up
    heartbeat_age: int | None  # seconds since the latest run's heartbeat

    @property
    def stalled(self) -> bool:
        """The latest run says running but its heartbeat stopped: its process died; the next sync resumes it."""
        return self.latest is not None and self.latest.run.status == SyncRun.Status.RUNNING and not self.running

    @property
    def polling(self) -> bool:
        return self.running or self.requested is not None


def _requested(raw: str | None, latest: SyncRunSummary | None) -> float | None:
    """The "sync now" time while its run has not shown up yet (a worker has not picked the job), else None."""
    try:
        requested = float(raw or "")
    except ValueError:
        return None
    now = time.time()
    if not now - QUEUE_PATIENCE < requested <= now + 5:
        return None
    # Any run the job starts or resumes beats after the click: once one has, the panel shows that run instead.
    if latest is not None and latest.heartbeat_at.timestamp() >= requested:
        return None
    return requested


def _sync_panel(request: ConsoleRequest, requested: str | None) -> SyncPanel:
    status = sync_status(actor=request.actor)
    latest = status.latest
    return SyncPanel(
        latest=_run_view(latest) if latest else None,
        last_success=_run_view(status.last_success) if status.last_success else None,
        running=status.running,
        history=[_run_view(run) for run in sync_history(actor=request.actor)],
        requested=_requested(requested, latest),
        heartbeat_age=round((timezone.now() - latest.heartbeat_at).total_seconds()) if latest else None,
    )


def _panel_context(panel: SyncPanel, **extra: Any) -> dict[str, Any]:
    return {"panel": panel, **extra}


@require_GET
@console_view
def sync(request: ConsoleRequest) -> HttpResponse:
    _hq_only(request)
    panel = _sync_panel(request, request.GET.get("requested"))
    context = _panel_context(panel, connected=connection_settings(actor=request.actor) is not None)
    return render(request, "console/wecom/sync.html", context)


@require_GET
@console_view
def sync_panel(request: ConsoleRequest) -> HttpResponse:
    """The panel alone: what it polls every 2 seconds while a sync runs or waits for a worker."""
    _hq_only(request)
    panel = _sync_panel(request, request.GET.get("requested"))
    return render(request, "console/wecom/_sync_panel.html", _panel_context(panel, connected=True))


@require_POST
@console_view
def sync_start(request: ConsoleRequest) -> HttpResponse:
    _hq_only(request)
    requested = time.time()
    notice, level = gettext("Sync requested: it starts as soon as a worker is free."), "info"
    try:
        sync_request(actor=request.actor)
    except SyncBusy:
        notice = gettext("A sync is already running; no second one was started. Wait for it to finish.")
        level = "warning"
    except SiyuError:
        # The one other refusal the console can meet: no connection to sync from.
        notice, level = gettext("The brand is not connected to WeCom yet."), "error"
    if not request.htmx:
        levels = {"info": messages.INFO, "warning": messages.WARNING, "error": messages.ERROR}
        messages.add_message(request, levels[level], notice)
        query = urlencode({"requested": f"{requested:.3f}"}) if level == "info" else ""
        return redirect(reverse("console:wecom_sync") + (f"?{query}" if query else ""))
    panel = _sync_panel(request, f"{requested:.3f}" if level == "info" else None)
    if level == "info" and panel.requested is None:
        notice = ""  # a worker (or the immediate backend) already took it: the panel shows that run
    context = _panel_context(panel, connected=True, notice=notice, notice_level=level)
    return render(request, "console/wecom/_sync_panel.html", context)


# -- callback log ----------------------------------------------------------------------------------------------


def _log_url(form: CallbackFilterForm, page: int = 1) -> str:
    params = form.canonical()
    if page > 1:
        params["page"] = page
    query = urlencode(params, doseq=True)
    return reverse("console:wecom_callbacks") + (f"?{query}" if query else "")


@require_GET
@console_view
def callbacks(request: ConsoleRequest) -> HttpResponse:
    _hq_only(request)
    form = CallbackFilterForm(request.GET)
    # The XML is the largest column and the list never shows it.
    rows = raw_callback_list(actor=request.actor, **form.selector_kwargs()).defer("xml")
    page = CheapPaginator(rows, settings.SIYU_PAGE_SIZE).page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        "filter_errors": form.error_messages_by_field(),
        "filter_query": form.query(),
    }
    if request.htmx and not request.htmx.history_restore_request:
        response = render(request, "console/wecom/_callback_results.html", context)
        response["HX-Push-Url"] = _log_url(form, page.number)
        return response
    return render(request, "console/wecom/callbacks.html", context)


@require_GET
@console_view
def callback_detail(request: ConsoleRequest, raw_callback_id: int) -> HttpResponse:
    _hq_only(request)
    detail = raw_callback_detail(actor=request.actor, raw_callback_id=raw_callback_id)
    external_userid = detail.row.event.get("ExternalUserID")
    customer = (
        customer_by_identity(
            actor=request.actor, kind=Identity.Kind.WECOM_EXTERNAL_USERID, value=external_userid
        )
        if isinstance(external_userid, str) and external_userid
        else None
    )
    context = {"detail": detail, "row": detail.row, "customer": customer}
    return render(request, "console/wecom/callback_detail.html", context)


@require_POST
@console_view
def callback_retry(request: ConsoleRequest, raw_callback_id: int) -> HttpResponse:
    _hq_only(request)
    try:
        raw_callback_retry(actor=request.actor, raw_callback_id=raw_callback_id)
    except Conflict:
        messages.warning(request, gettext("Only failed callbacks can be retried."))
    else:
        messages.success(request, gettext("The callback was queued for processing again."))
    return redirect("console:wecom_callback_detail", raw_callback_id=raw_callback_id)
