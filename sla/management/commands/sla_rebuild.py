"""Replay every clock's ledger (segments + calendar) and repair the stored SLA figures (docs/sla.md "Rebuild").

`manage.py sla_rebuild [--ticket INC-000042] [--dry-run] [--batch-size 500]`. Progress goes to stderr: a bar on a
terminal, one line per batch otherwise. Differences are listed (the first `--show` of them) and counted; with
`--dry-run` nothing is written. Safe to re-run: a second run reports nothing.
"""

from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from sla.models import Clock
from sla.rebuild import clocks_rebuild
from tickets.models import Ticket


class Command(BaseCommand):
    help = "Rebuild next_deadline_at, due_at, breached_at, clock states and ClockOutcome rows from the ledger."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ticket", help="Only this ticket's clocks (its number, e.g. INC-000042).")
        parser.add_argument("--dry-run", action="store_true", help="Report the differences, write nothing.")
        parser.add_argument("--batch-size", type=int, default=500, help="Clocks per transaction (default 500).")
        parser.add_argument("--show", type=int, default=50, help="List at most this many differences (default 50).")
        parser.add_argument("--no-progress", action="store_true", help="Do not report progress on stderr.")

    def handle(
        self,
        *args: Any,
        ticket: str | None,
        dry_run: bool,
        batch_size: int,
        show: int,
        no_progress: bool,
        **options: Any,
    ) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        ticket_ids = None
        if ticket:
            found = Ticket.objects.filter(number=ticket.strip().upper()).values_list("pk", flat=True).first()
            if found is None:
                raise CommandError(f"No ticket {ticket}.")
            ticket_ids = [found]
        # the highest id bounds the work without a COUNT over the table
        total = Clock.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        if ticket_ids is not None:
            total = Clock.objects.filter(ticket_id__in=ticket_ids).count()
        show_progress = not no_progress and options["verbosity"] > 0
        stream = cast(TextIO, self.stderr._out)
        use_bar = show_progress and stream.isatty()
        bar = tqdm(total=total, unit="clocks", file=stream, disable=not use_bar, desc="sla_rebuild")
        done = 0

        def progress(count: int) -> None:
            nonlocal done
            done += count
            bar.update(count)
            if show_progress and not use_bar:
                self.stderr.write(f"replayed {done} clocks")

        try:
            report = clocks_rebuild(ticket_ids=ticket_ids, dry_run=dry_run, batch_size=batch_size, progress=progress)
        finally:
            bar.close()
        for difference in report.differences[:show]:
            self.stdout.write(str(difference))
        if len(report.differences) > show:
            self.stdout.write(f"… and {len(report.differences) - show} more")
        verb = "would repair" if dry_run else "repaired"
        self.stdout.write(
            self.style.SUCCESS(
                f"sla_rebuild: {report.clocks} clocks replayed, {verb} {len(report.differences)} figures "
                f"on {report.clocks_changed} clocks"
            )
        )
