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
