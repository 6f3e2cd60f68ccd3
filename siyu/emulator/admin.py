"""The emulator's own HTTP surface under /emulator/: configuration, simulated user actions, observations.

Not part of WeCom: tests and the demo use it to drive and inspect the emulator. It is served on the same
port (127.0.0.1 only by default), is never faulted or rate-limited, and answers plain JSON with HTTP 400 and
{"error": ...} for bad input. `corp_id` may be omitted when the emulator holds a single corp.

  GET  /emulator/health                      liveness and corp ids
  GET  /emulator/corps                       corps with app secrets, callback settings and counts
  POST /emulator/corps                       create or replace a corp from its full JSON (the snapshot format)
  GET  /emulator/corps/export?corp_id=       one corp's full JSON
  POST /emulator/callback                    {url, token, encoding_aes_key, agentid}: where events are pushed
  GET|POST /emulator/faults                  fault settings (see siyu.emulator.faults) and injected counts
  GET|POST /emulator/limits                  {"windows": [[limit, seconds], ...]}; [] switches limits off
  GET|POST /emulator/clock                   {"advance": seconds}: move the emulator's clock forward (transfers
                                             whose 24 hours pass complete at once, with their callbacks)
  GET  /emulator/callbacks?after=ID          recorded deliveries (every attempt) and the number pending
  POST /emulator/callbacks/clear             forget recorded deliveries
  GET  /emulator/welcome_messages            what send_welcome_msg delivered
  POST /emulator/simulate/<action>           add_contact, del_contact, edit_contact, tags/create, tags/update,
                                             tags/delete, chat/create, chat/join, chat/leave, chat/update,
                                             chat/dismiss, join_way, groupmsg/send, message, open_material,
                                             member/resign, transfer/refuse, moment/publish, moment/post,
                                             moment/interact: change the corp as a user would (and fire the
                                             callback where WeCom fires one)
  POST /emulator/simulate/run                the behaviour simulator (siyu.emulator.simulator):
                                             {"steps": N, "seed": S} runs N actions now and answers the ground
                                             truth; {"rate": R, "seed": S} runs R actions/s in the background.
                                             Optional: corp_id, mix {kind: weight}, seconds_per_step (steps only)
  GET  /emulator/simulate/status             the background simulation: running, rate, steps, counts
  POST /emulator/simulate/stop               stop it (answers its status)
  GET  /emulator/simulate/truth              the background simulation's ground truth (last 10,000 records)
  GET  /emulator/chat_messages?after=SEQ     the chat message store in the session archive's JSON (limit ≤ 1000)
  GET  /emulator/material_opens?after=SEQ    logged material opens (limit ≤ 1000)
  GET|POST /emulator/materials               {"materials": [{material_id, title, url}]}: what customers open
  GET  /emulator/qr/<config_id>.svg          a placeholder picture for a contact way's qr_code
"""

from __future__ import annotations

import json
from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING, Any

from siyu.emulator import actions
from siyu.emulator.errors import ApiError
from siyu.emulator.faults import FaultConfig
from siyu.emulator.model import CallbackConfig, Corp, Material, from_jsonable, to_jsonable
from siyu.emulator.simulator import Mix, Simulator
from siyu.wecom.crypto import WeComCrypto

if TYPE_CHECKING:
    from siyu.emulator.core import Emulator, Request, Response


class AdminError(ValueError):
    pass


def _corp(emulator: Emulator, data: dict[str, Any]) -> Corp:
    corp_id = data.get("corp_id") or ""
    if not corp_id:
        if len(emulator.corps) != 1:
            raise AdminError("corp_id is required when the emulator holds several corps")
        return next(iter(emulator.corps.values()))
    corp = emulator.corps.get(corp_id)
    if corp is None:
        raise AdminError(f"unknown corp {corp_id!r}")
    return corp


