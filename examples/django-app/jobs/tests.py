"""The example's own tests: `python3 manage.py test` (an in-memory database, nothing written
next to the code). touchdeploy's test/e2e/djangoExample.test.ts runs the real thing in the
runtime image: migrate, collectstatic, uWSGI, the worker."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import django
from django.core.management import call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.test import TestCase, override_settings

from .models import Job
from .queue import process_next
from .revision import UNKNOWN, find_revision

APP_DIR = Path(__file__).resolve().parent.parent


class RevisionTests(TestCase):
    def test_nearest_revision_file_above_the_code(self):
        with tempfile.TemporaryDirectory() as tmp:
            release = Path(tmp, "releases", "abc123")
            code = release / "examples" / "django-app" / "jobs"
            code.mkdir(parents=True)
            (release / "REVISION").write_text("abc123\n")
            os.symlink(Path("releases", "abc123"), Path(tmp, "current"))
            # Reached through the `current` symlink, it still names its own release.
            through_current = Path(tmp, "current", "examples", "django-app")
            self.assertEqual(find_revision(through_current), "abc123")
            self.assertEqual(find_revision(code), "abc123")

    def test_unknown_without_a_revision_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.assertEqual(find_revision(tmp), UNKNOWN)


# Plain static file names: these tests render pages without running collectstatic first.
_PLAIN_STATIC = "django.contrib.staticfiles.storage.StaticFilesStorage"
if django.VERSION >= (4, 2):
    _plain_static = override_settings(
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": _PLAIN_STATIC},
        }
    )
else:
    _plain_static = override_settings(STATICFILES_STORAGE=_PLAIN_STATIC)


@_plain_static
class WebTests(TestCase):
    def test_healthz_ok_when_migrated(self):
        response = self.client.get("/healthz", HTTP_HOST="not-an-allowed-host.example")
        self.assertEqual((response.status_code, response.content), (200, b"ok\n"))

    def test_healthz_500_names_an_unapplied_migration(self):
        MigrationRecorder(connection).record_unapplied("jobs", "0001_initial")
        response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 500)
        self.assertEqual(response.content, b"unapplied migrations: jobs.0001_initial\n")

    def test_index_shows_revision_and_count(self):
        Job.objects.create(payload="a", enqueued_revision="r", state=Job.DONE)
        Job.objects.create(payload="b", enqueued_revision="r")
        response = self.client.get("/")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "1 of 2 jobs done")
        self.assertContains(response, '<link rel="stylesheet" href="/static/jobs/site.css" />')

    def test_disallowed_host_is_refused(self):
        response = self.client.get("/", HTTP_HOST="evil.example")
        self.assertEqual(response.status_code, 400)

    def test_enqueue_then_the_worker_records_its_revision(self):
        response = self.client.post("/jobs", {"payload": "three little words"})
        self.assertEqual(response.status_code, 201)
        job_id = response.json()["id"]
        self.assertEqual(response.json()["state"], "queued")

        processed = process_next(revision="f00d")
        self.assertEqual(processed.pk, job_id)
        self.assertIsNone(process_next(revision="f00d"))

        job = self.client.get(f"/jobs/{job_id}").json()
        self.assertEqual(
            (job["state"], job["result"], job["processed_revision"]), ("done", "3 words", "f00d")
        )

    def test_enqueue_requires_a_payload(self):
        response = self.client.post("/jobs", {"payload": "  "})
        self.assertEqual(response.status_code, 400)
        self.assertEqual(response.json(), {"error": "`payload` is required"})

    def test_enqueue_is_post_only(self):
        self.assertEqual(self.client.get("/jobs").status_code, 405)


class WorkerCommandTests(TestCase):
    def test_once_processes_the_queue(self):
        Job.objects.create(payload="one", enqueued_revision="r")
        call_command("worker", "--once", stdout=open(os.devnull, "w"))
        self.assertEqual(list(Job.objects.values_list("state", flat=True)), ["done"])


class ProcessTests(TestCase):
    """The real commands in a subprocess, on a database in a temporary state directory."""

    def setUp(self):
        self.state = tempfile.TemporaryDirectory()
        self.addCleanup(self.state.cleanup)
        os.mkdir(Path(self.state.name, "data"))
        self.env = {
            **os.environ,
            "DJANGO_SECRET_KEY": "test",
            "TOUCHDEPLOY_STATE_DIR": self.state.name,
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def manage(self, *args, **kwargs):
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=APP_DIR,
            env=kwargs.pop("env", self.env),
            capture_output=True,
            text=True,
            timeout=60,
            **kwargs,
        )

    def test_missing_secret_key_fails_loudly(self):
        env = {k: v for k, v in self.env.items() if k != "DJANGO_SECRET_KEY"}
        result = self.manage("check", env=env)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("DJANGO_SECRET_KEY is not set", result.stderr)

    def test_missing_database_directory_is_named(self):
        os.rmdir(Path(self.state.name, "data"))
        result = self.manage("migrate", "--noinput")
        self.assertNotEqual(result.returncode, 0)
        missing = f"the database directory {self.state.name}/data does not exist"
        self.assertIn(missing, result.stderr)

    def test_worker_refuses_an_unmigrated_database(self):
        result = self.manage("worker")
        self.assertEqual(result.returncode, 1)
        self.assertIn("the database lacks migrations of this release", result.stderr)

    def test_worker_stops_on_sigterm_within_a_second(self):
        self.assertEqual(self.manage("migrate", "--noinput").returncode, 0)
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "worker", "--poll-interval", "30"],
            cwd=APP_DIR,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            self.assertEqual(worker.stdout.readline().split(" on ")[0], "worker: started")
            sent = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=10)
            elapsed = time.monotonic() - sent
        finally:
            worker.kill()
            worker.communicate()
        self.assertEqual(code, 0)
        self.assertLess(elapsed, 1.0)
