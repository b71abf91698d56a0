"""The app's environment (env and secrets) from the live config version, applied at each load.

The host script (host/touchdeploy.sh) keeps the app's env, secrets and processes in immutable
config versions, `<root>/configs/<version>/`, and switches the link `<root>/config` to one of
them together with `current`. In the container that is `/srv/app/config/`:

    env        the plain variables: records KEY=VALUE, each ended by a NUL byte
    secrets    the secret ones, same format (mode 0600, like the whole directory)
    processes  records NAME NUL COMMAND NUL (see touchdeploy_tool.py)
    VERSION    the version's name, which uWSGI serves as X-Touchdeploy-Config

uWSGI imports this module in its master (`pyimport` in /etc/touchdeploy/uwsgi.ini) before it
loads the app, at the start and at every graceful reload (the master re-execs itself). It
applies the live version to the process environment, so the app reads its settings at import
and the workers forked afterwards inherit them. The master keeps its environment across the
re-exec, so each load first puts back what the previous load changed (TOUCHDEPLOY_ENV_SAVED):
a key dropped from the config is gone after the next reload, a container variable the config
overrode comes back. touchdeploy_tool.py applies a version the same way before it runs the
release command or a process.
"""

import json
import os
import sys

ROOT = os.environ.get("TOUCHDEPLOY_ROOT", "/srv/app")
LIVE = os.path.join(ROOT, "config")
SAVED = "TOUCHDEPLOY_ENV_SAVED"
VERSION_VAR = "TOUCHDEPLOY_CONFIG_VERSION"


def read_records(path):
    """The NUL-terminated fields of a file, as bytes ([] for an empty file)."""
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        return []
    if not data.endswith(b"\0"):
        raise ValueError(f"{path}: the last record is not NUL-terminated")
    return data[:-1].split(b"\0")


def read_env(config_dir):
    """KEY -> VALUE (bytes) of a config version's env and secrets; {} without a config."""
    env = {}
    if not os.path.exists(config_dir):
        return env
    for name in ("env", "secrets"):
        path = os.path.join(config_dir, name)
        if not os.path.exists(path):
            continue
        for record in read_records(path):
            key, sep, value = record.partition(b"=")
            if not sep or not key:
                raise ValueError(f"{path}: a record without KEY=")
            env[key] = value
    return env


def read_version(config_dir):
    """The version's name ("" without a config)."""
    try:
        with open(os.path.join(config_dir, "VERSION")) as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def apply(config_dir=LIVE):
    """Applies a config version to os.environ (undoing what the previous load set first)."""
    try:
        saved = json.loads(os.environ.get(SAVED, "{}"))
    except ValueError:
        saved = {}
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    env = read_env(config_dir)
    saved = {}
    for key, value in env.items():
        name = key.decode("ascii")
        saved[name] = os.environ.get(name)
        os.environb[key] = value
    os.environ[SAVED] = json.dumps(saved)
    os.environ[VERSION_VAR] = read_version(config_dir)
    return env


def _load_in_uwsgi():
    try:
        apply()
    except Exception as err:  # noqa: BLE001 - any reason the app must not start without its env
        # The app then runs without its settings; the health check (X-Touchdeploy-Config and
        # the app's own /healthz) fails and the deploy is switched back. Say why, loudly.
        sys.stderr.write(f"touchdeploy: error: cannot apply the app's env from {LIVE}: {err}\n")
        raise


try:
    import uwsgi  # noqa: F401 - only present inside uWSGI
except ImportError:
    uwsgi = None

# In the master (and in each worker with lazy-apps): applying twice is the same as once.
if uwsgi is not None:
    _load_in_uwsgi()
