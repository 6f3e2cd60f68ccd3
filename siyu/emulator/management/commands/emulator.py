"""`siyu emulator`: serve the offline WeCom on 127.0.0.1:8001 (gunicorn, one worker) until Ctrl-C.

Every flag has a SIYU_EMULATOR_* environment default (e.g. SIYU_EMULATOR_FAULT_5XX=0.1). The state is kept in
VAR_DIR/emulator/state.json: a restart resumes it; --reset starts again from the seed. --simulate-rate R runs the
behaviour simulator (seeded customers adding guides, chatting, joining groups...) at R actions per second.
"""

from __future__ import annotations

import os
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from siyu.emulator.config import EmulatorConfig
from siyu.emulator.core import Emulator
from siyu.emulator.faults import FaultConfig
from siyu.emulator.seed import SeedSpec, build_corp
from siyu.emulator.server import serve_gunicorn, serve_threaded


def _env(name: str, default: str) -> str:
    return os.environ.get(f"SIYU_EMULATOR_{name}", default)


def parse_limits(text: str) -> list[tuple[int, float]]:
    """ "10000/60,150000/3600" → [(10000, 60.0), (150000, 3600.0)]; "off" → no limits."""
    if text.strip().lower() in {"off", "none", ""}:
        return []
    windows = []
    for part in text.split(","):
        limit, _, seconds = part.partition("/")
        try:
            windows.append((int(limit), float(seconds)))
        except ValueError as exc:
            raise CommandError(f"--rate-limit expects LIMIT/SECONDS[,...], got {part!r}") from exc
    return windows


