"""`python3 manage.py worker`: processes queued jobs until SIGTERM or SIGINT.

touchdeploy runs it as a process next to uWSGI (`worker python3 manage.py worker`) and, on
each deploy, stops it with SIGTERM and starts it again from the new release. It finishes the
job in hand and exits 0 at once (well within a second), never in the middle of a job.
"""

import signal
import threading

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections

from jobs.middleware import unapplied_migrations
from jobs.queue import process_next
from jobs.revision import REVISION


class Command(BaseCommand):
    help = "Process queued jobs until SIGTERM/SIGINT, recording this release's revision on each."

    def add_arguments(self, parser):
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=0.5,
            help="Seconds to wait before looking again when the queue is empty (default 0.5).",
        )
        parser.add_argument(
            "--once",
            action="store_true",
            help="Process what is queued now, then exit.",
        )

    def handle(self, *args, poll_interval, once, **options):
        if poll_interval <= 0:
            raise CommandError(f"--poll-interval must be positive, got {poll_interval}")
        stop = threading.Event()

        def request_stop(signum, frame):
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)

        # Refuse to start on a database this release has not migrated (a process that does not
        # stay up fails the deploy, which then rolls back), instead of failing job by job.
        try:
            missing = unapplied_migrations()
        except DatabaseError as err:
            raise CommandError(f"cannot read the database: {err}") from err
        if missing:
            raise CommandError(
                f"the database lacks migrations of this release: {' '.join(missing)} "
                "(run `python3 manage.py migrate` first)"
            )

        self.log(f"started on revision {REVISION}")
        processed = 0
        while not stop.is_set():
            close_old_connections()
            job = process_next()
            if job is not None:
                processed += 1
                self.log(f"job {job.pk} done: {job.result}")
                continue
            if once:
                break
            # Returns at once when a signal sets `stop`.
            stop.wait(poll_interval)
        self.log(f"stopped after {processed} job{'s' if processed != 1 else ''}")

    def log(self, message):
        self.stdout.write(f"worker: {message}")
        self.stdout.flush()
