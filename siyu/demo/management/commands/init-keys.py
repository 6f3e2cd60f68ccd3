"""`siyu init-keys`: create VAR_DIR/siyu.env with the secret keys a fresh install needs, never replacing one.

The PII keys encrypt and hash customers' personal data: replacing one makes every stored name and phone
unreadable and every phone lookup miss. So this command only ever adds what is missing, and leaves alone a
key that is set in the environment (which wins over the file) or already written to the file.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from siyu.core.pii import generate_key

# (name, how to make a value, whether it is a 32-byte base64 key)
ENTRIES: tuple[tuple[str, Callable[[], str], bool], ...] = (
    ("SIYU_SECRET_KEY", lambda: secrets.token_urlsafe(50), False),
    ("SIYU_PII_KEY", generate_key, True),
    ("SIYU_PII_HASH_KEY", generate_key, True),
    ("SIYU_DEBUG", lambda: "0", False),
)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE pairs of the file, parsed the way `siyu.env.load_env_file` reads them."""
    if not path.exists():
        return {}
    values = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def is_valid_key(value: str) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


class Command(BaseCommand):
    help = "Write missing secret keys (Django secret key, PII encryption and hash keys) to VAR_DIR/siyu.env."
    # Runs before anything is configured: the system checks would complain about the very keys it writes.
    requires_system_checks: list[str] = []

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(settings.VAR_DIR) / "siyu.env"
        in_file = read_env_file(path)
        added: list[str] = []
        for name, make, is_key in ENTRIES:
            if name in in_file:
                if is_key and not is_valid_key(in_file[name]):
                    self.stderr.write(f"warning: {name} in {path} is not 32 bytes of base64; left unchanged")
                else:
                    self.stdout.write(f"kept     {name} (already in {path})")
            elif name in os.environ:
                # settings.py loaded the file into os.environ, so a name missing from the file came from the
                # real environment: writing a different value would silently take over if that ever goes away.
                self.stdout.write(f"kept     {name} (set in the environment; not written)")
                if is_key and not is_valid_key(os.environ[name]):
                    self.stderr.write(f"warning: {name} in the environment is not 32 bytes of base64")
            else:
                added.append(f"{name}={make()}")
                self.stdout.write(f"created  {name}")
        if not added:
            self.stdout.write(f"{path}: nothing to do")
            return
        self._append(path, added)
        self.stdout.write(f"{path}: wrote {len(added)} setting(s); back this file up, the PII keys cannot be recovered")

    def _append(self, path: Path, lines: list[str]) -> None:
        """Rewrite the file atomically with the new lines at the end, readable by its owner only."""
        path.parent.mkdir(parents=True, exist_ok=True)
        header = "# siyu settings written by `siyu init-keys`\n"
        existing = path.read_text(encoding="utf-8") if path.exists() else header
        if existing and not existing.endswith("\n"):
            existing += "\n"
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".siyu.env.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(existing + "\n".join(lines) + "\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
