"""Template filters of the console: display only, no queries."""

from __future__ import annotations

import re

from django import template
from django.utils.translation import get_language, gettext, gettext_noop

from siyu.console.selectors import yuan as _yuan

register = template.Library()


@register.filter
def yuan(cents: int | None) -> str:
    """Fen as yuan with thousands separators: 123456 → "1,234.56"."""
    return _yuan(cents)


# What processing a WeCom callback noted (RawCallback.error of processed/ignored rows) is stored in English, the
# log's language; the console shows it in the reader's. Fixed notes are msgids of their own; these carry values.
_NOTE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(?P<joined>\d+) joined, (?P<left>\d+) left$"), gettext_noop("%(joined)s joined, %(left)s left")),
    (re.compile(r"^unknown member (?P<userid>.+)$"), gettext_noop("unknown member %(userid)s")),
    (re.compile(r"^status asked for transfer (?P<ids>.+)$"), gettext_noop("status asked for transfer %(ids)s")),
    (
        re.compile(r"^details to be read later \((?P<reason>.*)\)$"),
        gettext_noop("details to be read later (%(reason)s)"),
    ),
    (re.compile(r"^unsupported event (?P<event>.+)$"), gettext_noop("unsupported event %(event)s")),
)


@register.filter
def callback_note(note: str | None) -> str:
    """A callback's processing note in the active language ("new customer; details to be read later (…)" → each
    part translated); anything unknown (an error message, say) is shown as it is."""
    if not note:
        return ""
    parts = []
    for part in note.split("; "):
        for pattern, template_ in _NOTE_PATTERNS:
            match = pattern.match(part)
            if match:
                parts.append(gettext(template_) % match.groupdict())
                break
        else:
            parts.append(gettext(part))
    return ("；" if (get_language() or "").startswith("zh") else "; ").join(parts)