class Command(BaseCommand):
    help = "Serve the WeCom emulator (its own state, not siyu's database) on 127.0.0.1:8001."

    def add_arguments(self, parser: ArgumentParser) -> None:
        add = parser.add_argument
        add("--host", default=_env("HOST", "127.0.0.1"))
        add("--port", type=int, default=int(_env("PORT", "8001")))
        add(
            "--public-url", default=_env("PUBLIC_URL", ""), help="base URL for qr_code links (default http://HOST:PORT)"
        )
        add("--server", choices=["gunicorn", "threaded"], default=_env("SERVER", "gunicorn"))
        add("--threads", type=int, default=int(_env("THREADS", "8")))
        add("--state", default=_env("STATE", ""), help="snapshot file (default VAR_DIR/emulator/state.json)")
        add("--no-persist", action="store_true", help="keep the state in memory only")
        add("--reset", action="store_true", help="ignore a saved state and seed afresh")
        add(
            "--no-seed",
            action="store_true",
            help="start without a seeded corp (corps are pushed with POST /emulator/corps, as `siyu serve` does)",
        )
        seed = parser.add_argument_group("seed (used when there is no saved state)")
        seed.add_argument("--seed", type=int, default=int(_env("SEED", "1")))
        seed.add_argument("--corp-id", action="append", default=None, help="repeat for several corps")
        seed.add_argument("--corp-name", default=_env("CORP_NAME", "澄光美妆"))
        seed.add_argument("--regions", type=int, default=int(_env("REGIONS", "2")))
        seed.add_argument("--stores-per-region", type=int, default=int(_env("STORES_PER_REGION", "3")))
        seed.add_argument("--guides-per-store", type=int, default=int(_env("GUIDES_PER_STORE", "3")))
        seed.add_argument("--customers", type=int, default=int(_env("CUSTOMERS", "300")))
        seed.add_argument("--group-chats", type=int, default=int(_env("GROUP_CHATS", "12")))
        seed.add_argument("--secret", default=_env("SECRET", ""), help="the customer-contact app's secret")
        cb = parser.add_argument_group("callbacks")
        cb.add_argument("--callback-url", default=_env("CALLBACK_URL", ""))
        cb.add_argument("--callback-token", default=_env("CALLBACK_TOKEN", ""))
        cb.add_argument("--callback-aes-key", default=_env("CALLBACK_AES_KEY", ""))
        cb.add_argument("--callback-workers", type=int, default=int(_env("CALLBACK_WORKERS", "1")))
        cb.add_argument("--callback-retry-delay", type=float, default=float(_env("CALLBACK_RETRY_DELAY", "1")))
        sim = parser.add_argument_group("behaviour simulator (siyu.emulator.simulator)")
        sim.add_argument(
            "--simulate-rate",
            type=float,
            default=float(_env("SIMULATE_RATE", "0")),
            help="simulated customer actions per second in the background (0 = off)",
        )
        sim.add_argument("--simulate-seed", type=int, default=int(_env("SIMULATE_SEED", "1")))
        lim = parser.add_argument_group("limits and faults")
        lim.add_argument("--token-ttl", type=int, default=int(_env("TOKEN_TTL", "7200")))
        lim.add_argument("--rate-limit", default=_env("RATE_LIMIT", "10000/60,150000/3600"), help='"off" disables')
        lim.add_argument("--latency-ms", type=int, default=int(_env("FAULT_LATENCY_MS", "0")))
        lim.add_argument("--latency-jitter-ms", type=int, default=int(_env("FAULT_LATENCY_JITTER_MS", "0")))
        lim.add_argument("--fault-5xx", type=float, default=float(_env("FAULT_5XX", "0")))
        lim.add_argument("--fault-45009", type=float, default=float(_env("FAULT_45009", "0")))
        lim.add_argument("--fault-42001", type=float, default=float(_env("FAULT_42001", "0")))
        lim.add_argument("--fault-truncate", type=float, default=float(_env("FAULT_TRUNCATE", "0")))
        lim.add_argument("--fault-seed", type=int, default=int(_env("FAULT_SEED", "0")))

    def handle(self, *args: Any, **o: Any) -> None:
        public_url = o["public_url"] or f"http://{o['host']}:{o['port']}"
        state_path = None if o["no_persist"] else Path(o["state"] or settings.VAR_DIR / "emulator" / "state.json")
        if state_path is not None and o["reset"] and state_path.exists():
            state_path.unlink()
        try:
            faults = FaultConfig(
                latency_ms=o["latency_ms"],
                latency_jitter_ms=o["latency_jitter_ms"],
                rate_http_5xx=o["fault_5xx"],
                rate_errcode_45009=o["fault_45009"],
                rate_errcode_42001=o["fault_42001"],
                rate_truncate=o["fault_truncate"],
                seed=o["fault_seed"],
            )
            faults.validate()
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if o["simulate_rate"] < 0:
            raise CommandError("--simulate-rate must not be negative")
        config = EmulatorConfig(
            public_url=public_url,
            token_ttl=o["token_ttl"],
            limits=parse_limits(o["rate_limit"]),
            faults=faults,
            callback_workers=o["callback_workers"],
            callback_retry_delay=o["callback_retry_delay"],
            state_path=state_path,
            simulate_rate=o["simulate_rate"],
            simulate_seed=o["simulate_seed"],
        )
        corp_ids = o["corp_id"] or [_env("CORP_ID", "")]
        specs = [
            SeedSpec(
                seed=o["seed"],
                corp_id=corp_id,
                name=o["corp_name"],
                regions=o["regions"],
                stores_per_region=o["stores_per_region"],
                guides_per_store=o["guides_per_store"],
                customers=o["customers"],
                group_chats=o["group_chats"],
                callback_url=o["callback_url"],
                callback_token=o["callback_token"],
                callback_aes_key=o["callback_aes_key"],
                secret=o["secret"],
                public_url=public_url,
            )
            for corp_id in corp_ids
        ]

        def factory() -> Emulator:
            return Emulator.open(config, lambda: [] if o["no_seed"] else [build_corp(spec) for spec in specs])

        self._banner(factory, o, state_path)
        if o["server"] == "gunicorn":
            serve_gunicorn(factory, f"{o['host']}:{o['port']}", o["threads"])
        else:
            serve_threaded(factory(), o["host"], o["port"])

    def _banner(self, factory: Any, o: dict[str, Any], state_path: Path | None) -> None:
        # Built once here only to print the credentials; the serving worker builds its own (same seed or snapshot).
        emulator = factory()
        url = f"http://{o['host']}:{o['port']}"
        lines = ["", f"  WeCom emulator  {url}/cgi-bin/  (admin: {url}/emulator/health)"]
        lines.append(f"  state           {state_path or 'in memory only'}")
        if o["simulate_rate"]:
            lines.append(
                f"  simulator       {o['simulate_rate']:g} actions/s, seed {o['simulate_seed']}"
                f"  (status: {url}/emulator/simulate/status)"
            )
        for corp in emulator.corps.values():
            app = next(a for a in corp.apps if a.customer_contact)
            counts = f"{len(corp.members)} members, {len(corp.contacts)} customers, {len(corp.group_chats)} groups"
            lines += [
                f"  corp            {corp.corp_id}  {corp.name}  ({counts})",
                f"    app secret    {app.secret}  (agentid {app.agentid}, 客户联系)",
                f"    callback      {corp.callback.url or '(no URL: events are recorded, not sent)'}",
                f"    token/AES key {corp.callback.token}  {corp.callback.encoding_aes_key}",
            ]
        self.stdout.write("\n".join([*lines, ""]))
        self.stdout.flush()
