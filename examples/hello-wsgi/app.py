"""The smallest useful WSGI app: what touchdeploy's dev stack serves and its tests deploy."""

import os

# Tests and the benchmark rewrite this line to make a one-line code change.
GREETING = "Hello from touchdeploy"


def _revision():
    # The release directory holds the deployed commit in REVISION (written by the host script).
    try:
        with open(os.path.join(os.environ.get("TOUCHDEPLOY_ROOT", "/srv/app"), "current", "REVISION")) as f:
            return f.read().strip()
    except OSError:
        return "unknown"


REVISION = _revision()


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/healthz":
        # Healthy means: this code imported and can answer. The host script also checks the
        # X-Revision header uWSGI adds, so it knows *which* code answered.
        body = b"ok\n"
    elif path == "/":
        body = f"{GREETING} (revision {REVISION[:12]})\n".encode()
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
