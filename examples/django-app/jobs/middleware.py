"""/healthz: cheap, and 500 while the database lacks a migration this code has."""

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpResponse

HEALTH_PATH = "/healthz"


def unapplied_migrations(alias=DEFAULT_DB_ALIAS):
    """The migrations of this code not applied to the database, as `app.name` strings.

    Exactly what `manage.py migrate --check` compares: the plan to the newest migrations.
    A database the previous release migrated further is fine (nothing to apply forwards).
    """
    executor = MigrationExecutor(connections[alias])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


class HealthCheckMiddleware:
    """Answers /healthz before any other middleware (so before the ALLOWED_HOSTS check).

    touchdeploy polls it after each reload (200 plus the X-Revision header uWSGI adds): a
    release whose migrations did not run, or whose database cannot be opened, is unhealthy
    and gets rolled back.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info != HEALTH_PATH:
            return self.get_response(request)
        try:
            missing = unapplied_migrations()
        except DatabaseError as err:
            return _plain(500, f"database error: {err}\n")
        if missing:
            return _plain(500, f"unapplied migrations: {' '.join(missing)}\n")
        return _plain(200, "ok\n")


def _plain(status, text):
    response = HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response
