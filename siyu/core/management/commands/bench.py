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
    "console": "siyu.console.bench:run",
}


class Command(BaseCommand):
    help = "Run a benchmark and print its figures: " + ", ".join(sorted(BENCHES))

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name", choices=sorted(BENCHES))
        parser.add_argument("--size", choices=["S", "M", "L"], default="S")
        parser.add_argument("--repeat", type=int, default=20, help="timed runs per case")
        parser.add_argument("--tenant", default="demo", help="slug of the brand to measure (default: the demo brand)")

    def handle(self, *args: Any, **options: Any) -> None:
        module_name, _, func_name = BENCHES[options["name"]].partition(":")
        func = getattr(import_module(module_name), func_name)
        try:
            func(options, Console())
        except LookupError as exc:
            raise CommandError(str(exc)) from exc
