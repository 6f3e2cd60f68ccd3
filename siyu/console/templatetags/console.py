"""Template filters of the console: display only, no queries."""

from __future__ import annotations

from django import template

from siyu.console.selectors import yuan as _yuan

register = template.Library()


@register.filter
def yuan(cents: int | None) -> str:
    """Fen as yuan with thousands separators: 123456 → "1,234.56"."""
    return _yuan(cents)
