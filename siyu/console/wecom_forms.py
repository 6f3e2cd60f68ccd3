"""Forms of the WeCom settings pages (企业微信设置): the connection, and the filters of the callback log.

They check shape and say what is wrong in the user's language; the services check again and decide.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.core.validators import RegexValidator
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from siyu.console.forms import FilterForm
from siyu.wecom.models import DEFAULT_API_BASE_URL, RawCallback
from siyu.wecom.selectors import SECRET_FIELDS, ConnectionSettings
from siyu.wecom.services import DEFERRED, HANDLERS

PLAIN_FIELDS = ("corp_id", "agent_id", "api_base_url")
# What a brand needs before WeCom can call it back and siyu can read its customers.
REQUIRED_TO_CONNECT = ("contact_secret", "callback_token", "encoding_aes_key")

_corp_id = RegexValidator(r"^[A-Za-z0-9_-]+$", _("Use only letters, digits, '-' and '_'."))
_digits = RegexValidator(r"^[0-9]+$", _("Use digits only."))
_token = RegexValidator(r"^[A-Za-z0-9]{1,32}$", _("The token is 1 to 32 letters or digits."))
_aes_key = RegexValidator(r"^[A-Za-z0-9]{43}$", _("The EncodingAESKey is exactly 43 letters or digits."))
_http_url = RegexValidator(r"^https?://[^\s/]+(/\S*)?$", _("Enter an http:// or https:// address."))
_event_name = RegexValidator(r"^[A-Za-z0-9_]+$", _("Use only letters, digits and '_'."))


def _secret_input() -> forms.PasswordInput:
    # render_value=False: a stored secret never travels back to the browser, not even after a failed save.
    return forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password", "spellcheck": "false"})


def _visible_input(**attrs: str) -> forms.TextInput:
    # The token and the key are pasted into WeCom's admin console too, so the admin sees what they type.
    return forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", **attrs})


class ConnectionForm(forms.Form):
    """The brand's WeCom connection. Secret fields left blank keep what is stored."""

    corp_id = forms.CharField(label=_("Corp ID"), max_length=64, validators=[_corp_id], widget=_visible_input())
    agent_id = forms.CharField(
        label=_("Agent ID"), required=False, max_length=32, validators=[_digits], widget=_visible_input()
    )
    contact_secret = forms.CharField(
        label=_("Customer contact secret"), required=False, max_length=128, widget=_secret_input()
    )
    app_secret = forms.CharField(label=_("App secret"), required=False, max_length=128, widget=_secret_input())
    callback_token = forms.CharField(
        label=_("Callback token"), required=False, max_length=32, validators=[_token], widget=_visible_input()
    )
    encoding_aes_key = forms.CharField(
        label=_("EncodingAESKey"),
        required=False,
        max_length=43,
        validators=[_aes_key],
        widget=_visible_input(size="48"),
    )
    api_base_url = forms.CharField(
        label=_("API base URL"), max_length=200, validators=[_http_url], widget=_visible_input(size="48")
    )

    def __init__(self, data: Any = None, *, current: ConnectionSettings | None, initial: dict[str, str] | None = None):
        values = {"api_base_url": DEFAULT_API_BASE_URL}
        if current is not None:
            values = {"corp_id": current.corp_id, "agent_id": current.agent_id, "api_base_url": current.api_base_url}
        super().__init__(data, initial={**values, **(initial or {})})
        self.current = current
        # Stored secrets as hints ("••••1234"): the template shows these, never a value.
        self.hints = {name: current.hints.get(name, "") if current else "" for name in SECRET_FIELDS}

    def clean_corp_id(self) -> str:
        value: str = self.cleaned_data["corp_id"]
        if value.isdigit():
            # The callback URL takes a connection id or a corp id; all digits would read as the former.
            raise forms.ValidationError(_("A corp ID is never only digits; WeCom's start with \"ww\" or \"wx\"."))
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in REQUIRED_TO_CONNECT:
            if not cleaned.get(name) and not self.hints[name] and name not in self.errors:
                self.add_error(name, _("Required to connect the brand."))
        return cleaned

    def changes(self) -> dict[str, str]:
        """What to save: the plain fields that differ from what is stored, and the secrets that were typed."""
        data = self.cleaned_data
        if self.current is None:
            changes = {name: data[name] for name in PLAIN_FIELDS}
        else:
            # Only what changed, so the audit row names what the admin actually changed.
            changes = {name: data[name] for name in PLAIN_FIELDS if data[name] != self.initial.get(name)}
        changes.update({name: data[name] for name in SECRET_FIELDS if data[name]})
        return changes


def _known(position: int) -> list[str]:
    return sorted({key[position] for key in (*HANDLERS, *DEFERRED) if key[position]})


class CallbackFilterForm(FilterForm):
    """Filters of the callback log. Event and change types are free text with suggestions, so events siyu does not
    handle (and so has no list of) can be found too."""

    status = forms.ChoiceField(label=_("Status"), required=False)
    event = forms.CharField(
        label=_("Event type"),
        required=False,
        max_length=64,
        validators=[_event_name],
        widget=forms.TextInput(attrs={"list": "callback-event-types", "placeholder": _("Event type")}),
    )
    change = forms.CharField(
        label=_("Change type"),
        required=False,
        max_length=64,
        validators=[_event_name],
        widget=forms.TextInput(attrs={"list": "callback-change-types", "placeholder": _("Change type")}),
    )
    start = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    q = forms.CharField(
        label=_("Member, customer or chat id"),
        required=False,
        max_length=128,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": _("UserID, ExternalUserID or ChatId"), "autocomplete": "off"}
        ),
    )

    def __init__(self, data: Any) -> None:
        super().__init__(data)
        self.fields["status"].choices = [("", _("All statuses")), *RawCallback.Status.choices]

    @staticmethod
    def known_event_types() -> list[str]:
        return _known(0)

    @staticmethod
    def known_change_types() -> list[str]:
        return _known(1)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and end < start:
            self.add_error("end", _("The end date is before the start date."))
        return cleaned

    def selector_kwargs(self) -> dict[str, Any]:
        """The valid filters as keyword arguments of siyu.wecom.selectors.raw_callback_list.

        Dates are days of the brand's time zone: "to" includes the whole day.
        """
        data = self.valid_data()
        zone = timezone.get_current_timezone()
        start: dt.date | None = data.get("start")
        end: dt.date | None = data.get("end")
        if end is not None:
            end = min(end, dt.date.max - dt.timedelta(days=1))  # 9999-12-31 plus a day would overflow
        return {
            "status": data.get("status") or "",
            "event_type": data.get("event") or "",
            "change_type": data.get("change") or "",
            "received_from": dt.datetime.combine(start, dt.time.min, tzinfo=zone) if start else None,
            "received_before": (
                dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=zone) if end else None
            ),
            "search": (data.get("q") or "").strip(),
        }
