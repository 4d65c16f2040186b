"""Walk the audit log's hash chain from the first row to the head and report the first broken link.

Exit status 0 with "audit chain intact: N rows", or 1 with "audit chain broken at row <seq>: <reason>". Progress
goes to stderr: a bar on a terminal, one line per batch otherwise (cron, CI logs). The chain is read in keyset
batches, so memory stays flat at any size.

A chain alone cannot show that rows were cut off its end; compare the reported count with one kept elsewhere
(a monitoring metric, the last backup) for that.
"""

from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from security.audit import ChainBreak, audit_verify
from security.models import AuditLog


class Command(BaseCommand):
    help = "Verify the audit log's hash chain; exits 1 at the first broken link."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=5000, help="Rows read per query (default 5000).")
        parser.add_argument("--no-progress", action="store_true", help="Do not report progress on stderr.")

    def handle(self, *args: Any, batch_size: int, no_progress: bool, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        # The head's seq is the expected row count of an intact chain, read from the unique index (no COUNT scan).
        expected_rows = AuditLog.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
        show_progress = not no_progress and options["verbosity"] > 0
        # The raw stream: a progress bar rewrites its own line, which OutputWrapper would break with newlines.
        stream = cast(TextIO, self.stderr._out)
        use_bar = show_progress and stream.isatty()
        bar = tqdm(total=expected_rows, unit="rows", file=stream, disable=not use_bar, desc="audit_verify")
        checked = 0
        try:
            for result in audit_verify(batch_size=batch_size):
                if isinstance(result, ChainBreak):
                    raise CommandError(f"audit chain broken at row {result.seq}: {result.reason}")
                bar.update(result - checked)
                checked = result
                if show_progress and not use_bar:
                    self.stderr.write(f"checked {checked} of {expected_rows} rows")
        finally:
            bar.close()
        self.stdout.write(self.style.SUCCESS(f"audit chain intact: {checked} rows"))
