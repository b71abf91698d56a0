"""The job queue on the database: enqueue, and claim-and-process one job at a time."""

from django.db import transaction
from django.utils import timezone

from .models import Job
from .revision import REVISION


def enqueue(payload):
    return Job.objects.create(payload=payload, enqueued_revision=REVISION)


def process_next(revision=REVISION):
    """Processes the oldest queued job, if any, and returns it (else None).

    A job is claimed by a conditional UPDATE (queued -> running), so several workers never
    process the same job, even on SQLite (which has no SELECT ... FOR UPDATE).
    """
    while True:
        job = Job.objects.filter(state=Job.QUEUED).order_by("id").first()
        if job is None:
            return None
        claimed = Job.objects.filter(pk=job.pk, state=Job.QUEUED).update(state=Job.RUNNING)
        if claimed:
            break
    with transaction.atomic():
        job.state = Job.DONE
        job.result = work(job.payload)
        job.processed_revision = revision
        job.processed_at = timezone.now()
        job.save(update_fields=["state", "result", "processed_revision", "processed_at"])
    return job


def work(payload):
    """The "work" of the example: count the words of the payload."""
    words = len(payload.split())
    return f"{words} word{'s' if words != 1 else ''}"
