"""The app loader of the lazy-apps contracts (chain reload, workers reload).

With `lazy-apps` each worker loads the app itself, and a chain or workers reload replaces the
workers without re-executing the master. Two things the master decided at its start would then
be stale in every new worker: its working directory (the release `current` pointed to when the
master started: the app would be imported from the *old* release) and uWSGI's `add-header`
X-Revision (read from REVISION once, at the master's start: the health check would never see
the new commit). So each worker, when it loads the app through this module, resolves `current`
itself, imports the app's module from that release and adds X-Revision of that release to
every answer. The app's module comes from its uwsgi.ini (`module = ...`), passed here by
/etc/touchdeploy/uwsgi.ini as TOUCHDEPLOY_APP_MODULE.
"""

import importlib
import os
import sys

_root = os.environ.get("TOUCHDEPLOY_ROOT", "/srv/app")
_release = os.path.realpath(os.path.join(_root, "current"))
_app_dir = os.path.join(_release, os.environ.get("TOUCHDEPLOY_APP_SUBDIR", ""))
with open(os.path.join(_release, "REVISION")) as _f:
    REVISION = _f.read().strip()
os.chdir(_app_dir)
sys.path.insert(0, _app_dir)
_module, _, _callable = os.environ["TOUCHDEPLOY_APP_MODULE"].partition(":")
_app = getattr(importlib.import_module(_module), _callable or "application")
_header = ("X-Revision", REVISION)


def application(environ, start_response):
    def start(status, headers, exc_info=None):
        return start_response(status, [*headers, _header], exc_info)

    return _app(environ, start)
