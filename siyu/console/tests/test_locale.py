"""The zh-Hans catalogue covers the console, and `siyu compile_locale` builds it without GNU gettext."""

from __future__ import annotations

from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation

from siyu.console.tests.catalogue import console_msgids

PO = Path(settings.LOCALE_PATHS[0]) / "zh_Hans" / "LC_MESSAGES" / "django.po"


def test_every_console_message_has_a_chinese_translation() -> None:
    catalogue = polib.pofile(str(PO))
    translated = {e.msgid for e in catalogue.translated_entries()}
    translated |= {e.msgid_plural for e in catalogue.translated_entries() if e.msgid_plural}
    missing = sorted(console_msgids() - translated)
    assert missing == []


def test_no_translation_is_fuzzy_or_obsolete() -> None:
    catalogue = polib.pofile(str(PO))
    assert [e.msgid for e in catalogue.fuzzy_entries()] == []
    assert [e.msgid for e in catalogue.obsolete_entries()] == []


def test_placeholders_survive_translation() -> None:
    for entry in polib.pofile(str(PO)).translated_entries():
        for msgstr in entry.msgstr_plural.values() if entry.msgid_plural else [entry.msgstr]:
            for name in ("%(counter)s", "%(title)s", "%(brand)s", "%(name)s", "%(n)s", "%(start)s", "%(end)s"):
                if name in entry.msgid:
                    assert name in msgstr, entry.msgid


def test_compile_locale_writes_mo_files_django_reads(tmp_path: Path, settings: object) -> None:
    target = tmp_path / "zh_Hans" / "LC_MESSAGES"
    target.mkdir(parents=True)
    po = polib.POFile()
    po.metadata = {"Content-Type": "text/plain; charset=UTF-8", "Plural-Forms": "nplurals=1; plural=0;"}
    po.append(polib.POEntry(msgid="Ready", msgstr="就绪"))
    fuzzy = polib.POEntry(msgid="Draft", msgstr="草稿")
    fuzzy.flags.append("fuzzy")
    po.append(fuzzy)
    po.save(str(target / "django.po"))
    settings.LOCALE_PATHS = [tmp_path]  # type: ignore[attr-defined]
    call_command("compile_locale")
    mo = polib.mofile(str(target / "django.mo"))
    assert {e.msgid: e.msgstr for e in mo if e.msgid} == {"Ready": "就绪"}  # fuzzy entries are left out


def test_compile_locale_fails_clearly_without_catalogues(tmp_path: Path, settings: object) -> None:
    settings.LOCALE_PATHS = [tmp_path]  # type: ignore[attr-defined]
    with pytest.raises(CommandError, match=r"no \.po files"):
        call_command("compile_locale")


def test_compiled_catalogue_is_used() -> None:
    call_command("compile_locale")
    with translation.override("zh-hans"):
        assert translation.gettext("Customers") == "客户"
        assert translation.gettext("Placed an order") == "下单"
