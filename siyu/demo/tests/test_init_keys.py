"""`siyu init-keys`: writes the keys a fresh install needs, and never replaces one that exists."""

from __future__ import annotations

import base64
import os
import stat
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.env import load_env_file

NAMES = ("SIYU_SECRET_KEY", "SIYU_PII_KEY", "SIYU_PII_HASH_KEY", "SIYU_DEBUG")


@pytest.fixture
def var_dir(settings: SettingsWrapper, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    settings.VAR_DIR = tmp_path
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _run() -> str:
    out = StringIO()
    call_command("init-keys", stdout=out, stderr=out)
    return out.getvalue()


def _read(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_fresh_install_gets_every_key_readable_by_the_owner_only(var_dir: Path) -> None:
    output = _run()
    env = var_dir / "siyu.env"
    values = _read(env)
    assert set(values) == set(NAMES)
    assert len(base64.b64decode(values["SIYU_PII_KEY"], validate=True)) == 32
    assert len(base64.b64decode(values["SIYU_PII_HASH_KEY"], validate=True)) == 32
    assert values["SIYU_PII_KEY"] != values["SIYU_PII_HASH_KEY"]
    assert len(values["SIYU_SECRET_KEY"]) >= 50
    assert values["SIYU_DEBUG"] == "0"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert "created  SIYU_PII_KEY" in output


def test_second_run_changes_nothing(var_dir: Path) -> None:
    _run()
    before = (var_dir / "siyu.env").read_bytes()
    output = _run()
    assert (var_dir / "siyu.env").read_bytes() == before
    assert "nothing to do" in output


def test_existing_keys_are_kept_and_only_missing_ones_added(var_dir: Path) -> None:
    env = var_dir / "siyu.env"
    kept = base64.b64encode(b"k" * 32).decode()
    env.write_text(f"# mine\nSIYU_PII_KEY={kept}\nSIYU_TIME_ZONE=Asia/Shanghai", encoding="utf-8")
    _run()
    values = _read(env)
    assert values["SIYU_PII_KEY"] == kept
    assert values["SIYU_TIME_ZONE"] == "Asia/Shanghai"
    assert set(values) == {*NAMES, "SIYU_TIME_ZONE"}
    assert env.read_text(encoding="utf-8").startswith("# mine\n")


def test_an_invalid_key_is_reported_but_not_replaced(var_dir: Path) -> None:
    env = var_dir / "siyu.env"
    env.write_text("SIYU_PII_HASH_KEY=not-a-key\n", encoding="utf-8")
    output = _run()
    assert _read(env)["SIYU_PII_HASH_KEY"] == "not-a-key"
    assert "SIYU_PII_HASH_KEY" in output
    assert "not 32 bytes" in output


def test_a_key_set_in_the_environment_is_not_written(var_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIYU_PII_KEY", base64.b64encode(b"e" * 32).decode())
    _run()
    assert "SIYU_PII_KEY" not in _read(var_dir / "siyu.env")


def test_the_written_file_is_what_settings_load(var_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run()
    environ: dict[str, str] = {}
    monkeypatch.setattr(os, "environ", environ)  # load into a scratch environment, not the test process's
    load_env_file(var_dir / "siyu.env")
    assert environ == _read(var_dir / "siyu.env")
