"""The `siyu` command: Django's management commands under the product's name (`siyu demo`, `siyu worker`, ...)."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siyu.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db import OperationalError

    argv = ["siyu", *sys.argv[1:]]
    try:
        execute_from_command_line(argv)
    except (ImproperlyConfigured, OperationalError) as exc:
        # A missing key, a bad setting or a database that does not answer is the operator's to fix: say which,
        # in one message instead of a traceback (which --traceback still gives).
        if "--traceback" in argv:
            raise
        kind = "configuration" if isinstance(exc, ImproperlyConfigured) else "database"
        detail = str(exc).strip().replace("\n", " ")
        hint = " (check DATABASE_URL)" if kind == "database" else ""
        sys.stderr.write(f"siyu: {kind} error: {detail}{hint}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
