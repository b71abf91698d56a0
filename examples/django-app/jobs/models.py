from django.db import models


class Job(models.Model):
    """A unit of background work: queued by the web app, processed by `manage.py worker`."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    STATES = [(QUEUED, "queued"), (RUNNING, "running"), (DONE, "done")]

    payload = models.CharField(max_length=200)
    state = models.CharField(max_length=10, choices=STATES, default=QUEUED, db_index=True)
    result = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # The commits (REVISION) of the release that queued and the one that processed the job.
    enqueued_revision = models.CharField(max_length=64)
    processed_revision = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"job {self.pk} ({self.state})"

    def as_dict(self):
        return {
            "id": self.pk,
            "payload": self.payload,
            "state": self.state,
            "result": self.result,
            "enqueued_revision": self.enqueued_revision,
            "processed_revision": self.processed_revision,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "processed_at": self.processed_at.isoformat() if self.processed_at else None,
        }
