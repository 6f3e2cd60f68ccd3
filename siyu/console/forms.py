"""Forms that check the shape of console input; choices come from the actor's scope, so an id outside it is invalid.

A filter form with a bad field still yields the other fields: list pages show the error next to the result
of the valid filters rather than failing the whole request.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.utils.translation import gettext_lazy as _

from siyu.analytics.events import EVENT_TYPES
from siyu.commerce.models import Order, Shop
from siyu.core.models import Guide, Store
from siyu.customers.models import LifecycleStage
from siyu.tags.models import Tag


class FilterForm(forms.Form):
    """A GET form whose valid fields are usable even when others are invalid."""

    def valid_data(self) -> dict[str, Any]:
        self.is_valid()
        return {name: value for name, value in self.cleaned_data.items() if name not in self.errors}

    def error_messages_by_field(self) -> list[str]:
        """Every error prefixed with the label of its field, e.g. "Lifecycle stage: Select a valid choice…"."""
        self.is_valid()
        messages = []
        for name, errors in self.errors.items():
            label = self.fields[name].label if name in self.fields else name
            messages.extend(f"{label}: {error}" for error in errors)
        return messages

    def canonical(self) -> dict[str, Any]:
        """The valid, non-empty filters: what links and the address bar carry."""
        return {key: value for key, value in self.valid_data().items() if value not in (None, "", [])}

    def query(self) -> str:
        return urlencode(self.canonical(), doseq=True)


def _id_choices(rows: Iterable[Any], label: str = "name") -> list[tuple[int, str]]:
    return [(row.id, getattr(row, label)) for row in rows]


class CustomerFilterForm(FilterForm):
    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=64,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": _("Phone, name or member number"), "autocomplete": "off"}
        ),
    )
    stage = forms.ChoiceField(label=_("Lifecycle stage"), required=False)
    tag = forms.TypedMultipleChoiceField(label=_("Tags"), required=False, coerce=int)
    store = forms.TypedChoiceField(label=_("Store"), required=False, coerce=int, empty_value=None)
    guide = forms.TypedChoiceField(label=_("Guide"), required=False, coerce=int, empty_value=None)

    def __init__(
        self, data: Any, *, tags: Iterable[Tag], stores: Iterable[Store], guides: Iterable[Guide]
    ) -> None:
        super().__init__(data)
        self.tag_rows = list(tags)
        self.store_rows = list(stores)
        self.guide_rows = list(guides)
        self.fields["stage"].choices = [("", _("All stages")), *LifecycleStage.choices]
        self.fields["tag"].choices = _id_choices(self.tag_rows)
        self.fields["store"].choices = [("", _("All stores")), *_id_choices(self.store_rows)]
        self.fields["guide"].choices = [("", _("All guides")), *_id_choices(self.guide_rows)]

    def tag_groups(self) -> list[tuple[str, list[Tag]]]:
        """Tags grouped by tag group, in catalogue order, for the tag picker."""
        groups: dict[int, tuple[str, list[Tag]]] = {}
        for tag in self.tag_rows:
            groups.setdefault(tag.group_id, (tag.group.name, []))[1].append(tag)
        return list(groups.values())

    def selected_tags(self) -> list[int]:
        return list(self.valid_data().get("tag") or [])

    def selector_kwargs(self) -> dict[str, Any]:
        """The valid filters as keyword arguments of siyu.customers.selectors.customer_list."""
        data = self.valid_data()
        return {
            "q": data.get("q") or "",
            "tag_ids": data.get("tag") or None,
            "lifecycle_stage": data.get("stage") or "",
            "guide_id": data.get("guide"),
            "store_id": data.get("store"),
        }



class ExportForm(forms.Form):
    reveal = forms.BooleanField(label=_("Include personal data"), required=False)
    query = forms.CharField(required=False, max_length=2000)


class TimelineFilterForm(FilterForm):
    type = forms.ChoiceField(label=_("Event type"), required=False)

    def __init__(self, data: Any) -> None:
        super().__init__(data)
        self.fields["type"].choices = [("", _("All events")), *((k, e.label) for k, e in EVENT_TYPES.items())]


class OrderFilterForm(FilterForm):
    shop = forms.ChoiceField(label=_("Shop"), required=False, choices=[("", _("All shops")), *Shop.choices])
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("All statuses")), *Order.Status.choices]
    )


class AuditFilterForm(FilterForm):
    action = forms.ChoiceField(label=_("Action"), required=False)

    def __init__(self, data: Any, *, actions: Iterable[str]) -> None:
        super().__init__(data)
        self.fields["action"].choices = [("", _("All actions")), *((a, a) for a in actions)]


class BrandSwitchForm(forms.Form):
    tenant = forms.IntegerField(label=_("Brand"))
