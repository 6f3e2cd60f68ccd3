"""The console's segment pages without a browser: live count per scope, errors named, list counts, export flow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import Client, override_settings

from siyu.analytics.models import Segment, SegmentExport
from siyu.analytics.services import segment_create, segment_export_execute
from siyu.core.models import AuditLog
from siyu.testing import PASSWORD, World


def _login(client: Client, persona: str) -> Client:
    assert client.login(username=persona, password=PASSWORD)
    return client


@pytest.mark.parametrize(("persona", "expected"), [("hq", 2), ("region1", 1), ("franchisee1", 2), ("guide1", 1)])
def test_live_count_is_in_the_viewers_scope(client: Client, world: World, persona: str, expected: int) -> None:
    _login(client, persona)
    rule = {"op": "has_tag", "tag_id": world.tags["护肤"].id}
    answer = client.post("/customers/segments/preview/", {"rule": json.dumps(rule)})
    assert answer.status_code == 200
    assert f'data-count="{expected}"' in answer.content.decode()


def test_live_count_names_the_bad_node(client: Client, world: World) -> None:
    _login(client, "hq")
    rule = {"op": "and", "rules": [{"op": "event_count", "type": "message.received", "cmp": "gte", "value": 1}]}
    answer = client.post("/customers/segments/preview/", {"rule": json.dumps(rule)})
    assert "rule.rules[0].days" in answer.content.decode()


def test_save_list_and_export(client: Client, world: World, tmp_path: Path) -> None:
    _login(client, "region1")
    rule = {"op": "has_tag", "tag_id": world.tags["护肤"].id}
    answer = client.post("/customers/segments/new/", {"name": "护肤", "rule": json.dumps(rule), "schedule": "manual"})
    assert answer.status_code == 302
    segment = Segment.objects.get(name="护肤")
    assert segment.owner_id == world.users["region1"].pk
    page = client.get("/customers/segments/").content.decode()
    assert f'data-segment-id="{segment.id}"' in page
    assert '<td class="num" data-count>1</td>' in page
    # An invalid tree is refused with its message; nothing is saved.
    bad = client.post("/customers/segments/new/", {"name": "坏", "rule": "[]", "schedule": "manual"})
    assert bad.status_code == 422
    assert not Segment.objects.filter(name="坏").exists()
    with override_settings(MEDIA_ROOT=str(tmp_path)):
        started = client.post(f"/customers/segments/{segment.id}/export/")
        assert 'data-export-status="pending"' in started.content.decode()
        export = SegmentExport.objects.get(segment=segment)
        segment_export_execute(export_id=export.id)
        status = client.get(f"/customers/segment-exports/{export.id}/").content.decode()
        assert 'data-export-status="done"' in status
        file = client.get(f"/customers/segment-exports/{export.id}/file/")
        body = b"".join(file.streaming_content).decode("utf-8-sig")
        assert body.splitlines()[1].startswith(f"{world.customers['c1'].id},")
        assert AuditLog.objects.filter(action="segment_export.download", target_id=str(export.id)).exists()


def test_others_cannot_change_hq_segments(client: Client, world: World) -> None:
    segment = segment_create(
        actor=world.actor("hq"), name="HQ", rule={"op": "has_tag", "tag_id": world.tags["护肤"].id}
    )
    _login(client, "store1")
    client.post(f"/customers/segments/{segment.id}/delete/")
    assert Segment.objects.filter(id=segment.id).exists()
    _login(client, "outsider")
    assert client.get(f"/customers/segments/{segment.id}/").status_code == 404
