"""`siyu bench NAME`: run a named benchmark and print its figures (benchmarks print; they do not assert).

Each bench lives beside the code it measures and is registered in BENCHES as "module:function"; the function
takes the parsed options and a rich Console and returns nothing.
"""

from __future__ import annotations

from argparse import ArgumentParser
from importlib import import_module
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console

BENCHES: dict[str, str] = {
    "callbacks": "siyu.wecom.bench:run",
    "console": "siyu.console.bench:run",
    "welcome": "siyu.channels.bench:run",
    "stores": "siyu.storecodes.bench:run",
    "identity": "siyu.customers.bench:run",
    "keywords": "siyu.tags.bench:run",
    "segments": "siyu.analytics.bench:run",
}


class Command(BaseCommand):
    help = "Run a benchmark and print its figures: " + ", ".join(sorted(BENCHES))

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name", choices=sorted(BENCHES))
        parser.add_argument("--size", choices=["S", "M", "L"], default="S")
        parser.add_argument("--repeat", type=int, default=20, help="timed runs per case")
        parser.add_argument("--tenant", default="demo", help="slug of the brand to measure (default: the demo brand)")
        # callbacks: the WeCom callback endpoint under load, in a database of its own (see siyu.wecom.bench)
        parser.add_argument("--count", type=int, default=100_000, help="callbacks: how many to send")
        parser.add_argument("--concurrency", type=int, default=48, help="callbacks: keep-alive connections")
        parser.add_argument("--server", choices=["granian", "gunicorn"], default="granian", help="callbacks")
        parser.add_argument("--server-workers", type=int, default=2, help="callbacks: server worker processes")
        parser.add_argument("--server-threads", type=int, default=24, help="callbacks: threads per worker")
        parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite", help="callbacks")
        parser.add_argument(
            "--database-url",
            default="",
            help="callbacks: the PostgreSQL database to create and drop (default: siyu_bench on the configured server)",
        )
        parser.add_argument("--keep", action="store_true", help="callbacks: keep the bench database afterwards")
        # welcome: scans of a live code → welcome messages sent, through the emulator, server and worker
        parser.add_argument("--adds", type=int, default=200, help="welcome: how many scans")
        parser.add_argument("--rate", type=float, default=10.0, help="welcome: scans per second")
        parser.add_argument("--stores", type=int, default=10_000, help="stores: how many stores the brand has")
        parser.add_argument("--lookups", type=int, default=5_000, help="stores: how many locator lookups to time")
        parser.add_argument("--messages", type=int, default=10_000_000, help="keywords: chat messages to match")

    def handle(self, *args: Any, **options: Any) -> None:
        module_name, _, func_name = BENCHES[options["name"]].partition(":")
        func = getattr(import_module(module_name), func_name)
        try:
            func(options, Console())
        except LookupError as exc:
            raise CommandError(str(exc)) from exc
