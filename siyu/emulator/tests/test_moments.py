"""Customer moments: the asynchronous add_moment_task job, publishing in the client, and the read APIs."""

from __future__ import annotations

from typing import Any

from siyu.emulator.clock import Clock
from siyu.emulator.tests.conftest import Running, StartEmulator, WeComClient

TEXT = {"content": "夏日防晒新品上市，会员专享8折"}
IMAGE = {"msgtype": "image", "image": {"media_id": "MEDIA_1"}}


def _guide_and_tag(running: Running) -> tuple[str, str, list[str], list[str]]:
    """A guide, one of the tags on their customers, the customers with it and all their customers."""
    corp = running.corp
    for userid in (u for u in corp.members if u.startswith("guide")):
        customers = list(corp.customers_of(userid))
        for tag in corp.contacts[customers[0]].follows[userid].tag_ids if customers else []:
            tagged = [c for c in customers if tag in corp.contacts[c].follows[userid].tag_ids]
            if 1 < len(tagged) < len(customers):
                return userid, tag, tagged, customers
    raise AssertionError("the seed has no suitable guide")


def _task(client: WeComClient, **body: Any) -> dict[str, Any]:
    return client.post("externalcontact/add_moment_task", body)


def _done(running: Running, jobid: str) -> dict[str, Any]:
    running.client.admin("clock", {"advance": 2.5})
    result = running.client.get("externalcontact/get_moment_task_result", jobid=jobid)
    assert result["status"] == 3, result
    return result


def test_moment_job_then_publishing(start_emulator: StartEmulator) -> None:
    emulator = start_emulator(clock=Clock(frozen_at=1_700_000_500.0))  # job phases and times exact, not raced
    client = emulator.client
    guide, tag, tagged, _ = _guide_and_tag(emulator)
    start = int(client.admin("clock")["now"])
    job = _task(
        client,
        text=TEXT,
        attachments=[IMAGE, {"msgtype": "image", "image": {"media_id": "MEDIA_2"}}],
        visible_range={
            "sender_list": {"user_list": [guide, "nobody"], "department_list": [999]},
            "external_contact_list": {"tag_list": [tag, "etnosuchtag"]},
        },
    )
    assert job["errcode"] == 0, job
    jobid = job["jobid"]
    assert client.get("externalcontact/get_moment_task_result", jobid=jobid) == {
        "errcode": 0,
        "errmsg": "ok",
        "status": 1,
        "type": "add_moment_task",
    }
    client.admin("clock", {"advance": 1.2})
    assert client.get("externalcontact/get_moment_task_result", jobid=jobid)["status"] == 2
    end = start + 10
    # Until the job is done the moment is unknown.
    assert client.post("externalcontact/get_moment_list", {"start_time": start, "end_time": end})["moment_list"] == []
    result = _done(emulator, jobid)
    moment_id = result["result"]["moment_id"]
    assert result["result"] == {
        "errcode": 0,
        "errmsg": "ok",
        "moment_id": moment_id,
        "invalid_sender_list": {"user_list": ["nobody"], "department_list": [999]},
        "invalid_external_contact_list": {"tag_list": ["etnosuchtag"]},
    }
    listed = client.post("externalcontact/get_moment_list", {"start_time": start, "end_time": end})["moment_list"]
    assert listed == [
        {
            "moment_id": moment_id,
            "create_time": listed[0]["create_time"],
            "create_type": 0,
            "visible_type": 0,
            "text": TEXT,
            "image": [{"media_id": "MEDIA_1"}, {"media_id": "MEDIA_2"}],
        }
    ]
    assert client.post("externalcontact/get_moment_task", {"moment_id": moment_id})["task_list"] == [
        {"userid": guide, "publish_status": 0}
    ]
    body = {"moment_id": moment_id, "userid": guide}
    assert client.post("externalcontact/get_moment_send_result", body)["errcode"] == 41062  # not published yet

    # One tagged customer deleted the guide: still in the range, not reached.
    gone = tagged[0]
    client.admin("simulate/del_contact", {"userid": guide, "external_userid": gone, "by": "customer"})
    published = client.admin("simulate/moment/publish", body)
    assert (published["visible"], published["sent"]) == (len(tagged), len(tagged) - 1)
    assert client.post("externalcontact/get_moment_task", {"moment_id": moment_id})["task_list"] == [
        {"userid": guide, "publish_status": 1}
    ]
    customers = client.post("externalcontact/get_moment_customer_list", body)["customer_list"]
    assert customers == [{"userid": guide, "external_userid": c} for c in tagged]
    sent = client.post("externalcontact/get_moment_send_result", body)["customer_list"]
    assert sent == [{"external_userid": c} for c in tagged[1:]]

    client.admin("simulate/moment/interact", {**body, "external_userid": tagged[1], "kind": "comment"})
    client.admin("simulate/moment/interact", {**body, "external_userid": tagged[1], "kind": "like"})
    refused = {**body, "external_userid": gone, "kind": "like"}
    assert client.admin_raw("simulate/moment/interact", refused).status == 400
    comments = client.post("externalcontact/get_moment_comments", body)
    now = int(client.admin("clock")["now"])
    assert comments["comment_list"] == [{"external_userid": tagged[1], "create_time": now}]
    assert comments["like_list"] == [{"external_userid": tagged[1], "create_time": now}]
    assert client.admin_raw("simulate/moment/publish", body).status == 400  # published already


