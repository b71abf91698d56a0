"""Settings of the touchdeploy Django example, all from the environment.

The release directory (this code) is read-only in production: everything the app writes lives
in the state directories under TOUCHDEPLOY_STATE_DIR (default /srv/state), which touchdeploy
mounts writable and keeps across deploys:

    <state>/data/db.sqlite3   the SQLite database
    <state>/static/           STATIC_ROOT (collectstatic, served by uWSGI's static-map)
    <state>/media/            MEDIA_ROOT (uploads)

Environment variables (see README.md):
    DJANGO_SECRET_KEY      required, non-empty (a secret: touchdeploy:secretEnv)
    DJANGO_DEBUG           true/false (default false)
    DJANGO_ALLOWED_HOSTS   comma-separated (default localhost,127.0.0.1,[::1])
    DJANGO_LOG_LEVEL       root log level (default INFO)
    TOUCHDEPLOY_STATE_DIR  base of the state directories (default /srv/state)
"""

import os
from pathlib import Path

import django
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name, default):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use true or false")


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY.strip():
    # Fail at import: uWSGI then loads no app (the health check fails and the deploy rolls
    # back), and every manage.py command stops here with this message.
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set (or empty): give the app a secret key, e.g. "
        "`pulumi config set --secret --path 'touchdeploy:secretEnv.DJANGO_SECRET_KEY' ...`"
    )

DEBUG = _env_bool("DJANGO_DEBUG", False)

ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
    if h.strip()
]

STATE_DIR = Path(os.environ.get("TOUCHDEPLOY_STATE_DIR", "/srv/state"))
if not STATE_DIR.is_absolute():
    raise ImproperlyConfigured(
        f"TOUCHDEPLOY_STATE_DIR={str(STATE_DIR)!r} is not an absolute path"
    )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "jobs",
]

MIDDLEWARE = [
    # First: /healthz answers before ALLOWED_HOSTS, sessions or auth are involved, so the
    # deploy's health check on http://127.0.0.1:<port>/healthz works whatever the hosts are.
    "jobs.middleware.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(STATE_DIR / "data" / "db.sqlite3"),
        # Web workers, the worker process and a release's migrate share the file: wait for a
        # lock instead of failing with "database is locked" (the WAL journal, set in
        # jobs.apps, lets readers go on while one writes).
        "OPTIONS": {"timeout": 20},
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = str(STATE_DIR / "static")
MEDIA_URL = "/media/"
MEDIA_ROOT = str(STATE_DIR / "media")

# Hashed file names (site.3f2a….css): a release's collectstatic runs before the switch while
# the previous release still serves from the same STATIC_ROOT, so both releases' files must
# coexist. Pages render only after collectstatic wrote the manifest.
_STATIC_STORAGE = "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
if django.VERSION >= (4, 2):
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": _STATIC_STORAGE},
    }
else:  # Django 3.2 (Debian bookworm's own python3-django)
    STATICFILES_STORAGE = _STATIC_STORAGE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # stderr: uWSGI and supervisord pass it to `docker logs`.
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
}
