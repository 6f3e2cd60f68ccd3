"""Forms of the inheritance pages (客户继承): their choices come from the actor's scope, so an id outside it is
simply not a valid choice. They check shape only; siyu.inheritance.services decides what is allowed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from siyu.core.models import Guide
from siyu.inheritance.models import Transfer
from siyu.inheritance.selectors import GuideChoice
from siyu.inheritance.services import MAX_MESSAGE


def handover_label(choice: GuideChoice) -> str:
    guide = choice.guide
    departed = f" · {_('departed')}" if guide.status == Guide.Status.DEPARTED else ""
    customers = ngettext("%(n)s customer", "%(n)s customers", choice.customers) % {"n": choice.customers}
    return f"{guide.name} ({guide.wecom_userid}){departed} · {customers}"


def takeover_label(guide: Guide) -> str:
    kind = f" · {_('Brand IP account')}" if guide.kind == Guide.Kind.BRAND_IP else ""
    return f"{guide.name} ({guide.wecom_userid}){kind}"


class TransferForm(forms.Form):
    """Start a transfer: the kind follows the handover guide (departed: resigned inheritance, else on-job)."""

    ALL, CHOSEN = "all", "chosen"

    handover = forms.TypedChoiceField(label=_("Handover guide"), coerce=int)
    scope = forms.ChoiceField(
        label=_("Customers"),
        choices=[(ALL, _("All customers of the guide")), (CHOSEN, _("Only the customers I choose"))],
        initial=ALL,
        widget=forms.RadioSelect,
    )
    customers = forms.TypedMultipleChoiceField(label=_("Chosen customers"), coerce=int, required=False)
    takeover = forms.TypedChoiceField(label=_("Takeover guide"), coerce=int)
    include_groups = forms.BooleanField(label=_("Also hand over the guide's customer groups"), required=False)
    message = forms.CharField(
        label=_("Message to the customers"),
        required=False,
        max_length=MAX_MESSAGE,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": _("WeCom's default text when empty")}),
        help_text=_("On-job transfers only: what customers read about their new guide."),
    )

    def __init__(
        self,
        data: Any = None,
        *,
        handovers: Iterable[GuideChoice],
        takeovers: Iterable[Guide],
        customer_ids: Iterable[int] = (),
    ) -> None:
        super().__init__(data)
        self.handover_rows = list(handovers)
        self.fields["handover"].choices = [
            ("", _("Choose a guide")),
            *((c.guide.id, handover_label(c)) for c in self.handover_rows),
        ]
        self.fields["takeover"].choices = [("", _("Choose a guide")), *((g.id, takeover_label(g)) for g in takeovers)]
        self.fields["customers"].choices = [(i, str(i)) for i in customer_ids]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("scope") == self.CHOSEN and not data.get("customers"):
            self.add_error("customers", _("Choose at least one customer."))
        if data.get("handover") and data.get("handover") == data.get("takeover"):
            self.add_error("takeover", _("The takeover guide must differ from the handover guide."))
        return data

    def kind(self) -> str:
        chosen = self.cleaned_data.get("handover")
        for row in self.handover_rows:
            if row.guide.id == chosen and row.guide.status == Guide.Status.DEPARTED:
                return Transfer.Kind.RESIGNED
        return Transfer.Kind.ON_JOB

    def customer_ids(self) -> list[int] | None:
        if self.cleaned_data.get("scope") == self.CHOSEN:
            return list(self.cleaned_data.get("customers") or [])
        return None

    def errors_by_field(self) -> list[str]:
        """Every error prefixed with the label of its field."""
        messages = []
        for name, errors in self.errors.items():
            label = self.fields[name].label if name in self.fields else ""
            messages.extend(f"{label}: {error}" if label else str(error) for error in errors)
        return messages


# Which form field a service error's field names, so the error shows beside the right input.
SERVICE_FIELDS = {
    "handover_guide_id": "handover",
    "takeover_guide_id": "takeover",
    "customer_ids": "customers",
    "message": "message",
    "kind": "handover",
}