def test_personal_moments_and_list_filters(emulator: Running) -> None:
    client = emulator.client
    guide, _, _, customers = _guide_and_tag(emulator)
    start = int(client.admin("clock")["now"])
    personal = client.admin("simulate/moment/post", {"userid": guide, "content": "今天到店的姐妹有小样送"})
    corp_made = _done(emulator, _task(client, text=TEXT)["jobid"])["result"]["moment_id"]
    end = int(client.admin("clock")["now"])
    window = {"start_time": start, "end_time": end}

    def ids(**body: Any) -> list[str]:
        return [
            m["moment_id"] for m in client.post("externalcontact/get_moment_list", {**window, **body})["moment_list"]
        ]

    assert ids() == [personal["moment_id"], corp_made]
    assert ids(filter_type=0) == [corp_made]
    assert ids(filter_type=1) == [personal["moment_id"]]
    assert ids(creator=guide) == [personal["moment_id"]]
    row = client.post("externalcontact/get_moment_list", {**window, "filter_type": 1})["moment_list"][0]
    assert (row["creator"], row["create_type"], row["visible_type"]) == (guide, 1, 1)
    mine = {"moment_id": personal["moment_id"], "userid": guide}
    reached = client.post("externalcontact/get_moment_send_result", mine)["customer_list"]
    assert [r["external_userid"] for r in reached] == customers
    # Only corp moments have publishing tasks; with no visible range every customer-contact member is asked.
    assert client.post("externalcontact/get_moment_task", {"moment_id": personal["moment_id"]})["errcode"] == 41060
    tasks = client.post("externalcontact/get_moment_task", {"moment_id": corp_made})["task_list"]
    expected = [m.userid for m in emulator.corp.members.values() if m.customer_contact and m.status == 1]
    assert [t["userid"] for t in tasks] == expected


