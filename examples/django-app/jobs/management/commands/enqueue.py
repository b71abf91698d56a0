"""`python3 manage.py enqueue PAYLOAD...`: queues one job per payload and prints its id."""

from django.core.management.base import BaseCommand

from jobs.queue import enqueue


class Command(BaseCommand):
    help = "Queue a job for `manage.py worker` (one per PAYLOAD); prints each job's id."

    def add_arguments(self, parser):
        parser.add_argument("payload", nargs="+")

    def handle(self, *args, payload, **options):
        for text in payload:
            self.stdout.write(str(enqueue(text).pk))
