"""The WSGI callable uWSGI loads (`module = config.wsgi:application` in uwsgi.ini)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()
