"""The console's navigation: one entry per product context, and the pages of contexts not built yet.

Sections not built yet get an honest "not available in this version" page listing what is planned (from the
product brief), never sample data; building one means replacing its `Upcoming` entry by a real view.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.urls import NoReverseMatch, reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class Upcoming:
    """A context whose console pages do not exist yet."""

    key: str
    path: str
    title: Promise
    summary: Promise
    planned: tuple[Promise, ...]


UPCOMING: dict[str, Upcoming] = {
    u.key: u
    for u in (
        Upcoming(
            "groups",
            "groups/",
            _("Customer groups"),
            _("WeCom customer groups, their members and their health."),
            (
                _("Active members and silent groups"),
                _("Keyword auto-reply and welcome in group"),
                _("Group check-in, quizzes and games"),
            ),
        ),
        Upcoming(
            "content",
            "content/",
            _("Content"),
            _("The material library: articles, posters, videos, files and mini-program cards."),
            (
                _("Per-guide tracked links: who opened what, and for how long"),
                _("Real-time alert to the guide when a customer opens"),
                _("The guide's smart business card"),
            ),
        ),
        Upcoming(
            "mass_messages",
            "engagement/mass-messages/",
            _("Mass messages"),
            _("Messages to customers and groups by segment, confirmed by each guide in WeCom."),
            (_("Results per guide: sent, not sent, failed"),),
        ),
        Upcoming(
            "moments",
            "engagement/moments/",
            _("Moments"),
            _("Moments posting tasks for guides, with completion tracking."),
            (),
        ),
        Upcoming(
            "sop",
            "engagement/sop/",
            _("SOP"),
            _("Personal and group SOPs triggered by tag, stage or schedule, with reminders to the guide."),
            (_("Completion tracking per guide and per group"),),
        ),
        Upcoming(
            "calendar",
            "engagement/calendar/",
            _("Marketing calendar"),
            _("The weekly rhythm and campaign dates in one calendar."),
            (),
        ),
        Upcoming(
            "campaigns",
            "campaigns/",
            _("Campaigns"),
            _("Check-in campaigns, lotteries, red packets and coupons."),
            (
                _("Coupons issued online and redeemed in store"),
                _("Streaks and rewards"),
            ),
        ),
        Upcoming(
            "loyalty",
            "loyalty/",
            _("Loyalty"),
            _("Points, member tiers and member registration."),
            (
                _("Points earned by purchase, check-in, invite and task; points mall; expiry"),
                _("Member tiers with benefits"),
            ),
        ),
    )
}


@dataclass(frozen=True)
class NavItem:
    label: Promise
    url_name: str
    # Other url names that highlight this entry (a list page stays highlighted on its detail pages).
    also: tuple[str, ...] = ()
    children: tuple[NavItem, ...] = ()
    available: bool = True

    @property
    def url(self) -> str:
        try:
            return reverse(self.url_name)
        except NoReverseMatch:
            return "#"

    def is_active(self, view_name: str) -> bool:
        if view_name == self.url_name or view_name in self.also:
            return True
        return any(c.is_active(view_name) for c in self.children)


@dataclass(frozen=True)
class NavSection:
    label: Promise | None
    items: tuple[NavItem, ...] = field(default_factory=tuple)


def _soon(key: str) -> NavItem:
    return NavItem(UPCOMING[key].title, f"console:{key}", available=False)


GROUP_CODES = NavItem(
    _("Group codes"),
    "console:group_codes",
    also=(
        "console:group_code_new",
        "console:group_code_detail",
        "console:group_code_edit",
        "console:group_code_rules",
        "console:group_migrations",
        "console:group_migration_new",
        "console:group_migration_detail",
    ),
)

STORE_CODES = NavItem(
    _("Store codes"),
    "console:store_codes",
    also=(
        "console:store_code_detail",
        "console:store_code_edit",
        "console:store_code_import",
        "console:store_code_import_status",
        "console:store_code_settings",
    ),
)

CHANNEL_CODES = NavItem(
    _("Channel codes"),
    "console:channel_codes",
    also=(
        "console:channel_code_new",
        "console:channel_code_detail",
        "console:channel_code_edit",
        "console:channel_welcome",
        "console:channel_welcome_sends",
    ),
)

FISSION = NavItem(
    _("Fission"),
    "console:fission",
    also=("console:fission_new", "console:fission_detail", "console:fission_edit", "console:fission_participants"),
)

NAVIGATION: tuple[NavSection, ...] = (
    NavSection(None, (NavItem(_("Overview"), "console:home"),)),
    NavSection(
        _("Customers"),
        (
            NavItem(_("Customers"), "console:customer_list", also=("console:customer_detail",)),
            NavItem(_("Tags"), "console:tag_list"),
            NavItem(
                _("Automatic tagging"),
                "console:tag_rules",
                also=("console:tag_rule_new", "console:tag_rule_edit"),
            ),
            NavItem(
                _("Keyword tagging"),
                "console:keyword_rules",
                also=("console:keyword_rule_new", "console:keyword_rule_edit"),
            ),
            NavItem(_("Segments"), "console:segments", also=("console:segment_new", "console:segment_edit")),
            NavItem(_("Leads"), "console:lead_list"),
            NavItem(_("Privacy requests"), "console:privacy_requests", also=("console:privacy_erase",)),
            NavItem(_("Lifecycle"), "console:lifecycle", also=("console:lifecycle_settings",)),
            NavItem(_("Lost customers"), "console:lost_customers"),
            _soon("groups"),
        ),
    ),
    NavSection(
        _("Growth"),
        (
            NavItem(
                _("Acquisition"),
                "console:channel_codes",
                children=tuple(
                    CHANNEL_CODES
                    if k == "channel_codes"
                    else GROUP_CODES
                    if k == "group_codes"
                    else STORE_CODES
                    if k == "store_codes"
                    else FISSION
                    if k == "fission"
                    else _soon(k)
                    for k in ("channel_codes", "group_codes", "store_codes", "fission")
                ),
                available=False,
            ),
            _soon("content"),
            NavItem(
                _("Engagement"),
                "console:mass_messages",
                children=tuple(_soon(k) for k in ("mass_messages", "moments", "sop", "calendar")),
                available=False,
            ),
            _soon("campaigns"),
            _soon("loyalty"),
        ),
    ),
    NavSection(
        _("Business"),
        (
            NavItem(_("Orders"), "console:order_list"),
            NavItem(_("Guides & org"), "console:org"),
            NavItem(_("Analytics"), "console:analytics"),
        ),
    ),
    NavSection(
        _("Settings"),
        (
            NavItem(
                _("WeCom settings"),
                "console:wecom",
                children=(
                    NavItem(_("Connection"), "console:wecom"),
                    NavItem(_("Sync"), "console:wecom_sync"),
                    NavItem(_("Callback log"), "console:wecom_callbacks", also=("console:wecom_callback_detail",)),
                ),
            ),
            NavItem(
                _("Inheritance"),
                "console:inheritance",
                also=(
                    "console:inheritance_new",
                    "console:inheritance_detail",
                    "console:inheritance_unassigned",
                ),
            ),
            NavItem(_("Audit log"), "console:audit_list"),
        ),
    ),
)


@dataclass(frozen=True)
class NavEntry:
    """A navigation entry as a template renders it: resolved URL and whether it is the current page."""

    label: Promise
    url: str
    active: bool
    available: bool
    children: tuple[NavEntry, ...] = ()


def _entry(item: NavItem, view_name: str) -> NavEntry:
    return NavEntry(
        label=item.label,
        url=item.url,
        active=item.is_active(view_name),
        available=item.available,
        children=tuple(_entry(c, view_name) for c in item.children),
    )


def navigation_for(view_name: str) -> list[tuple[Promise | None, list[NavEntry]]]:
    """The sidebar for the page `view_name` (e.g. "console:customer_detail")."""
    return [(section.label, [_entry(i, view_name) for i in section.items]) for section in NAVIGATION]
