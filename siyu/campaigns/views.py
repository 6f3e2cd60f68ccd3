"""Public participant pages (no login): a participant's own page, their poster, and the landing their QR opens.

Tokens in the URLs are unguessable (32 random bytes); an unknown token is a plain 404. Pages show masked names
only. Every visit carries a device cookie (a random id, httponly) whose hash with the user agent is the device
fingerprint the anti-fraud rules read: the landing records it *before* showing the guide's contact code.
"""

from __future__ import annotations

import logging
import secrets

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from siyu.campaigns import poster
from siyu.campaigns.models import Participant
from siyu.campaigns.selectors import (
    masked_name,
    name_initial,
    participant_by_share_token,
    participant_by_token,
    participant_grants,
    participant_messages,
    public_leaderboard,
    tiers_of,
)
from siyu.campaigns.services import (
    device_hash,
    landing_visit_record,
    participant_code_ensure,
    participant_device_seen,
)
from siyu.core.errors import NotFound, SiyuError
from siyu.wecom.errors import WeComAPIError, WeComTransportError

logger = logging.getLogger(__name__)

DEVICE_COOKIE = "siyu_dev"
DEVICE_COOKIE_AGE = 365 * 24 * 3600


def _device(request: HttpRequest) -> tuple[str, str, bool]:
    """(cookie id, fingerprint, whether the cookie is new)."""
    cookie = request.COOKIES.get(DEVICE_COOKIE, "")
    new = not (16 <= len(cookie) <= 64 and cookie.replace("-", "").replace("_", "").isalnum())
    if new:
        cookie = secrets.token_urlsafe(16)
    user_agent = request.headers.get("User-Agent", "")[:512]
    return cookie, device_hash(cookie_id=cookie, user_agent=user_agent), new


def _with_cookie(response: HttpResponse, cookie: str, new: bool) -> HttpResponse:
    if new:
        response.set_cookie(DEVICE_COOKIE, cookie, max_age=DEVICE_COOKIE_AGE, httponly=True, samesite="Lax")
    return response


def _participant(token: str) -> Participant:
    try:
        return participant_by_token(token=token)
    except NotFound as exc:
        raise Http404 from exc


@never_cache
@require_GET
def participant_page(request: HttpRequest, token: str) -> HttpResponse:
    """The participant's own page: progress to the next reward, poster, messages, leaderboard (masked)."""
    participant = _participant(token)
    cookie, fingerprint, new = _device(request)
    participant_device_seen(participant=participant, fingerprint=fingerprint)
    code_error = False
    try:
        participant = participant_code_ensure(participant=participant)
    except (SiyuError, WeComAPIError, WeComTransportError) as exc:
        # WeCom unreachable or refusing: the page still shows progress; the poster comes on a later visit.
        logger.warning("participant %s: personal code not made: %s", participant.id, exc)
        code_error = True
    tiers = tiers_of(participant.campaign)
    next_tier = next((t for t in tiers if t.threshold > participant.invites_counted), None)
    context = {
        "participant": participant,
        "campaign": participant.campaign,
        "name": masked_name(participant),
        "tiers": tiers,
        "next_tier": next_tier,
        "grants": participant_grants(participant=participant),
        "messages_": participant_messages(participant=participant),
        "board": public_leaderboard(campaign=participant.campaign),
        "share_url": request.build_absolute_uri(reverse("campaigns:landing", args=[participant.share_token])),
        "has_code": participant.live_code_id is not None,
        "code_error": code_error,
    }
    with translation.override("zh-hans"):
        return _with_cookie(render(request, "campaigns/participant.html", context), cookie, new)


@require_GET
def poster_png(request: HttpRequest, token: str) -> HttpResponse:
    participant = _participant(token)
    campaign = participant.campaign
    background = None
    if campaign.poster_background:
        with campaign.poster_background.open("rb") as f:
            background = f.read()
    with translation.override("zh-hans"):
        footer = gettext("Scan to add us and help me unlock my reward")
    png = poster.render(
        landing_url=request.build_absolute_uri(reverse("campaigns:landing", args=[participant.share_token])),
        initial=name_initial(participant),
        caption=campaign.poster_caption,
        campaign_name=campaign.name,
        footer=footer,
        background=background,
    )
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, max-age=300"
    return response


@never_cache
@require_GET
def landing(request: HttpRequest, share_token: str) -> HttpResponse:
    """Where a poster's QR leads: the device is recorded, then the guide's contact code is shown."""
    try:
        participant = participant_by_share_token(share_token=share_token)
    except NotFound as exc:
        raise Http404 from exc
    cookie, fingerprint, new = _device(request)
    landing_visit_record(participant=participant, fingerprint=fingerprint)
    try:
        participant = participant_code_ensure(participant=participant)
    except (SiyuError, WeComAPIError, WeComTransportError) as exc:
        logger.warning("participant %s: personal code not made: %s", participant.id, exc)
    context = {
        "campaign": participant.campaign,
        "inviter": masked_name(participant),
        "qr_url": participant.qr_url,
    }
    with translation.override("zh-hans"):
        return _with_cookie(render(request, "campaigns/landing.html", context), cookie, new)
