"""A WSGI app that takes a set time to import, like a framework that boots (Django: 0.5-2 s).

The benchmark's slow app (bench/lib/apps.ts): hello-wsgi's answers, plus a sleep at import
time, so that the pause a deploy contract makes users wait for is measured under control. A
sleep and not a busy loop: the time is the app's, its CPU is not (what the benchmark counts as
a contract's CPU per deploy is then the contract's own).
"""

import os
import time

# The benchmark rewrites this line to make a one-line code change.
GREETING = "Hello from touchdeploy"
# The benchmark sets this when it creates the app's repository.
IMPORT_SECONDS = 2.0

time.sleep(IMPORT_SECONDS)


def _revision():
    # The commit this file came from: REVISION in its release directory (the host script writes
    # it), found by walking up from this file. Not `current`: with some contracts `current` can
    # already point to the next release while this code still serves.
    d = os.path.dirname(os.path.realpath(__file__))
    while True:
        try:
            with open(os.path.join(d, "REVISION")) as f:
                return f.read().strip()
        except OSError:
            parent = os.path.dirname(d)
            if parent == d:
                return "unknown"
            d = parent


REVISION = _revision()


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/healthz":
        body = b"ok\n"
    elif path == "/":
        body = f"{GREETING} (revision {REVISION[:12]})\n".encode()
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