def _corp_summary(corp: Corp) -> dict[str, Any]:
    return {
        "corp_id": corp.corp_id,
        "name": corp.name,
        "apps": [to_jsonable(a) for a in corp.apps],
        "callback": to_jsonable(corp.callback),
        "counts": {
            "departments": len(corp.departments),
            "members": len(corp.members),
            "contacts": len(corp.contacts),
            "follows": sum(len(c.follows) for c in corp.contacts.values()),
            "tags": corp.live_tag_count(),
            "contact_ways": len(corp.contact_ways),
            "group_chats": len(corp.group_chats),
        },
    }


def _strings(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AdminError(f"{key} must be a list of strings")
    return value


def _opt_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise AdminError(f"{key} must be a string")
    return value


# -- simulated actions: body → keyword arguments of the action ---------------------------------------------------

Simulation = Callable[["Emulator", Corp, dict[str, Any]], actions.Outcome]


def _add_contact(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    return actions.contact_add(
        corp,
        now=emulator.clock.now(),
        userid=_opt_str(d, "userid") or "",
        external_userid=_opt_str(d, "external_userid"),
        name=_opt_str(d, "name"),
        gender=int(d.get("gender", 0)),
        unionid=_opt_str(d, "unionid"),
        state=_opt_str(d, "state"),
        config_id=_opt_str(d, "config_id") or "",
        add_way=int(d.get("add_way", actions.ADD_WAY_QR)),
        welcome_code=bool(d.get("welcome_code", True)),
        half=bool(d.get("half", False)),
    )


def _del_contact(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    return actions.contact_delete(
        corp,
        now=emulator.clock.now(),
        userid=_opt_str(d, "userid") or "",
        external_userid=_opt_str(d, "external_userid") or "",
        by=_opt_str(d, "by") or "member",
        source=_opt_str(d, "source") or "",
    )


def _edit_contact(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    return actions.contact_edit(
        corp,
        now=emulator.clock.now(),
        userid=_opt_str(d, "userid") or "",
        external_userid=_opt_str(d, "external_userid") or "",
        remark=_opt_str(d, "remark"),
        description=_opt_str(d, "description"),
        add_tag=_strings(d, "add_tag"),
        remove_tag=_strings(d, "remove_tag"),
    )


def _tags_create(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    return actions.tags_create(
        corp,
        now=emulator.clock.now(),
        max_tags=emulator.config.max_corp_tags,
        group_id=_opt_str(d, "group_id") or "",
        group_name=_opt_str(d, "group_name") or "",
        tags=_strings(d, "tags"),
    )


def _tags_update(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    order = d.get("order")
    return actions.tag_update(
        corp,
        now=emulator.clock.now(),
        id=_opt_str(d, "id") or "",
        name=_opt_str(d, "name"),
        order=None if order is None else int(order),
    )


def _tags_delete(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    return actions.tags_delete(
        corp, now=emulator.clock.now(), tag_ids=_strings(d, "tag_ids"), group_ids=_strings(d, "group_ids")
    )


def _chat_create(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    return actions.chat_create(
        corp,
        now=emulator.clock.now(),
        owner=_opt_str(d, "owner") or "",
        name=_opt_str(d, "name") or "",
        members=_strings(d, "members"),
    )


def _chat_join(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    return actions.chat_join(
        corp,
        now=emulator.clock.now(),
        chat_id=_opt_str(d, "chat_id") or "",
        members=_strings(d, "members"),
        join_scene=int(d.get("join_scene", 3)),
    )


def _chat_leave(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    return actions.chat_leave(
        corp,
        now=emulator.clock.now(),
        chat_id=_opt_str(d, "chat_id") or "",
        members=_strings(d, "members"),
        quit_scene=int(d.get("quit_scene", 0)),
    )


def _chat_update(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    return actions.chat_update(
        corp,
        now=emulator.clock.now(),
        chat_id=_opt_str(d, "chat_id") or "",
        name=_opt_str(d, "name"),
        notice=_opt_str(d, "notice"),
        owner=_opt_str(d, "owner"),
    )


def _chat_dismiss(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    return actions.chat_dismiss(corp, now=emulator.clock.now(), chat_id=_opt_str(d, "chat_id") or "")


def _groupmsg_send(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    return actions.groupmsg_send(
        corp, now=emulator.clock.now(), msgid=_opt_str(d, "msgid") or "", userid=_opt_str(d, "userid") or ""
    )


def _message(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    return actions.message_send(
        corp,
        now=emulator.clock.now(),
        sender=_opt_str(d, "from") or "",
        receiver=_opt_str(d, "to") or "",
        chat_id=_opt_str(d, "chat_id") or "",
        content=_opt_str(d, "content") or "",
        keep=emulator.config.activity_log_max,
    )


def _open_material(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    return actions.material_open(
        corp,
        now=emulator.clock.now(),
        external_userid=_opt_str(d, "external_userid") or "",
        userid=_opt_str(d, "userid") or "",
        material_id=_opt_str(d, "material_id") or "",
        url=_opt_str(d, "url") or "",
        keep=emulator.config.activity_log_max,
    )


def _join_way(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    return actions.join_way_scan(
        corp,
        now=emulator.clock.now(),
        config_id=_opt_str(d, "config_id") or "",
        external_userid=_opt_str(d, "external_userid") or "",
        room_limit=emulator.config.join_way_room_limit,
    )


def _member_resign(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    return actions.member_resign(corp, now=emulator.clock.now(), userid=_opt_str(d, "userid") or "")


def _transfer_refuse(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    return actions.transfer_refuse(corp, now=emulator.clock.now(), external_userid=_opt_str(d, "external_userid") or "")


def _moment_publish(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    return actions.moment_publish(
        corp, now=emulator.clock.now(), moment_id=_opt_str(d, "moment_id") or "", userid=_opt_str(d, "userid") or ""
    )


def _moment_post(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    return actions.moment_post(
        corp, now=emulator.clock.now(), userid=_opt_str(d, "userid") or "", content=_opt_str(d, "content") or ""
    )


def _moment_interact(emulator: Emulator, corp: Corp, d: dict[str, Any]) -> actions.Outcome:
    return actions.moment_interact(
        corp,
        now=emulator.clock.now(),
        moment_id=_opt_str(d, "moment_id") or "",
        userid=_opt_str(d, "userid") or "",
        external_userid=_opt_str(d, "external_userid") or "",
        kind=_opt_str(d, "kind") or "",
    )


SIMULATIONS: dict[str, Simulation] = {
    "add_contact": _add_contact,
    "del_contact": _del_contact,
    "edit_contact": _edit_contact,
    "tags/create": _tags_create,
    "tags/update": _tags_update,
    "tags/delete": _tags_delete,
    "chat/create": _chat_create,
    "chat/join": _chat_join,
    "chat/leave": _chat_leave,
    "chat/update": _chat_update,
    "chat/dismiss": _chat_dismiss,
    "groupmsg/send": _groupmsg_send,
    "join_way": _join_way,
    "message": _message,
    "open_material": _open_material,
    "member/resign": _member_resign,
    "transfer/refuse": _transfer_refuse,
    "moment/publish": _moment_publish,
    "moment/post": _moment_post,
    "moment/interact": _moment_interact,
}


# -- the behaviour simulator ---------------------------------------------------------------------------------------


def _simulate_run(emulator: Emulator, data: dict[str, Any]) -> dict[str, Any]:
    seed = int(data.get("seed", 1))
    corp_id = _opt_str(data, "corp_id") or ""
    raw_mix = data.get("mix")
    if raw_mix is not None and not isinstance(raw_mix, dict):
        raise AdminError("mix must be an object of weights")
    mix = Mix.from_dict(raw_mix) if raw_mix else None
    if ("steps" in data) == ("rate" in data):
        raise AdminError("give either steps (run now) or rate (run in the background)")
    if "rate" in data:
        return emulator.simulation_start(seed=seed, rate=float(data["rate"]), corp_id=corp_id, mix=mix).status()
    simulator = Simulator(
        seed, emulator, corp_id=corp_id, mix=mix, seconds_per_step=float(data.get("seconds_per_step", 0))
    )
    # Steps take the state lock one at a time, so API calls made meanwhile interleave with the simulation.
    return simulator.run(int(data["steps"])).as_dict()


def _simulation_status(emulator: Emulator) -> dict[str, Any]:
    if emulator.simulation is None:
        return {"running": False, "steps": 0}
    with emulator.lock:  # the truth's counters change under the lock
        return emulator.simulation.status()


def _page_after(data: dict[str, Any]) -> tuple[int, int]:
    after, limit = int(data.get("after", 0)), int(data.get("limit", 1000))
    if not 1 <= limit <= 1000:
        raise AdminError("limit must be between 1 and 1000")
    return after, limit


def _materials(data: dict[str, Any]) -> list[Material]:
    raw = data.get("materials")
    if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
        raise AdminError("materials must be a list of {material_id, title, url}")
    materials = [from_jsonable(Material, m) for m in raw]
    if not all(m.material_id and m.url for m in materials):
        raise AdminError("every material needs a material_id and a url")
    return materials


# -- dispatch ------------------------------------------------------------------------------------------------------


def handle_admin(emulator: Emulator, request: Request) -> Response:
    from siyu.emulator.core import Response

    try:
        data: dict[str, Any] = {}
        if request.method == "POST" and request.body.strip():
            data = json.loads(request.body)
            if not isinstance(data, dict):
                raise AdminError("the body must be a JSON object")
        data = {**request.query, **data}
        with emulator.lock:
            emulator.settle(emulator.clock.now())
        result = _dispatch(emulator, request, data)
        if isinstance(result, Response):
            return result
        return Response.json(result)
    except (AdminError, actions.SimulationError, ValueError, TypeError) as exc:
        return Response.json({"error": str(exc)}, 400)
    except ApiError as exc:  # a shared WeCom check refused the simulated action (e.g. unknown tag)
        return Response.json({"error": str(exc), "errcode": int(exc.code)}, 400)


def _dispatch(emulator: Emulator, request: Request, data: dict[str, Any]) -> Any:
    from siyu.emulator.core import Response

    path, method = request.path.rstrip("/"), request.method
    if path == "/emulator/health":
        return {"ok": True, "corps": list(emulator.corps)}
    if path == "/emulator/simulate/run" and method == "POST":
        return _simulate_run(emulator, data)
    if path == "/emulator/simulate/status":
        return _simulation_status(emulator)
    if path == "/emulator/simulate/stop" and method == "POST":
        emulator.simulation_stop()
        return _simulation_status(emulator)
    if path == "/emulator/simulate/truth":
        if emulator.simulation is None:
            raise AdminError("no background simulation has run")
        with emulator.lock:
            return emulator.simulation.simulator.truth.as_dict()
    if path.startswith("/emulator/simulate/") and method == "POST":
        simulation = SIMULATIONS.get(path.removeprefix("/emulator/simulate/"))
        if simulation is None:
            return Response.json({"error": f"unknown simulation {path}"}, 404)
        with emulator.lock:
            corp = _corp(emulator, data)
            outcome = simulation(emulator, corp, data)
            emulator.mark_dirty()
            deliveries = emulator.emit(outcome.events)
        return {**outcome.result, "deliveries": deliveries}
    if path == "/emulator/corps":
        with emulator.lock:
            if method == "POST":
                corp = from_jsonable(Corp, data)
                emulator.corps[corp.corp_id] = corp
                emulator.mark_dirty()
            return {"corps": [_corp_summary(c) for c in emulator.corps.values()]}
    if path == "/emulator/corps/export":
        with emulator.lock:
            return to_jsonable(_corp(emulator, data))
    if path == "/emulator/callback" and method == "POST":
        with emulator.lock:
            corp = _corp(emulator, data)
            merged = {**to_jsonable(corp.callback), **{k: str(v) for k, v in data.items() if k != "corp_id"}}
            callback = from_jsonable(CallbackConfig, merged)
            if callback.url and not callback.url.startswith(("http://", "https://")):
                raise AdminError("url must be an http(s) URL")
            if callback.url:
                WeComCrypto(callback.token, callback.encoding_aes_key, corp.corp_id)  # ValueError → 400
            corp.callback = callback
            emulator.mark_dirty()
            return to_jsonable(corp.callback)
    if path == "/emulator/faults":
        if method == "POST":
            emulator.faults.configure(FaultConfig.from_dict(data, base=emulator.faults.config))
        return emulator.faults.describe()
    if path == "/emulator/limits":
        if method == "POST":
            windows = data.get("windows")
            if not isinstance(windows, list):
                raise AdminError("windows must be a list of [limit, seconds]")
            emulator.limiter.configure([(int(w[0]), float(w[1])) for w in windows])
        return {"windows": emulator.limiter.describe()}
    if path == "/emulator/clock":
        if method == "POST":
            emulator.clock.advance(float(data.get("advance", 0)))
            emulator.mark_dirty()
            with emulator.lock:  # a jump past a transfer's 24 hours completes it (and fires its events) now
                emulator.settle(emulator.clock.now())
        return {"now": emulator.clock.now(), "offset": emulator.clock.offset}
    if path == "/emulator/callbacks":
        return {
            "pending": emulator.callbacks.pending(),
            "deliveries": emulator.callbacks.deliveries(after=int(data.get("after", 0))),
        }
    if path == "/emulator/callbacks/clear" and method == "POST":
        emulator.callbacks.clear()
        return {"ok": True}
    if path == "/emulator/welcome_messages":
        with emulator.lock:
            return {"welcome_messages": list(_corp(emulator, data).welcome_messages)}
    if path == "/emulator/chat_messages":
        after, limit = _page_after(data)
        with emulator.lock:
            corp = _corp(emulator, data)
            # Seqs are consecutive and the store only loses its oldest entries, so the start is found by arithmetic.
            start = max(0, after - corp.chat_messages[0].seq + 1) if corp.chat_messages else 0
            page = [m.as_archive() for m in corp.chat_messages[start : start + limit]]
            return {"messages": page, "last_seq": corp.archive_seq}
    if path == "/emulator/material_opens":
        after, limit = _page_after(data)
        with emulator.lock:
            corp = _corp(emulator, data)
            start = max(0, after - corp.material_opens[0].seq + 1) if corp.material_opens else 0
            page = [to_jsonable(o) for o in corp.material_opens[start : start + limit]]
            return {"opens": page, "last_seq": corp.open_seq}
    if path == "/emulator/materials":
        with emulator.lock:
            corp = _corp(emulator, data)
            if method == "POST":
                corp.materials = _materials(data)
                emulator.mark_dirty()
            return {"materials": to_jsonable(corp.materials)}
    if path.startswith("/emulator/qr/") and path.endswith(".svg"):
        return Response(200, _qr_placeholder(path.removeprefix("/emulator/qr/").removesuffix(".svg")), "image/svg+xml")
    return Response.json({"error": f"no admin endpoint {method} {path}"}, 404)


def _finder(x: int, y: int) -> bool | None:
    """The three corner squares every QR code has; None outside them."""
    for ox, oy in ((0, 0), (14, 0), (0, 14)):
        dx, dy = x - ox, y - oy
        if 0 <= dx < 7 and 0 <= dy < 7:
            return dx in (0, 6) or dy in (0, 6) or (2 <= dx <= 4 and 2 <= dy <= 4)
    return None


def _qr_placeholder(config_id: str) -> bytes:
    """A deterministic 21x21 pattern standing in for the QR picture WeCom hosts (not a scannable code)."""
    bits = int.from_bytes(config_id.encode()[:32].ljust(32, b"0"), "big")
    cells = []
    for y in range(21):
        for x in range(21):
            finder = _finder(x, y)
            on = finder if finder is not None else bool((bits >> ((x * 21 + y) % 256)) & 1)
            if on:
                cells.append(f'<rect x="{x}" y="{y}" width="1" height="1"/>')
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="-2 -2 25 25" width="250" height="250">'
        f'<title>{escape(config_id)}</title><rect x="-2" y="-2" width="25" height="25" fill="#fff"/>'
        f'<g fill="#000">{"".join(cells)}</g></svg>'
    ).encode()
