"""`siyu compile_locale`: compile every .po under LOCALE_PATHS to .mo with polib.

Django's `compilemessages` needs GNU gettext's `msgfmt`, which these machines do not have; polib writes the
same binary catalogue in pure Python. Fuzzy entries are left out, as msgfmt leaves them out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polib
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


def compile_catalogue(po_path: Path) -> tuple[Path, int]:
    """Write the .mo next to `po_path`; returns its path and the number of translated messages."""
    try:
        catalogue = polib.pofile(str(po_path), check_for_duplicates=True)
    except (OSError, ValueError) as exc:
        raise CommandError(f"{po_path}: {exc}") from exc
    for entry in catalogue.fuzzy_entries():
        catalogue.remove(entry)
    mo_path = po_path.with_suffix(".mo")
    catalogue.save_as_mofile(str(mo_path))
    return mo_path, len(catalogue.translated_entries())


class Command(BaseCommand):
    help = "Compile every .po file under settings.LOCALE_PATHS to .mo (pure Python, no GNU gettext needed)."

    def handle(self, *args: Any, **options: Any) -> None:
        po_files = sorted(p for base in settings.LOCALE_PATHS for p in Path(base).rglob("*.po"))
        if not po_files:
            raise CommandError(f"no .po files under {', '.join(map(str, settings.LOCALE_PATHS))}")
        for po_path in po_files:
            mo_path, count = compile_catalogue(po_path)
            if options["verbosity"] >= 1:
                self.stdout.write(f"{mo_path} ({count} messages)")
