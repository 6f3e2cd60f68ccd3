"""Reloading the demo on an install whose WeCom emulator already holds the brand's corp: the emulator keeps its state
across restarts (a JSON snapshot, VAR_DIR/emulator/state.json), so a corp an earlier version handed it, without the
ways of the brand's codes, would stay there for good. After a `siyu demo`, the next `siyu serve` hands the brand over
again: the ways match the codes siyu stores, and what only the emulator knows is kept."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from siyu.channels.models import LiveCode
from siyu.core.models import Tenant
from siyu.demo.services import demo_load
from siyu.demo.wecom import Attached, demo_emulator_attach, demo_wecom_connect
from siyu.emulator.config import EmulatorConfig
from siyu.emulator.core import Emulator
from siyu.emulator.model import Corp
from siyu.emulator.server import RunningServer, serve_in_thread
from siyu.groups.models import GroupCode

pytestmark = pytest.mark.django_db

ANCHOR = dt.datetime(2026, 6, 20, tzinfo=dt.UTC)


def _serve(state: Path | None = None) -> RunningServer:
    """The emulator as `siyu serve` starts it: resumed from its state file if there is one, else holding no corp."""
    return serve_in_thread(Emulator.open(EmulatorConfig(state_path=state), list))


@pytest.fixture
def emulator() -> Iterator[RunningServer]:
    server = _serve()
    yield server
    server.stop()


def _demo(emulator_url: str) -> Tenant:
    load = demo_load(slug="demo", seed=7, customers=150, anchor=ANCHOR).load
    assert load.tenant is not None
    demo_wecom_connect(tenant=load.tenant, emulator_url=emulator_url)
    return load.tenant


def _attach(tenant: Tenant, emulator: RunningServer) -> Attached:
    return demo_emulator_attach(
        tenant=tenant, emulator_url=emulator.url, callback_base_url="http://127.0.0.1:9", simulate_rate=0
    )


def _ways(corp: Corp) -> set[tuple[str, str, tuple[str, ...], str]]:
    contact = {(w.config_id, w.state, tuple(w.user), w.qr_code) for w in corp.contact_ways.values()}
    join = {(w.config_id, w.state, tuple(w.chat_id_list), w.qr_code) for w in corp.join_ways.values()}
    return contact | join


def _stored_ways(tenant: Tenant) -> set[tuple[str, str, tuple[str, ...], str]]:
    """The ways as siyu stores them on its live codes and group codes."""
    codes = {(c.config_id, c.state, tuple(c.wecom_users), c.qr_code) for c in LiveCode.objects.filter(tenant=tenant)}
    groups = {(c.config_id, c.state, tuple(c.way_chat_ids), c.qr_code) for c in GroupCode.objects.filter(tenant=tenant)}
    assert len(codes) > 30
    assert groups
    return codes | groups


def test_siyu_demo_gives_an_emulator_resumed_with_an_earlier_corp_the_brands_ways(tmp_path: Path) -> None:
    state = tmp_path / "emulator" / "state.json"
    first = _serve(state)
    try:
        tenant = _demo(first.url)
        corp_id = _attach(tenant, first).corp_id
        with first.emulator.lock:
            # The corp an earlier version handed over: the brand's people and groups, none of its codes' ways.
            corp = first.emulator.corps[corp_id]
            corp.contact_ways.clear()
            corp.join_ways.clear()
            first.emulator.mark_dirty()
    finally:
        first.stop()  # writes the state file, as Ctrl-C on `siyu serve` does

    second = _serve(state)
    try:
        assert _ways(second.emulator.corps[corp_id]) == set()
        # `siyu serve` restarted on its own keeps what the emulator holds.
        assert _attach(tenant, second).pushed is False
        assert _ways(second.emulator.corps[corp_id]) == set()

        out = StringIO()
        call_command("demo", stdout=out)  # the brand is loaded: nothing to load, but the corp is due a refresh
        assert "already loaded" in out.getvalue()
        attached = _attach(tenant, second)
        assert attached.pushed is True
        assert _ways(second.emulator.corps[corp_id]) == _stored_ways(tenant)
        # ... once: the next restart finds it as handed over.
        assert _attach(tenant, second).pushed is False
    finally:
        second.stop()


def test_handing_the_brand_over_again_restores_its_ways_and_keeps_what_only_the_emulator_knows(
    emulator: RunningServer,
) -> None:
    tenant = _demo(emulator.url)
    first = _attach(tenant, emulator)
    assert first.pushed is True
    code = LiveCode.objects.filter(tenant=tenant).exclude(config_id="").order_by("id").first()
    group_code = GroupCode.objects.filter(tenant=tenant).exclude(config_id="").order_by("id").first()
    assert code is not None
    assert group_code is not None
    note = {"welcome_code": "w-1", "text": {"content": "欢迎"}}
    with emulator.emulator.lock:
        corp = emulator.emulator.corps[first.corp_id]
        del corp.contact_ways[code.config_id]  # a way the emulator lost
        corp.join_ways[group_code.config_id].chat_id_list = []  # and one it holds otherwise than siyu
        corp.welcome_messages.append(note)  # what the app sent meanwhile: only the emulator holds it
        corp.seq += 5_000  # ids the emulator handed out meanwhile (ways, contacts) derive from this counter
        seq = corp.seq
    assert _ways(corp) != _stored_ways(tenant)

    assert demo_load(slug="demo").already_loaded is True  # `siyu demo` again
    again = _attach(tenant, emulator)
    assert again.pushed is True
    assert again.customers == first.customers
    corp = emulator.emulator.corps[first.corp_id]
    assert _ways(corp) == _stored_ways(tenant)
    way = corp.contact_ways[code.config_id]
    assert (way.state, way.user, way.remark) == (code.state, code.wecom_users, code.name[:30])
    assert corp.join_ways[group_code.config_id].chat_id_list == group_code.way_chat_ids
    assert corp.welcome_messages == [note]
    assert corp.seq == seq  # never back: a way made next cannot take the id of one siyu stores
    assert corp.callback.url == f"http://127.0.0.1:9/wecom/callback/{first.corp_id}/"
