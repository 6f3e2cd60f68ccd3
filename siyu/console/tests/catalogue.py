"""Every message the console can show: the msgids of its templates and code, and the labels it displays.

GNU gettext (and so `makemessages`) is not available, so this walks the sources itself: templates through
Django's own `templatize` (what makemessages feeds to xgettext), Python through `ast`. The test beside it
checks that the zh-Hans catalogue translates all of them.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.conf import settings
from django.utils import translation
from django.utils.translation.template import templatize

CONSOLE = Path(__file__).resolve().parent.parent
_STRING = r"""u?(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
_CALL = re.compile(rf"\b(gettext|ngettext|pgettext|npgettext)\(({_STRING}(?:\s*,\s*{_STRING})*)")
_PY_FUNCS = {"_", "gettext", "gettext_lazy", "ngettext", "ngettext_lazy", "pgettext", "pgettext_lazy"}


def _template_msgids(path: Path) -> Iterator[str]:
    code = templatize(path.read_text(encoding="utf-8"), origin=str(path))
    for match in _CALL.finditer(code):
        args = ast.literal_eval(f"({match.group(2)},)")
        if match.group(1).startswith("p"):
            args = args[1:]  # context is not part of the msgid we compare
        yield from args


def _python_msgids(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        if name not in _PY_FUNCS:
            continue
        for arg in node.args[: 2 if name.startswith("n") else 1]:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield arg.value


def _labels() -> Iterator[str]:
    """Labels of the model choices and event types that console pages display."""
    from siyu.analytics.events import EVENT_TYPES
    from siyu.commerce.models import Order, Shop
    from siyu.core.models import Guide, Role
    from siyu.customers.models import CustomerExport, FollowRelation, Gender, Identity, LifecycleStage
    from siyu.inheritance.models import Transfer, TransferGroupItem, TransferItem
    from siyu.tags.models import TagSource
    from siyu.wecom.models import RawCallback, SyncRun

    choices: Iterable[type] = (
        LifecycleStage, Gender, Identity.Kind, FollowRelation.Status, FollowRelation.AddWay, TagSource, Role,
        Guide.Kind, Guide.Status, Shop, Order.Status, CustomerExport.Status, RawCallback.Status, SyncRun.Status,
        Transfer.Kind, Transfer.Status, TransferItem.Status, TransferGroupItem.Status,
    )
    with translation.override(None):
        # With translation deactivated a lazy label renders as its msgid.
        for enum in choices:
            yield from (str(label) for label in enum.labels)  # type: ignore[attr-defined]
        yield from (str(event.label) for event in EVENT_TYPES.values())
        yield from (str(name) for _, name in settings.LANGUAGES)


def console_msgids() -> set[str]:
    ids: set[str] = set()
    for path in sorted((CONSOLE / "templates").rglob("*.html")):
        ids.update(_template_msgids(path))
    for path in sorted(CONSOLE.rglob("*.py")):
        if "tests" in path.parts or "migrations" in path.parts:
            continue
        ids.update(_python_msgids(path))
    ids.update(_labels())
    return ids
