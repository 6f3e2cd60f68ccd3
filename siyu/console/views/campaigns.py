"""裂变 Fission campaigns in the console: the list, create/edit, and a campaign's page with its funnel chart,
leaderboard, fraud review queue, participants sortable by fraud score, and rewards.

HQ runs campaigns; other roles see the campaigns their guides host and the participants in their scope. Names are
masked; the full name is one click away on the customer's page, through its audited reveal.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.campaigns import selectors, services
from siyu.campaigns.models import Invite, Participant, RewardKind
from siyu.campaigns.services import TierInput
from siyu.console.decorators import ConsoleRequest, console_view
from siyu.core.errors import SiyuError
from siyu.core.models import Guide
from siyu.core.scopes import Actor
from siyu.core.selectors import guide_list

PAGE = 50
TIER_ROWS = 3
REASON_LABELS = {
    "self_invite": _("Self-invites"),
    "inviter_device": _("Inviter's own device on their landing"),
    "device_reuse": _("One device opened the landing many times"),
    "device_farm": _("A device shared with other inviters"),
    "few_devices": _("Many invites from few devices"),
    "velocity": _("Invite burst"),
    "quick_deletes": _("Invitees deleted quickly"),
}


class CampaignForm(forms.Form):
    name = forms.CharField(label=_("Campaign name"), max_length=services.MAX_NAME)
    starts_at = forms.DateTimeField(label=_("Starts"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    ends_at = forms.DateTimeField(label=_("Ends"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    guides = forms.TypedMultipleChoiceField(label=_("Host guides"), coerce=int)
    poster_caption = forms.CharField(label=_("Poster caption"), max_length=services.MAX_CAPTION, required=False)
    poster_background = forms.FileField(label=_("Poster background (PNG or JPEG)"), required=False)
    hold_hours = forms.IntegerField(label=_("Hold (hours)"), min_value=1, max_value=720, initial=24)
    fraud_threshold = forms.IntegerField(label=_("Review at fraud score"), min_value=1, max_value=100, initial=40)
    velocity_max = forms.IntegerField(label=_("Burst: more than N invites"), min_value=1, max_value=1000, initial=5)
    velocity_minutes = forms.IntegerField(label=_("Burst: within minutes"), min_value=1, max_value=1440, initial=10)

    def __init__(self, *args: Any, guides: list[Guide], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["guides"].choices = [(g.id, f"{g.name} ({g.wecom_userid})") for g in guides]
        for i in range(1, TIER_ROWS + 1):
            required = i == 1
            self.fields[f"tier{i}_threshold"] = forms.IntegerField(
                label=_("Invite goal"), min_value=1, max_value=services.MAX_THRESHOLD, required=required
            )
            self.fields[f"tier{i}_kind"] = forms.ChoiceField(
                label=_("Reward kind"), choices=RewardKind.choices, required=required
            )
            self.fields[f"tier{i}_name"] = forms.CharField(
                label=_("Reward"), max_length=services.MAX_NAME, required=required
            )
            self.fields[f"tier{i}_stock"] = forms.IntegerField(label=_("Stock"), min_value=0, required=False)
            self.fields[f"tier{i}_points"] = forms.IntegerField(
                label=_("Points"), min_value=1, max_value=1_000_000, required=False
            )

    def tier_rows(self) -> list[list[forms.BoundField]]:
        return [
            [self[f"tier{i}_{part}"] for part in ("threshold", "kind", "name", "stock", "points")]
            for i in range(1, TIER_ROWS + 1)
        ]

    def tiers(self) -> list[TierInput]:
        data = self.cleaned_data
        tiers = []
        for i in range(1, TIER_ROWS + 1):
            if not data.get(f"tier{i}_threshold"):
                continue
            points = data.get(f"tier{i}_points")
            tiers.append(
                TierInput(
                    threshold=data[f"tier{i}_threshold"],
                    reward_kind=data.get(f"tier{i}_kind") or "",
                    reward_name=data.get(f"tier{i}_name") or "",
                    stock=data.get(f"tier{i}_stock"),
                    payload={"points": points} if points else {},
                )
            )
        return tiers

    def settings(self) -> dict[str, int]:
        return {k: self.cleaned_data[k] for k in ("hold_hours", "fraud_threshold", "velocity_max", "velocity_minutes")}


def _add_error(form: forms.Form, exc: SiyuError) -> None:
    """A service's error next to the field it names (tiers.0.threshold → the first tier's goal)."""
    field = exc.field or ""
    if field.startswith("tiers."):
        index, _, part = field.removeprefix("tiers.").partition(".")
        part = {"reward_kind": "kind", "reward_name": "name", "payload": "points"}.get(part, part)
        field = f"tier{int(index) + 1}_{part}" if index.isdigit() else ""
    field = {"guide_ids": "guides", "tiers": "tier1_threshold"}.get(field, field)
    form.add_error(field if field in form.fields else None, exc.message)


def _guides(actor: Actor) -> list[Guide]:
    return list(guide_list(actor=actor).filter(status=Guide.Status.ACTIVE))


@require_GET
@console_view
def fission(request: ConsoleRequest) -> HttpResponse:
    actor = request.actor
    page = Paginator(selectors.campaign_list(actor=actor), PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "console/campaigns/list.html",
        {"page": page, "can_operate": selectors.can_operate(actor), "now": timezone.now()},
    )


def _background(form: CampaignForm) -> bytes | None:
    upload = form.cleaned_data.get("poster_background")
    return upload.read(services.MAX_BACKGROUND_BYTES + 1) if upload else None


@require_http_methods(["GET", "POST"])
@console_view
def fission_new(request: ConsoleRequest) -> HttpResponse:
    actor = request.actor
    selectors.require_operator(actor)
    now = timezone.localtime().replace(second=0, microsecond=0)
    initial = {"starts_at": now, "ends_at": now + dt.timedelta(days=14), "tier1_kind": RewardKind.COUPON}
    form = CampaignForm(request.POST or None, request.FILES or None, guides=_guides(actor), initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            campaign = services.campaign_create(actor=actor, **_campaign_fields(form))
        except SiyuError as exc:
            _add_error(form, exc)
        else:
            messages.success(request, gettext("Campaign created. Activate it to make its entry code."))
            return redirect("console:fission_detail", campaign_id=campaign.id)
    return render(request, "console/campaigns/form.html", {"form": form, "campaign": None})


def _campaign_fields(form: CampaignForm) -> dict[str, Any]:
    """What the create and edit forms hand to the campaign services alike."""
    return {
        "name": form.cleaned_data["name"],
        "starts_at": form.cleaned_data["starts_at"],
        "ends_at": form.cleaned_data["ends_at"],
        "tiers": form.tiers(),
        "guide_ids": form.cleaned_data["guides"],
        "poster_caption": form.cleaned_data["poster_caption"],
        "poster_background": _background(form),
        "settings": form.settings(),
    }


@require_http_methods(["GET", "POST"])
@console_view
def fission_edit(request: ConsoleRequest, campaign_id: int) -> HttpResponse:
    actor = request.actor
    selectors.require_operator(actor)
    campaign = selectors.access_campaign(actor=actor, campaign_id=campaign_id)
    initial: dict[str, Any] = {
        "name": campaign.name,
        "starts_at": timezone.localtime(campaign.starts_at),
        "ends_at": timezone.localtime(campaign.ends_at),
        "guides": selectors.host_guide_ids(campaign),
        "poster_caption": campaign.poster_caption,
        "hold_hours": campaign.hold_hours,
        "fraud_threshold": campaign.fraud_threshold,
        "velocity_max": campaign.velocity_max,
        "velocity_minutes": campaign.velocity_minutes,
    }
    for i, tier in enumerate(selectors.tiers_of(campaign)[:TIER_ROWS], start=1):
        initial.update(
            {
                f"tier{i}_threshold": tier.threshold,
                f"tier{i}_kind": tier.reward_kind,
                f"tier{i}_name": tier.reward_name,
                f"tier{i}_stock": tier.stock,
                f"tier{i}_points": tier.payload.get("points"),
            }
        )
    form = CampaignForm(request.POST or None, request.FILES or None, guides=_guides(actor), initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.campaign_update(actor=actor, campaign_id=campaign.id, **_campaign_fields(form))
        except SiyuError as exc:
            _add_error(form, exc)
        else:
            messages.success(request, gettext("Campaign saved."))
            return redirect("console:fission_detail", campaign_id=campaign.id)
    return render(request, "console/campaigns/form.html", {"form": form, "campaign": campaign})


def _reasons(participant: Participant) -> list[str]:
    return [f"{REASON_LABELS.get(r['code'], r['code'])} (+{r['weight']})" for r in participant.fraud_reasons]


def _rows(participants: list[Participant]) -> list[dict[str, Any]]:
    return [{"p": p, "name": selectors.masked_name(p), "reasons": _reasons(p)} for p in participants]


@require_GET
@console_view
def fission_detail(request: ConsoleRequest, campaign_id: int) -> HttpResponse:
    actor = request.actor
    campaign = selectors.access_campaign(actor=actor, campaign_id=campaign_id)
    stats = selectors.campaign_stats(actor=actor, campaign_id=campaign.id)
    context = {
        "campaign": campaign,
        "stats": stats,
        "reasons": [(Invite.Reason(k).label, n) for k, n in sorted(stats.rejected_by_reason.items()) if k],
        "tiers": selectors.tiers_of(campaign),
        "chart": selectors.campaign_daily(actor=actor, campaign_id=campaign.id),
        "board": _rows(selectors.leaderboard(actor=actor, campaign_id=campaign.id)),
        "queue": _rows(list(selectors.review_queue(actor=actor, campaign_id=campaign.id)[:PAGE])),
        "grants": [
            {"g": g, "name": selectors.masked_name(g.participant)}
            for g in selectors.grant_list(actor=actor, campaign_id=campaign.id)[:20]
        ],
        "can_operate": selectors.can_operate(actor),
    }
    return render(request, "console/campaigns/detail.html", context)


@require_GET
@console_view
def fission_participants(request: ConsoleRequest, campaign_id: int) -> HttpResponse:
    actor = request.actor
    campaign = selectors.access_campaign(actor=actor, campaign_id=campaign_id)
    order = request.GET.get("order", "fraud")
    order = order if order in selectors.PARTICIPANT_ORDERS else "fraud"
    qs = selectors.participant_list(actor=actor, campaign_id=campaign.id, order=order)
    page = Paginator(qs, PAGE).get_page(request.GET.get("page"))
    context = {"campaign": campaign, "page": page, "rows": _rows(list(page.object_list)), "order": order}
    return render(request, "console/campaigns/participants.html", context)


@require_POST
@console_view
def fission_action(request: ConsoleRequest, campaign_id: int, action: str) -> HttpResponse:
    """activate / end / approve / reject / fulfil: one service call each; errors come back as a message."""
    actor = request.actor
    campaign = selectors.access_campaign(actor=actor, campaign_id=campaign_id)
    target = request.POST.get("id", "")
    try:
        if action == "activate":
            services.campaign_activate(actor=actor, campaign_id=campaign.id)
            messages.success(request, gettext("Campaign active: its entry code is ready."))
        elif action == "end":
            services.campaign_end(actor=actor, campaign_id=campaign.id)
            messages.success(request, gettext("Campaign ended."))
        elif action in ("approve", "reject") and target.isdigit():
            participant = selectors.access_participant(actor=actor, participant_id=int(target))
            if participant.campaign_id != campaign.id:
                raise SiyuError(gettext("Not a participant of this campaign."))
            services.participant_review(actor=actor, participant_id=participant.id, approve=action == "approve")
            messages.success(request, gettext("Review saved."))
        elif action == "fulfil" and target.isdigit():
            grant = selectors.grant_list(actor=actor, campaign_id=campaign.id).filter(id=int(target)).first()
            if grant is None:
                raise SiyuError(gettext("Unknown reward."))
            services.reward_fulfil(actor=actor, grant_id=grant.id)
            messages.success(request, gettext("Reward marked fulfilled."))
        else:
            raise SiyuError(gettext("Unknown action."))
    except SiyuError as exc:
        messages.error(request, exc.message)
    return redirect("console:fission_detail", campaign_id=campaign.id)


urlpatterns: list[URLPattern] = [
    path("acquisition/fission/", fission, name="fission"),
    path("acquisition/fission/new/", fission_new, name="fission_new"),
    path("acquisition/fission/<int:campaign_id>/", fission_detail, name="fission_detail"),
    path("acquisition/fission/<int:campaign_id>/edit/", fission_edit, name="fission_edit"),
    path("acquisition/fission/<int:campaign_id>/participants/", fission_participants, name="fission_participants"),
    path(
        "acquisition/fission/<int:campaign_id>/<slug:action>/",
        fission_action,
        name="fission_action",
    ),
]
