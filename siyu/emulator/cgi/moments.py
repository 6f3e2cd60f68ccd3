"""Customer moments (客户朋友圈, wecom-api.md §4.7): add_moment_task and get_moment_task_result (doc 95094), and
the read APIs the doc lists — get_moment_list, get_moment_task, get_moment_customer_list, get_moment_send_result,
get_moment_comments — plus cancel_moment_task.

Fields of the read APIs are not in wecom-api.md; they follow the official page 93443 as generated into
zsmhub/workweixin `apis/客户朋友圈-获取客户朋友圈全部的发表记录.go` (limits: list ≤ 20 per page, tasks and
customer lists ≤ 1000 (default 500), send results ≤ 5000 (default 3000); a limit above the maximum falls back to
the default, as that page says).

add_moment_task only creates a job: it is checked at once (text ≤ 2000 characters, attachments either ≤ 9 images,
1 video or 1 link), the job reports status 1 → 2 → 3 over EmulatorConfig.moment_job_seconds, and only then do the
read APIs know the moment. Members still have to publish it in the client (POST /emulator/simulate/moment/publish),
which fixes the customers it reaches. Chosen where the doc is silent: a job whose senders are all invalid finishes
with result errcode 40058 and no moment; an unknown or expired (24 h) jobid is 40058.
"""

from __future__ import annotations

from typing import Any

from siyu.emulator import ids
from siyu.emulator.cgi import Call, route
from siyu.emulator.cgi.common import cursor_decode, cursor_encode, integer, query_digest, string_list, text
from siyu.emulator.errors import ApiError, ErrCode
from siyu.emulator.model import Corp, Moment, MomentJob, MomentTask

TEXT_MAX = 2000
IMAGES_MAX = 9
SENDERS_MAX = 100_000
JOB_TTL = 86_400.0
LIST_LIMIT = (20, 20)  # (default, maximum)
TASK_LIMIT = (500, 1000)
CUSTOMER_LIMIT = (500, 1000)
SEND_RESULT_LIMIT = (3000, 5000)


def _limit(body: dict[str, Any], bounds: tuple[int, int]) -> int:
    default, maximum = bounds
    limit = integer(body, "limit", 0)
    return default if limit <= 0 or limit > maximum else limit