def test_pages(emulator: Running) -> None:
    client = emulator.client
    start = int(client.admin("clock")["now"])
    made = [_task(client, text={"content": f"第{i}条"})["jobid"] for i in range(25)]
    client.admin("clock", {"advance": 3})
    end = int(client.admin("clock")["now"])
    seen: list[str] = []
    cursor = ""
    while True:
        page = client.post(
            "externalcontact/get_moment_list", {"start_time": start, "end_time": end, "limit": 7, "cursor": cursor}
        )
        assert len(page["moment_list"]) <= 7
        seen += [m["moment_id"] for m in page["moment_list"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == len(made)
    # A limit above the maximum (20) falls back to the default (20).
    big = client.post("externalcontact/get_moment_list", {"start_time": start, "end_time": end, "limit": 500})
    assert len(big["moment_list"]) == 20
    other = client.post(
        "externalcontact/get_moment_list", {"start_time": start, "end_time": end - 1, "cursor": big["next_cursor"]}
    )
    assert other["errcode"] == 50100  # a cursor belongs to its query
    tasks = client.post("externalcontact/get_moment_task", {"moment_id": seen[0], "limit": 2})
    assert len(tasks["task_list"]) == 2
    assert tasks["next_cursor"]


def test_cancel_stops_publishing(emulator: Running) -> None:
    client = emulator.client
    guide, _, _, _ = _guide_and_tag(emulator)
    job = _task(client, text=TEXT, visible_range={"sender_list": {"user_list": [guide]}})
    moment_id = _done(emulator, job["jobid"])["result"]["moment_id"]
    assert client.post("externalcontact/cancel_moment_task", {"moment_id": moment_id}) == {"errcode": 0, "errmsg": "ok"}
    body = {"moment_id": moment_id, "userid": guide}
    assert client.admin_raw("simulate/moment/publish", body).status == 400
    assert client.get("externalcontact/cancel_moment_task", moment_id=moment_id)["errcode"] == 0  # GET works too


def test_moment_errors(start_emulator: StartEmulator) -> None:
    running = start_emulator(moment_job_seconds=0)
    client = running.client
    guide, _, _, _ = _guide_and_tag(running)
    link = {"msgtype": "link", "link": {"media_id": "M", "url": "https://brand.example.com", "title": "新品"}}
    video = {"msgtype": "video", "video": {"media_id": "V"}}
    assert _task(client)["errcode"] == 40063
    assert _task(client, text={"content": "字" * 2001})["errcode"] == 40058
    assert _task(client, text={"content": "字" * 2000})["errcode"] == 0
    assert _task(client, attachments=[IMAGE] * 10)["errcode"] == 40058
    assert _task(client, attachments=[IMAGE] * 9)["errcode"] == 0
    assert _task(client, attachments=[link, link])["errcode"] == 40058
    assert _task(client, attachments=[video, video])["errcode"] == 40058
    assert _task(client, attachments=[IMAGE, link])["errcode"] == 41065
    assert _task(client, attachments=[{"msgtype": "file", "file": {"media_id": "F"}}])["errcode"] == 41065
    assert _task(client, attachments=[{"msgtype": "link", "link": {"media_id": "M"}}])["errcode"] == 40058
    assert _task(client, attachments=[{"msgtype": "image", "image": {}}])["errcode"] == 40058
    assert _task(client, text=TEXT, visible_range={"sender_list": {"user_list": ["x"] * 100_001}})["errcode"] == 40058

    nobody = _task(client, text=TEXT, visible_range={"sender_list": {"user_list": ["nobody"]}})["jobid"]
    result = client.get("externalcontact/get_moment_task_result", jobid=nobody)
    assert (result["status"], result["result"]["errcode"], "moment_id" in result["result"]) == (3, 40058, False)
    assert client.get("externalcontact/get_moment_task_result")["errcode"] == 40063
    assert client.get("externalcontact/get_moment_task_result", jobid="jobnope")["errcode"] == 40058
    client.admin("clock", {"advance": 86_401})  # a jobid is valid 24 hours
    client.refresh()  # and so, far less, is the access token
    assert client.get("externalcontact/get_moment_task_result", jobid=nobody)["errcode"] == 40058

    job = _task(client, text=TEXT, visible_range={"sender_list": {"user_list": [guide]}})["jobid"]
    moment_id = client.get("externalcontact/get_moment_task_result", jobid=job)["result"]["moment_id"]
    assert client.post("externalcontact/get_moment_task", {})["errcode"] == 41059
    assert client.post("externalcontact/get_moment_task", {"moment_id": "momnope"})["errcode"] == 41060
    other = next(u for u in running.corp.members if u.startswith("guide") and u != guide)
    assert client.post("externalcontact/get_moment_customer_list", {"moment_id": moment_id})["errcode"] == 41009
    not_sender = {"moment_id": moment_id, "userid": other}
    assert client.post("externalcontact/get_moment_customer_list", not_sender)["errcode"] == 41061
    assert client.post("externalcontact/get_moment_comments", not_sender)["errcode"] == 41061
    assert client.post("externalcontact/get_moment_list", {"start_time": 1})["errcode"] == 40063
    assert client.post("externalcontact/get_moment_list", {"start_time": 2, "end_time": 1})["errcode"] == 40058
