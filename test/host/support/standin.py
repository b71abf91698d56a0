#!/usr/bin/env python3
"""A stand-in for the runtime container's uWSGI, for the host script's tests (python3 stdlib only).

It serves an app root the way the runtime image does, as far as the host script can tell:

- it starts once `current/<subdir>/uwsgi.ini`, `current/REVISION` and the trigger exist (as
  start-uwsgi waits for them), reads `current/REVISION` then, and answers every request with
  `X-Revision: <that revision>` (and `X-Touchdeploy-Fingerprint` when it has one);
- it reloads when the trigger changes, as uWSGI's `fs-reload` does (any touch: ctime changes) or,
  with `--mode touch`, as the classic `touch-reload` does (only a different mtime in whole
  seconds), and reads `current/REVISION` again; while it reloads, requests wait;
- a release whose app directory holds a file named BROKEN answers 500 (an app that fails to
  import), and a reload with no current release takes the server down until there is one.

- like the runtime image (runtime/touchdeploy_env.py, which it imports), it reads the live
  config version (`config/VERSION`, `config/env`, `config/secrets`) at each start and reload,
  answers with `X-Touchdeploy-Config: <version>` when there is one, and logs the keys it loaded
  (`env KEY ...`, never a value); an env that sets STANDIN_STATUS makes it answer that status
  (an app that fails with a bad setting);

It also makes uWSGI's startup race visible: a touch within `guard_ms` after workers were spawned
(a start or a reload) is logged as a VIOLATION and, like the real thing, stalls the reload for
`stall_ms`.

A test steers it through `<state>/control.json` (read whenever it changes; each applied change
is logged as `control {...}`): up (false: stop listening), status (force an HTTP status),
delay_ms (answer slowly), start_delay_ms, reload_ms, guard_ms, stall_ms, fingerprint. Events go
to `<state>/events.log`, one per line, `<ns since the epoch> <event> [details]`; the port to
`<state>/port` once it listens.
"""

import argparse
import http.server
import json
import os
import socket
import sys
import threading
import time

# Nothing written next to the code (runtime/ is the image's build context; /etc/touchdeploy is
# read-only for the container's user).
sys.dont_write_bytecode = True

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "runtime"))
import touchdeploy_env  # noqa: E402  the image's own reader of the config


