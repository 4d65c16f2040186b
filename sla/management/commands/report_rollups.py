"""Keep the dashboards' daily rollups (docs/dashboards.md "Rollups").

`manage.py report_rollups` lists the zones and their state; `--fill Europe/Berlin` (repeatable) lists and counts a
zone (a ready zone is left alone unless `--refill`); `--compact` folds repeated keys; `--drop ZONE` stops keeping a
zone. Progress goes to stderr: one line per four weeks of days counted.
"""

import time
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sla import rollups


class Command(BaseCommand):
    help = "Fill, refill, compact or drop the SLA dashboards' per-zone daily rollups."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fill", action="append", default=[], metavar="ZONE", help="Fill this IANA zone.")
        parser.add_argument("--refill", action="store_true", help="Count --fill zones again even when ready.")
        parser.add_argument("--compact", action="store_true", help="Fold repeated keys of every zone.")
        parser.add_argument("--drop", action="append", default=[], metavar="ZONE", help="Stop keeping this zone.")

    def handle(self, *args: Any, fill: list[str], refill: bool, compact: bool, drop: list[str], **options: Any) -> None:
        quiet = options["verbosity"] == 0

        def progress(label: str, done: int, total: int) -> None:
            if not quiet:
                self.stderr.write(f"  {label}: {done:,} of {total:,} days ({100 * done // max(total, 1)} %)")

        for zone in fill:
            started = time.monotonic()
            if not quiet:
                self.stderr.write(f"filling {zone} (ticket and outcome writes wait until it commits)")
            try:
                filled = rollups.fill_zone(zone, refill=refill, progress=progress)
            except (ValueError, ZoneInfoNotFoundError) as exc:
                raise CommandError(str(exc)) from exc
            verb = f"filled in {time.monotonic() - started:.1f} s" if filled else "already ready (use --refill)"
            self.stdout.write(f"{zone}: {verb}")
        for zone in drop:
            self.stdout.write(f"{zone}: {'dropped' if rollups.drop_zone(zone) else 'was not kept'}")
        if compact:
            self.stdout.write(f"compacted: {rollups.compact():,} rows folded")
        for listed in rollups.zones():
            ready = listed.is_ready and listed.filled_at
            state = f"ready since {listed.filled_at:%Y-%m-%d %H:%M} UTC" if ready else "filling"
            self.stdout.write(f"{listed.name}: {state}")
