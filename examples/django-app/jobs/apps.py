import os

from django.apps import AppConfig
from django.core import checks
from django.db import connections
from django.db.backends.signals import connection_created


def _use_wal(sender, connection, **kwargs):
    # Write-ahead logging: the web workers keep reading while the worker or a release's
    # migrate writes. It is a property of the database file, so setting it again is a no-op.
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")


def check_database_directory(app_configs, databases=None, **kwargs):
    """A missing or read-only state directory, named, instead of "unable to open database file".

    A database check: Django runs it for `migrate` (the release command) and `test`.
    """
    errors = []
    for alias in databases or []:
        settings_dict = connections[alias].settings_dict
        name = str(settings_dict["NAME"])
        if settings_dict["ENGINE"] != "django.db.backends.sqlite3" or (
            name == ":memory:" or name.startswith("file:")
        ):
            continue
        directory = os.path.dirname(name)
        if not os.path.isdir(directory):
            errors.append(
                checks.Error(
                    f"the database directory {directory} does not exist",
                    hint="Mount a writable state directory there (touchdeploy:stateDirs "
                    "must include `data`), or set TOUCHDEPLOY_STATE_DIR.",
                    id="jobs.E001",
                )
            )
        elif not os.access(directory, os.W_OK):
            errors.append(
                checks.Error(
                    f"the database directory {directory} is not writable by uid {os.getuid()}",
                    hint="SQLite writes its journal next to the database file.",
                    id="jobs.E002",
                )
            )
    return errors


class JobsConfig(AppConfig):
    name = "jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        connection_created.connect(_use_wal, dispatch_uid="jobs.use_wal")
        checks.register(check_database_directory, checks.Tags.database)
