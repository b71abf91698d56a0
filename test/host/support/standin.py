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

With `--mode generations` it emulates the generations manager (runtime/touchdeploy_generations.py)
instead of a reload: a touch starts a "generation" on the release and config version the links
point to then (nothing when it already serves exactly those), which takes `start_ms` while the
previous one keeps serving, and takes over only if it starts: a release with BROKEN (an import
error) never serves; the old one keeps answering. With `retire_ms`, the old one is still
stopping for that long after the new one answers (the runtime's state `ready`), then the new one
alone serves (`serving`). Each start is recorded in the status file of
`--run-dir` with the runtime's own code (touchdeploy_generations.record), so that
`touchdeploy-generations status` (run by the fake docker, test/host/support/fakedocker.py)
answers what the real one would.

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
import touchdeploy_generations  # noqa: E402  the image's own status file


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
            "start_ms": 20,
            "retire_ms": 0,
            "fingerprint": args.fingerprint,
        }
        self.run_dir = args.run_dir
        self.generation = 0
        self.serving = None
        # (status entry, monotonic deadline): a new generation that serves beside the retiring
        # old one until then ("ready"), then alone ("serving").
        self.retiring = None
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

    def target(self):
        """(release, config dir) the links point to now (what a generation would start on)."""
        config = os.path.join(self.root, "config")
        return (
            os.path.realpath(os.path.join(self.root, "current")),
            os.path.realpath(config) if os.path.isdir(config) else "",
        )

    def start_generation(self):
        """What the generations manager does on a touch (see the docstring)."""
        target = self.target()
        if self.serving == target:
            self.log("nothing-to-start", os.path.basename(target[0]))
            return
        trigger = int(os.stat(self.trigger).st_mtime)
        with open(os.path.join(target[0], "REVISION")) as f:
            revision = f.read().strip()
        config = touchdeploy_env.read_version(target[1]) if target[1] else ""
        self.generation += 1
        entry = {"generation": self.generation, "revision": revision, "config": config, "trigger": trigger}
        touchdeploy_generations.record({**entry, "state": "starting"}, self.run_dir)
        self.log("generation-start", f"{self.generation} {revision}")
        time.sleep(self.control["start_ms"] / 1000)
        app_dir = os.path.join(target[0], self.subdir)
        if os.path.exists(os.path.join(app_dir, "BROKEN")):
            reason = (
                "it exited with status 22 before it answered: "
                "ModuleNotFoundError: No module named 'broken_on_purpose'"
            )
            touchdeploy_generations.record({**entry, "state": "failed", "reason": reason}, self.run_dir)
            self.log("generation-failed", f"{self.generation} {revision}")
            return
        before = self.serving
        with self.lock:
            self.read_release()
            self.spawned()
            self.serving = target
            self.log("reload", self.revision)
        if self.control["retire_ms"] and before is not None:
            touchdeploy_generations.record({**entry, "state": "ready"}, self.run_dir)
            self.retiring = (entry, time.monotonic() + self.control["retire_ms"] / 1000)
        else:
            touchdeploy_generations.record({**entry, "state": "serving"}, self.run_dir)

    def retired(self):
        """The old generation has stopped: the new one alone serves."""
        if self.retiring is None or time.monotonic() < self.retiring[1]:
            return
        entry = self.retiring[0]
        self.retiring = None
        touchdeploy_generations.record({**entry, "state": "serving"}, self.run_dir)
        self.log("generation-alone", f"{entry['generation']} {entry['revision']}")

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
        self.serving = self.target()
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
        self.retired()
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
        if self.mode == "generations":
            self.baseline = stamp
            self.start_generation()
            return
        self.reload()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--subdir", default="")
    parser.add_argument("--reload-file", default=".reload")
    parser.add_argument("--mode", choices=["fs", "touch", "generations"], default="fs")
    parser.add_argument("--run-dir", default="", help="generations: the runtime's run dir (status file)")
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
