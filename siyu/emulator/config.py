"""Start-up settings of one emulator process (the CLI and tests build one; nothing reads Django settings here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from siyu.emulator.faults import FaultConfig
from siyu.emulator.limits import DEFAULT_WINDOWS


@dataclass
class EmulatorConfig:
    # Where the emulator is reachable: contact-way qr_code links point here.
    public_url: str = "http://127.0.0.1:8001"
    token_ttl: int = 7200  # gettoken's expires_in (wecom-api.md §1)
    welcome_code_ttl: float = 20.0  # §4.4: valid 20 seconds, usable once
    limits: list[tuple[int, float]] = field(default_factory=lambda: list(DEFAULT_WINDOWS))
    faults: FaultConfig = field(default_factory=FaultConfig)
    # Callback delivery (§2.3): acknowledged = HTTP 200 within 5 s; 3 tries in total.
    callback_timeout: float = 5.0
    callback_attempts: int = 3
    callback_retry_delay: float = 1.0
    # One sender keeps events in the order they happened; more senders trade order for throughput, as WeCom does.
    callback_workers: int = 1
    state_path: Path | None = None  # None: in memory only
    # Snapshots are whole-state JSON; a crash loses at most this many seconds of changes.
    save_interval: float = 10.0
    max_corp_tags: int = 3000  # §4.2, error 40126
    max_contact_ways: int = 500_000  # §4.3, shared with 加入群聊; error 41045
    max_contact_way_users: int = 100  # §4.3, error 41041
    # groupchat/list without owner_filter fails with 81017 when the visible range exceeds this many people (§4.5).
    groupchat_scan_limit: int = 1000
    # Right after add_msg_template the task/result queries answer 41063 (still dispatching) for this long (§4.6).
    groupmsg_dispatch_seconds: float = 2.0
    # 「加入群聊」: a chat takes customers through a join way until it holds this many members (then the next chat
    # of the way, or a new one when auto_create_room is on).
    join_way_room_limit: int = 200
    # add_moment_task is asynchronous (§4.7): its job reports 1 started, 2 running, then 3 done after this long.
    moment_job_seconds: float = 2.0
    # Customer inheritance (§4.8): a started transfer completes after 24 h unless the customer refuses; an on-job
    # member's customer may be transferred at most 2 times within 90 days (40128).
    transfer_window_seconds: float = 86_400.0
    transfer_limit_count: int = 2
    transfer_limit_days: int = 90
    # The takeover member's customer cap: a transfer that would exceed it ends in status 4 / customer_limit_exceed.
    member_customer_limit: int = 50_000
    # groupchat/transfer (resigned owner): 0 completes at once; > 0 keeps the chat "inheritance in progress"
    # (status 2, 90507 on a repeat) for that long.
    groupchat_transfer_seconds: float = 0.0
    # How often time-driven changes (transfers coming due) are settled when no request arrives.
    settle_interval: float = 1.0
    # Chat messages and material opens kept per corp (the oldest are dropped beyond this; seq numbers keep counting).
    activity_log_max: int = 200_000
    # The behaviour simulator in the background from start-up (`siyu emulator --simulate-rate R`): R actions per
    # second of seed `simulate_seed` on the first corp; 0 = off (POST /emulator/simulate/run starts one later).
    simulate_rate: float = 0.0
    simulate_seed: int = 1