def _attachments(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = body.get("attachments") or []
    if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
        raise ApiError(ErrCode.INVALID_PARAMETER, "attachments must be a list of objects")
    kinds = set()
    for attachment in raw:
        msgtype = attachment.get("msgtype")
        content = attachment.get(msgtype) if isinstance(msgtype, str) else None
        if msgtype not in ("image", "video", "link") or not isinstance(content, dict):
            raise ApiError(ErrCode.INVALID_ATTACHMENT_TYPE, "msgtype must be image, video or link, with its object")
        if not content.get("media_id"):
            raise ApiError(ErrCode.INVALID_PARAMETER, f"{msgtype}.media_id is required")
        if msgtype == "link" and not content.get("url"):
            raise ApiError(ErrCode.INVALID_PARAMETER, "link.url is required")
        kinds.add(msgtype)
    if len(kinds) > 1:
        raise ApiError(ErrCode.INVALID_ATTACHMENT_TYPE, "invalid attachments msgtype: one type only")
    if raw and (len(raw) > (IMAGES_MAX if kinds == {"image"} else 1)):
        raise ApiError(ErrCode.INVALID_PARAMETER, "invalid attachments size: ≤ 9 images, or 1 video, or 1 link")
    return raw


def _department_tree(corp: Corp, roots: list[int]) -> set[int]:
    found, frontier = set(roots), list(roots)
    while frontier:
        frontier = [d.id for d in corp.departments.values() if d.parentid in frontier and d.id not in found]
        found.update(frontier)
    return found


@route("externalcontact/add_moment_task", writes=True)
def add_moment_task(call: Call) -> dict[str, Any]:
    corp, body = call.corp, call.body
    raw_text = body.get("text") or {}
    if not isinstance(raw_text, dict):
        raise ApiError(ErrCode.INVALID_PARAMETER, "text must be an object")
    content = text(raw_text, "content")
    if len(content) > TEXT_MAX:
        raise ApiError(ErrCode.INVALID_PARAMETER, f"invalid text size: at most {TEXT_MAX} characters")
    attachments = _attachments(body)
    if not content and not attachments:
        raise ApiError(ErrCode.PARAMETER_EMPTY, "text and attachments cannot both be empty")
    visible_range = body.get("visible_range") or {}
    senders_in = visible_range.get("sender_list") or {} if isinstance(visible_range, dict) else {}
    customers_in = visible_range.get("external_contact_list") or {} if isinstance(visible_range, dict) else {}
    if not isinstance(senders_in, dict) or not isinstance(customers_in, dict):
        raise ApiError(ErrCode.INVALID_PARAMETER, "visible_range.sender_list / external_contact_list are objects")
    users = string_list(senders_in, "user_list", max_items=SENDERS_MAX)
    departments = senders_in.get("department_list") or []
    if not isinstance(departments, list) or not all(isinstance(d, int) for d in departments):
        raise ApiError(ErrCode.INVALID_PARAMETER, "department_list must be a list of department ids")
    tags = string_list(customers_in, "tag_list")

    def can_publish(userid: str) -> bool:
        found = corp.members.get(userid)
        return found is not None and found.customer_contact and found.status == 1

    invalid_users = [u for u in users if not can_publish(u)]
    invalid_departments = [d for d in departments if d not in corp.departments]
    if users or departments:
        wanted = _department_tree(corp, [d for d in departments if d in corp.departments])
        senders = [u for u in dict.fromkeys(users) if can_publish(u)]
        senders += [m.userid for m in corp.members.values() if wanted & set(m.department) and can_publish(m.userid)]
    else:  # no range: every member of the app's visible range who may hold customers
        senders = [m.userid for m in corp.members.values() if can_publish(m.userid)]
    senders = list(dict.fromkeys(senders))
    live_tags = corp.tag_index()
    seq = corp.next_seq()
    job = MomentJob(
        jobid=ids.jobid(corp.corp_id, seq),
        created_at=call.now,
        moment_id="",
        invalid_users=invalid_users,
        invalid_departments=invalid_departments,
        invalid_tags=[t for t in tags if t not in live_tags],
    )
    if senders:
        job.moment_id = ids.moment_id(corp.corp_id, seq)
        valid_tags = [t for t in tags if t in live_tags]
        corp.moments[job.moment_id] = Moment(
            moment_id=job.moment_id,
            seq=seq,
            create_time=int(call.now),
            create_type=0,
            visible_type=0 if valid_tags else 1,
            text=content,
            attachments=attachments,
            tag_list=valid_tags,
            tasks=[MomentTask(u) for u in senders],
            visible_from=call.now + call.config.moment_job_seconds,
        )
    else:
        job.errcode, job.errmsg = int(ErrCode.INVALID_PARAMETER), "no valid sender in visible_range"
    corp.moment_jobs[job.jobid] = job
    return {"jobid": job.jobid}


@route("externalcontact/get_moment_task_result", methods=("GET",))
def get_moment_task_result(call: Call) -> dict[str, Any]:
    jobid = call.query.get("jobid", "")
    if not jobid:
        raise ApiError(ErrCode.PARAMETER_EMPTY, "jobid is required")
    job = call.corp.moment_jobs.get(jobid)
    if job is None or call.now - job.created_at > JOB_TTL:  # a jobid is valid 24 hours (§4.7)
        raise ApiError(ErrCode.INVALID_PARAMETER, "invalid jobid")
    elapsed, duration = call.now - job.created_at, call.config.moment_job_seconds
    if elapsed < duration:
        return {"status": 1 if elapsed < duration / 2 else 2, "type": "add_moment_task"}
    result: dict[str, Any] = {"errcode": job.errcode, "errmsg": job.errmsg}
    if job.moment_id:
        result["moment_id"] = job.moment_id
    result["invalid_sender_list"] = {"user_list": job.invalid_users, "department_list": job.invalid_departments}
    result["invalid_external_contact_list"] = {"tag_list": job.invalid_tags}
    return {"status": 3, "type": "add_moment_task", "result": result}


def moment_json(moment: Moment) -> dict[str, Any]:
    row: dict[str, Any] = {"moment_id": moment.moment_id}
    if moment.creator:  # moments made through add_moment_task no longer return their creator (93443)
        row["creator"] = moment.creator
    row.update(
        create_time=moment.create_time,
        create_type=moment.create_type,
        visible_type=moment.visible_type,
        text={"content": moment.text},
    )
    images = [a["image"] for a in moment.attachments if a["msgtype"] == "image"]
    if images:
        row["image"] = [{"media_id": i["media_id"]} for i in images]
    for a in moment.attachments:
        if a["msgtype"] == "video":
            row["video"] = {"media_id": a["video"]["media_id"], "thumb_media_id": a["video"].get("thumb_media_id", "")}
        elif a["msgtype"] == "link":
            row["link"] = {"title": a["link"].get("title", ""), "url": a["link"]["url"]}
    return row


def _moment(call: Call, *, corp_made: bool = False) -> Moment:
    moment_id = text(call.body, "moment_id", missing=ErrCode.MISSING_MOMENT_ID)
    moment = call.corp.moments.get(moment_id)
    if moment is None or moment.visible_from > call.now or (corp_made and moment.create_type != 0):
        raise ApiError(ErrCode.INVALID_MOMENT_ID)
    return moment


def _publisher(call: Call, moment: Moment, *, published: bool) -> str:
    userid = text(call.body, "userid", missing=ErrCode.MISSING_USERID)
    task = next((t for t in moment.tasks if t.userid == userid), None)
    if task is None:
        raise ApiError(ErrCode.MOMENT_NOT_BY_USER)
    if published and task.publish_status != 1:
        raise ApiError(ErrCode.MOMENT_NOT_PUBLISHED)
    return userid


def _offset_page(call: Call, kind: str, key: str, rows: list[Any], bounds: tuple[int, int]) -> tuple[list[Any], str]:
    limit = _limit(call.body, bounds)
    position = cursor_decode(call.corp, kind, text(call.body, "cursor"))
    if position is not None and position.get("m") != key:
        raise ApiError(ErrCode.INVALID_CURSOR)
    offset = int(position["o"]) if position else 0
    more = offset + limit < len(rows)
    return rows[offset : offset + limit], cursor_encode(
        call.corp, kind, {"m": key, "o": offset + limit}
    ) if more else ""


@route("externalcontact/get_moment_list")
def get_moment_list(call: Call) -> dict[str, Any]:
    corp, body = call.corp, call.body
    start_time = integer(body, "start_time", missing=ErrCode.PARAMETER_EMPTY)
    end_time = integer(body, "end_time", missing=ErrCode.PARAMETER_EMPTY)
    if start_time > end_time:
        raise ApiError(ErrCode.INVALID_PARAMETER, "start_time is after end_time")
    creator = text(body, "creator")
    filter_type = integer(body, "filter_type", 2)
    if filter_type not in (0, 1, 2):
        raise ApiError(ErrCode.INVALID_PARAMETER, "filter_type must be 0, 1 or 2")
    limit = _limit(body, LIST_LIMIT)
    digest = query_digest(start_time, end_time, creator, filter_type)
    position = cursor_decode(corp, "get_moment_list", text(body, "cursor"))
    if position is not None and position.get("q") != digest:
        raise ApiError(ErrCode.INVALID_CURSOR)
    after = int(position["s"]) if position else 0
    moments = sorted(
        (
            m
            for m in corp.moments.values()
            if m.visible_from <= call.now
            and start_time <= m.create_time <= end_time
            and (not creator or m.creator == creator)
            and (filter_type == 2 or m.create_type == filter_type)
            and m.seq > after
        ),
        key=lambda m: m.seq,
    )
    page = moments[:limit]
    next_cursor = (
        cursor_encode(corp, "get_moment_list", {"q": digest, "s": page[-1].seq}) if len(moments) > limit else ""
    )
    return {"moment_list": [moment_json(m) for m in page], "next_cursor": next_cursor}


@route("externalcontact/get_moment_task")
def get_moment_task(call: Call) -> dict[str, Any]:
    moment = _moment(call, corp_made=True)  # only corp moments have publishing tasks
    rows = [{"userid": t.userid, "publish_status": t.publish_status} for t in moment.tasks]
    page, next_cursor = _offset_page(call, "get_moment_task", moment.moment_id, rows, TASK_LIMIT)
    return {"task_list": page, "next_cursor": next_cursor}


@route("externalcontact/get_moment_customer_list")
def get_moment_customer_list(call: Call) -> dict[str, Any]:
    moment = _moment(call)
    userid = _publisher(call, moment, published=True)
    rows = [{"userid": userid, "external_userid": e} for e in moment.visible.get(userid, [])]
    page, next_cursor = _offset_page(
        call, "get_moment_customer_list", f"{moment.moment_id}:{userid}", rows, CUSTOMER_LIMIT
    )
    return {"customer_list": page, "next_cursor": next_cursor}


@route("externalcontact/get_moment_send_result")
def get_moment_send_result(call: Call) -> dict[str, Any]:
    moment = _moment(call)
    userid = _publisher(call, moment, published=True)
    rows = [{"external_userid": e} for e in moment.sent.get(userid, [])]
    page, next_cursor = _offset_page(
        call, "get_moment_send_result", f"{moment.moment_id}:{userid}", rows, SEND_RESULT_LIMIT
    )
    return {"customer_list": page, "next_cursor": next_cursor}


@route("externalcontact/get_moment_comments")
def get_moment_comments(call: Call) -> dict[str, Any]:
    moment = _moment(call)
    userid = _publisher(call, moment, published=False)

    def rows(items: list[Any]) -> list[dict[str, Any]]:
        # A row names either the customer or the member who commented / liked, never both (93443).
        return [
            {"external_userid": i.external_userid, "create_time": i.create_time}
            if i.external_userid
            else {"userid": i.userid, "create_time": i.create_time}
            for i in items
        ]

    return {
        "comment_list": rows(moment.comments.get(userid, [])),
        "like_list": rows(moment.likes.get(userid, [])),
    }


@route("externalcontact/cancel_moment_task", methods=("GET", "POST"), writes=True)
def cancel_moment_task(call: Call) -> dict[str, Any]:
    """Stops a corp moment: members who have not published it yet no longer can (doc 97612)."""
    if call.query.get("moment_id") and not call.body.get("moment_id"):
        call.body["moment_id"] = call.query["moment_id"]
    moment = _moment(call, corp_made=True)
    moment.cancelled = True
    return {}