class Standin:
    def __init__(self, args):
        self.root = args.root
        self.subdir = args.subdir
        self.trigger = os.path.join(args.root, args.reload_file)
        self.mode = args.mode
        self.state = args.state
        self.control = {
            "up": not args.down,
            "status": None,
            "delay_ms": 0,
            "start_delay_ms": 0,
            "reload_ms": 20,
            "guard_ms": 0,
            "stall_ms": 3000,
            "fingerprint": args.fingerprint,
        }
        self.control_stamp = None
        self.lock = threading.Condition()
        self.reloading = False
        self.revision = None
        self.config = ""
        self.env_status = None
        self.broken = False
        self.listening = None
        self.port = 0
        self.baseline = None
        self.spawned_at = 0
        self.stalled_until = 0
        self.ready_since = None
        self.log_file = open(os.path.join(self.state, "events.log"), "a", buffering=1)

    def log(self, event, detail=""):
        self.log_file.write(f"{time.time_ns()} {event}{' ' + detail if detail else ''}\n")

    # --- what the app root holds -------------------------------------------------------------

    def app_dir(self):
        return os.path.join(self.root, "current", self.subdir) if self.subdir else os.path.join(self.root, "current")

    def release_ready(self):
        return (
            os.path.isfile(os.path.join(self.app_dir(), "uwsgi.ini"))
            and os.path.isfile(os.path.join(self.root, "current", "REVISION"))
            and os.path.isfile(self.trigger)
        )

    def read_release(self):
        with open(os.path.join(self.root, "current", "REVISION")) as f:
            self.revision = f.read().strip()
        self.broken = os.path.exists(os.path.join(self.app_dir(), "BROKEN"))
        live = os.path.join(self.root, "config")
        self.config = touchdeploy_env.read_version(live)
        env = touchdeploy_env.read_env(live)
        status = env.get(b"STANDIN_STATUS")
        self.env_status = int(status) if status else None
        self.log("env", " ".join(sorted(k.decode() for k in env)))

    def trigger_stamp(self):
        try:
            st = os.stat(self.trigger)
        except FileNotFoundError:
            return None
        if self.mode == "touch":
            return int(st.st_mtime)
        return (st.st_mtime_ns, st.st_ctime_ns, st.st_ino)

    # --- listening ------------------------------------------------------------------------------

    def start_listening(self):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self.handler_class())
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.listening = server
        tmp = os.path.join(self.state, "port.tmp")
        with open(tmp, "w") as f:
            f.write(str(self.port))
        os.replace(tmp, os.path.join(self.state, "port"))

    def stop_listening(self):
        if self.listening is not None:
            self.listening.shutdown()
            self.listening.server_close()
            self.listening = None

    def handler_class(self):
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self):
                with standin.lock:
                    while standin.reloading:
                        standin.lock.wait(0.05)
                    revision, broken = standin.revision, standin.broken
                    config, env_status = standin.config, standin.env_status
                    control = dict(standin.control)
                if control["delay_ms"]:
                    time.sleep(control["delay_ms"] / 1000)
                status = control["status"] or (500 if broken else env_status or 200)
                body = f"{revision}\n".encode()
                self.send_response(status)
                self.send_header("X-Revision", revision or "")
                if config:
                    self.send_header("X-Touchdeploy-Config", config)
                if control["fingerprint"]:
                    self.send_header("X-Touchdeploy-Fingerprint", control["fingerprint"])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                standin.log("request", f"{self.path} {status} {revision}")

            def log_message(self, *args):
                pass

        return Handler

    # --- the emulated server's life -------------------------------------------------------------

    def spawned(self):
        self.spawned_at = time.monotonic()
        self.baseline = self.trigger_stamp()

    def start(self):
        self.read_release()
        self.spawned()
        # Logged before it listens: whoever gets an answer finds the start in the log.
        self.log("start", f"{self.revision} port {self.port}")
        self.start_listening()

    def reload(self):
        with self.lock:
            self.reloading = True
        self.log("reload-begin")
        time.sleep(self.control["reload_ms"] / 1000)
        if not self.release_ready():
            with self.lock:
                self.reloading = False
            self.stop_listening()
            self.log("reload-failed", "no current release: down until there is one")
            self.ready_since = None
            return
        with self.lock:
            self.read_release()
            self.spawned()
            self.log("reload", self.revision)
            self.reloading = False
            self.lock.notify_all()

    def apply_control(self):
        path = os.path.join(self.state, "control.json")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        if stamp == self.control_stamp:
            return
        self.control_stamp = stamp
        with open(path) as f:
            change = json.load(f)
        with self.lock:
            self.control.update(change)
        if self.control["up"] is False and self.listening is not None:
            self.stop_listening()
            self.ready_since = None
        self.log("control", json.dumps(change, sort_keys=True))

    def step(self):
        self.apply_control()
        now = time.monotonic()
        if self.listening is None:
            if self.control["up"] and self.release_ready():
                if self.ready_since is None:
                    self.ready_since = now
                if now - self.ready_since >= self.control["start_delay_ms"] / 1000:
                    self.ready_since = None
                    self.start()
            return
        stamp = self.trigger_stamp()
        if stamp is None or stamp == self.baseline:
            return
        if now < self.stalled_until:
            return
        since_spawn_ms = (now - self.spawned_at) * 1000
        if self.control["guard_ms"] and since_spawn_ms < self.control["guard_ms"] and self.stalled_until == 0:
            self.log("VIOLATION", f"trigger touched {since_spawn_ms:.0f} ms after workers were spawned")
            self.stalled_until = now + self.control["stall_ms"] / 1000
            return
        self.stalled_until = 0
        self.reload()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--subdir", default="")
    parser.add_argument("--reload-file", default=".reload")
    parser.add_argument("--mode", choices=["fs", "touch"], default="fs")
    parser.add_argument("--fingerprint", default="")
    parser.add_argument("--state", required=True)
    parser.add_argument("--down", action="store_true", help="start not listening (up: false)")
    args = parser.parse_args()
    standin = Standin(args)
    # A fixed port from the start, even when down: bind once to get a free one.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    standin.port = probe.getsockname()[1]
    probe.close()
    with open(os.path.join(args.state, "port"), "w") as f:
        f.write(str(standin.port))
    standin.log("ready", f"port {standin.port} mode {args.mode}")
    while True:
        standin.step()
        time.sleep(0.005)


if __name__ == "__main__":
    main()
