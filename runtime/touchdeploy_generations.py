"""touchdeploy-generations: code deploys without a pause, for apps that take time to boot.

    touchdeploy-generations
        What supervisord runs (the program `uwsgi`): the manager, described below.
    touchdeploy-generations status REVISION [--config VERSION] [--touched MTIME]
        What the host script asks with `docker exec` while it waits for a new release to be
        served: the newest start of REVISION (with config version VERSION, "" for none) that
        began at or after the trigger's mtime MTIME (whole seconds), as one line:
        `starting generation N` (not healthy yet), `ready generation N` (healthy, serving, the
        previous generation still stopping: both may answer), `serving generation N` (it alone
        serves), `retired generation N`, `failed generation N: REASON`, or `none` when there is
        no such start (yet).

The manager holds the app's listening socket and runs the app as *generations*: one uWSGI
instance (master + workers) per release, every one of them accepting on that one socket (the
socket is inherited, `fd://N`: one accept queue, nothing queued is ever dropped). The deploy
contract with the host is the same as a reload's: the host switches `current` (and `config`)
and touches the reload trigger once. On the touch this starts a new generation on the release
`current` points to and the config version `config` points to, both resolved once: the
generation's code, chdir, X-Revision, env and X-Touchdeploy-Config all come from that one
release and version, like a graceful reload re-reads them. It retires the previous generation
only when the new one answered the health path (TOUCHDEPLOY_HEALTH_PATH, passed by the Pulumi
program from the release config) with HTTP 200 and its own X-Revision on a private socket.
Retiring is graceful (master FIFO `q`: the workers finish the requests they have and exit).
Meanwhile the old generation keeps serving, so no request waits for the new app to boot.

A generation that fails to start (an import error: `need-app` makes it exit; no healthy answer
within the start timeout; 3 s of answers other than 200) is stopped and the previous one keeps
serving. The failure is recorded in the status file with its reason (the app's last exception
line from the generation's output, secrets masked), so the host script learns it at once and
switches back; the touch of the switch-back starts nothing (the live generation already runs
that release and config version).

A touch when the live generation already runs the release and config version the links point
to starts nothing; touches during a start are merged into one more start. A SIGHUP starts a new
generation on the same release (restart the app).

The container's log has one line per event, prefixed `touchdeploy-generations:`; a reload is
`touchdeploy-generations: reloaded: generation N ... serving, generation M ... retiring`.

Environment: TOUCHDEPLOY_ROOT, TOUCHDEPLOY_APP_SUBDIR, TOUCHDEPLOY_RELOAD_FILE, TOUCHDEPLOY_PORT,
TOUCHDEPLOY_HEALTH_PATH (default /healthz), TOUCHDEPLOY_START_TIMEOUT (seconds a new
generation gets to answer healthy, default 60), TOUCHDEPLOY_RUN_DIR (the status file, private
sockets and FIFOs; default /tmp/touchdeploy). Only the Python standard library.
"""

import ctypes
import ctypes.util
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True

ROOT = os.environ.get("TOUCHDEPLOY_ROOT", "/srv/app")
SUBDIR = os.environ.get("TOUCHDEPLOY_APP_SUBDIR", "")
TRIGGER = os.path.join(ROOT, os.environ.get("TOUCHDEPLOY_RELOAD_FILE", ".reload"))
PORT = int(os.environ.get("TOUCHDEPLOY_PORT", "8000"))
HEALTH_PATH = os.environ.get("TOUCHDEPLOY_HEALTH_PATH", "") or "/healthz"
START_TIMEOUT = float(os.environ.get("TOUCHDEPLOY_START_TIMEOUT", "60"))
RUN_DIR = os.environ.get("TOUCHDEPLOY_RUN_DIR", "/tmp/touchdeploy")
CONTRACT_INI = "/etc/touchdeploy/uwsgi.ini"
VENV_PYTHON = "/opt/venv/bin/python3"
STATUS_FILE = "generations.json"
# Starts kept in the status file (newest last).
STATUS_KEEP = 20

# A retiring generation's workers are sent SIGHUP ("stop gracefully") again this often while
# it lives: a worker forked a moment before the master's own SIGHUP may not have had its
# handler yet and would go on serving the old code until worker-reload-mercy (see
# bench/FINDINGS.md, "The 30 s outlier"; only deploys less than ~1 s apart meet it).
NUDGE_S = 0.5
# Answers other than 200 from a new generation for this long: it is broken, stop it.
BAD_ANSWER_S = 3.0
# A retiring generation gets worker-reload-mercy (30 s in uwsgi.ini) plus a margin, then SIGKILL.
RETIRE_MERCY_S = 35.0
# A crashed live generation (or a first release that does not start) is retried after this.
RETRY_S = 1.0
# Output of a starting generation kept to name why it failed (bytes).
TAIL_BYTES = 16384

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_DELETE_SELF, IN_MOVE_SELF, IN_IGNORED = 0x400, 0x800, 0x8000
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000
PR_SET_PDEATHSIG = 1

# Set by SIGTERM/SIGINT: stop waiting for a new generation, stop them all, exit.
STOPPING = False

OUTPUT_LOCK = threading.Lock()


def write_out(data):
    """One write to the container's log (stdout), never interleaved with another."""
    with OUTPUT_LOCK:
        try:
            os.write(1, data)
        except OSError:
            pass


def say(message):
    write_out(f"touchdeploy-generations: {message}\n".encode())


LIBC = None


def libc():
    global LIBC
    if LIBC is None:
        LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return LIBC


# --- status: what the host script reads ---------------------------------------------------------


def status_path(run_dir=None):
    return os.path.join(run_dir or RUN_DIR, STATUS_FILE)


def read_status(run_dir=None):
    try:
        with open(status_path(run_dir)) as f:
            starts = json.load(f)
    except (OSError, ValueError):
        return []
    return starts if isinstance(starts, list) else []


def record(entry, run_dir=None):
    """Adds or updates (by generation number) one start in the status file (atomic replace)."""
    starts = [s for s in read_status(run_dir) if s.get("generation") != entry["generation"]]
    starts.append(entry)
    starts.sort(key=lambda s: s.get("generation", 0))
    starts = starts[-STATUS_KEEP:]
    path = status_path(run_dir)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(starts, f)
    os.replace(tmp, path)


def status_line(revision, config="", touched=None, run_dir=None):
    """The answer of `status`: the newest start of revision + config at or after `touched`."""
    for s in reversed(read_status(run_dir)):
        if s.get("revision") != revision or s.get("config", "") != config:
            continue
        if touched is not None and (s.get("trigger") is None or s["trigger"] < touched):
            continue
        line = f"{s['state']} generation {s['generation']}"
        if s["state"] == "failed":
            line += f": {s.get('reason', 'unknown reason')}"
        return line
    return "none"


# --- why a generation failed --------------------------------------------------------------------

# The last line of a Python traceback: `ModuleNotFoundError: No module named 'x'`, `SyntaxError:
# ...`, `django.core.exceptions.ImproperlyConfigured: ...`.
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Configured)\b.*$")


def failure_detail(tail, secrets=()):
    """The app's last exception line in a generation's output (secret values masked), or ""."""
    text = tail.decode("utf-8", "replace")
    found = ""
    for line in text.splitlines():
        line = line.strip()
        if EXCEPTION_LINE.match(line):
            found = line
    for value in secrets:
        if len(value) >= 4:
            found = found.replace(value, "***")
    found = "".join(c if c.isprintable() else "?" for c in found)
    return found[:300]


def secret_values(config_dir):
    """The secret values of a config version (to keep them out of a failure's reason)."""
    values = []
    path = os.path.join(config_dir, "secrets") if config_dir else ""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return values
    for record_ in data.split(b"\0"):
        _, sep, value = record_.partition(b"=")
        if sep and value:
            values.append(value.decode("utf-8", "replace"))
    return values


# --- the trigger --------------------------------------------------------------------------------


class TriggerWatch:
    """inotify on the reload trigger. One touch makes several events (touch opens the file,
    sets its times and closes it), so a touch is recognised by the trigger's ctime: it changes
    once per touch, whatever events came with it. A replaced file is watched again."""

    MASK = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF

    def __init__(self, path):
        self.path = path
        self.fd = libc().inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.wd = -1
        self.watch()
        self.seen = self.ctime()

    def watch(self):
        self.wd = libc().inotify_add_watch(self.fd, self.path.encode(), self.MASK)
        return self.wd >= 0

    def ctime(self):
        try:
            return os.stat(self.path).st_ctime_ns
        except OSError:
            return None

    def touched(self):
        """Drains the events; True when the trigger was touched since the last True."""
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            i = 0
            while i + 16 <= len(data):
                mask = int.from_bytes(data[i + 4 : i + 8], sys.byteorder)
                length = int.from_bytes(data[i + 12 : i + 16], sys.byteorder)
                i += 16 + length
                if mask & IN_IGNORED:
                    self.wd = -1
        if self.wd < 0 and not self.watch():
            say(f"cannot watch {self.path} again (errno {ctypes.get_errno()}); retrying")
        ctime = self.ctime()
        if ctime is None or ctime == self.seen:
            return False
        self.seen = ctime
        return True


def trigger_mtime():
    try:
        return int(os.stat(TRIGGER).st_mtime)
    except OSError:
        return None


def die_with_parent():
    # Runs in the child before exec: a generation must not outlive this process (it would hold
    # the socket and serve its release forever).
    libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


# --- a generation -------------------------------------------------------------------------------


class Generation:
    def __init__(self, number, target, listener, trigger):
        self.number = number
        self.release, self.revision, self.config_dir, self.config = target
        self.private = f"{RUN_DIR}/gen-{number}.sock"
        self.fifo = f"{RUN_DIR}/gen-{number}.fifo"
        self.ready_at = None
        self.retiring_at = None
        self.nudged_at = None
        self.why = ""
        self.tail = bytearray()
        self.keep_tail = True
        self.status = {
            "generation": number,
            "revision": self.revision,
            "config": self.config,
            "release": os.path.relpath(self.release, ROOT),
            "trigger": trigger,
            "state": "starting",
            "started": time.time(),
        }
        app_ini = os.path.join(self.release, SUBDIR, "uwsgi.ini")
        argv = ["uwsgi", "--ini", app_ini, "--ini", CONTRACT_INI]
        argv += ["--http-socket", f"fd://{listener.fileno()}"]
        if os.access(VENV_PYTHON, os.X_OK):
            argv += ["--virtualenv", "/opt/venv"]
        env = dict(
            os.environ,
            TOUCHDEPLOY_RELEASE=self.release,
            TOUCHDEPLOY_GENERATION=str(number),
            TOUCHDEPLOY_PRIVATE_SOCKET=self.private,
            TOUCHDEPLOY_MASTER_FIFO=self.fifo,
        )
        # The config version this generation runs with (touchdeploy_env.py applies it in the
        # master; uwsgi.ini sends its VERSION as X-Touchdeploy-Config). Unset without one.
        env.pop("TOUCHDEPLOY_CONFIG_DIR", None)
        if self.config_dir:
            env["TOUCHDEPLOY_CONFIG_DIR"] = self.config_dir
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            pass_fds=(listener.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        self.output = threading.Thread(target=self.forward, daemon=True)
        self.output.start()
        self.save()

    def forward(self):
        """Copies the generation's output to the container's log; keeps its tail while it starts."""
        fd = self.proc.stdout.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            write_out(data)
            if self.keep_tail:
                self.tail += data
                del self.tail[:-TAIL_BYTES]
        self.proc.stdout.close()

    def save(self, **changes):
        self.status.update(changes)
        try:
            record(dict(self.status))
        except OSError as err:
            say(f"cannot write {status_path()}: {err}")

    @property
    def name(self):
        return f"generation {self.number} ({self.revision[:12]}, pid {self.proc.pid})"

    def alive(self):
        return self.proc.poll() is None

    def probe(self, deadline, meanwhile=lambda: None):
        """GET the health path on the private socket. Returns (status, X-Revision), or None when
        there is no answer (not bound yet, died, or the deadline passed while the request waited
        in the listen queue for the app to load)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(0.1)
        try:
            s.connect(self.private)
            s.sendall(f"GET {HEALTH_PATH} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    if not self.alive() or time.monotonic() > deadline or STOPPING:
                        return None
                    meanwhile()
                    continue
                if not chunk:
                    break
                data += chunk
        except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError, socket.timeout):
            return None
        finally:
            s.close()
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        parts = head[0].split(" ")
        if len(parts) < 2 or not parts[1].isdigit():
            return None
        revision = ""
        for line in head[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == "x-revision":
                revision = value.strip()
        return int(parts[1]), revision

    def wait_ready(self, meanwhile):
        """True once the generation answers 200 with its own revision; False when it exits,
        answers anything else for BAD_ANSWER_S, or START_TIMEOUT passes (the reason in `why`).
        Calls `meanwhile` between probes."""
        deadline = self.started_at + START_TIMEOUT
        bad_since = None
        while True:
            if STOPPING:
                self.why = "the container is stopping"
                return False
            if not self.alive():
                self.why = f"it exited with status {self.proc.returncode} before it answered"
                return False
            now = time.monotonic()
            if now > deadline:
                self.why = f"no healthy answer on {HEALTH_PATH} within {START_TIMEOUT:g}s"
                return False
            meanwhile()
            answer = self.probe(deadline, meanwhile)
            if answer is None:
                time.sleep(0.02)
                continue
            status, revision = answer
            if status == 200 and revision == self.revision:
                self.ready_at = time.monotonic()
                return True
            bad_since = bad_since or now
            if now - bad_since >= BAD_ANSWER_S:
                self.why = f"{HEALTH_PATH} answered HTTP {status} (X-Revision {revision or 'none'}) for {BAD_ANSWER_S:g}s"
                return False
            time.sleep(0.05)

    def failed(self):
        """Records why this generation failed (its reason and the app's last exception)."""
        # The output thread may still be copying the last lines: give it a moment to finish.
        self.output.join(0.5)
        detail = failure_detail(bytes(self.tail), secret_values(self.config_dir))
        reason = self.why + (f": {detail}" if detail else "")
        self.keep_tail = False
        self.tail = bytearray()
        self.save(state="failed", reason=reason)
        return reason

    def workers(self):
        """The pids of this generation's workers (its master's children)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == self.proc.pid:
                pids.append(int(entry))
        return pids

    def nudge(self):
        """SIGHUP (stop gracefully) to each worker still alive, once per NUDGE_S while retiring."""
        now = time.monotonic()
        if now - (self.nudged_at or self.retiring_at) < NUDGE_S:
            return
        self.nudged_at = now
        for pid in self.workers():
            try:
                os.kill(pid, signal.SIGHUP)
            except ProcessLookupError:
                pass

    def retire(self):
        """Graceful stop: master FIFO `q` (workers finish their requests, then exit)."""
        self.retiring_at = time.monotonic()
        self.nudged_at = None
        try:
            fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            try:
                os.write(fd, b"q")
            finally:
                os.close(fd)
        except OSError as e:
            say(f"{self.name}: master FIFO unusable ({e}); stopping it with SIGINT")
            self.kill(signal.SIGINT)

    def kill(self, signum=signal.SIGKILL):
        try:
            self.proc.send_signal(signum)
        except ProcessLookupError:
            pass


def current_target():
    """(release, revision, config dir, config version) the links point to now; None while
    there is no release. The config dir is "" (and the version "") without a config."""
    release = os.path.realpath(os.path.join(ROOT, "current"))
    try:
        with open(os.path.join(release, "REVISION")) as f:
            revision = f.read().strip()
    except OSError:
        return None
    if not os.path.isfile(os.path.join(release, SUBDIR, "uwsgi.ini")):
        return None
    config_dir, version = "", ""
    link = os.path.join(ROOT, "config")
    if os.path.isdir(link):
        config_dir = os.path.realpath(link)
        try:
            with open(os.path.join(config_dir, "VERSION")) as f:
                version = f.read().strip()
        except OSError:
            version = ""
    return release, revision, config_dir, version


def listen_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", PORT))
    s.listen(1024)
    return s


class Manager:
    def __init__(self):
        self.listener = listen_socket()
        self.live = None
        self.retiring = []
        self.number = 0
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        # A HUP to this process starts a new generation, like a touch.
        self.hup = False
        signal.signal(signal.SIGHUP, self.on_hup)

    def stop(self, *_):
        global STOPPING
        STOPPING = True

    def on_hup(self, *_):
        self.hup = True

    def start(self, forced=False):
        """Starts a generation on the current release and config version and waits until it is
        healthy; then retires the live one. False when it failed (the live one, if any, keeps
        serving). Nothing to do when the live generation already runs that release and config
        (a switch back after a failed generation) unless `forced` (SIGHUP: restart the app)."""
        trigger = trigger_mtime()
        target = current_target()
        if target is None:
            say("no release to start (current, its REVISION or uwsgi.ini is missing)")
            return False
        live = self.live
        release, _, config_dir, _ = target
        if not forced and live is not None and (live.release, live.config_dir) == (release, config_dir):
            say(f"{live.name} already serves {os.path.relpath(live.release, ROOT)}: nothing to start")
            return True
        self.number += 1
        g = Generation(self.number, target, self.listener, trigger)
        with_config = f" with config {g.config}" if g.config else ""
        say(f"starting {g.name} on {os.path.relpath(g.release, ROOT)}{with_config}")
        if not g.wait_ready(self.reap):
            g.kill(signal.SIGINT)
            reason = g.failed()
            say(f"{g.name} FAILED: {reason}; stopping it" + (f"; {live.name} keeps serving" if live else ""))
            self.retiring.append(g)
            g.retiring_at = time.monotonic()
            return False
        g.keep_tail = False
        g.tail = bytearray()
        took = f"{(g.ready_at - g.started_at) * 1000:.0f} ms after its start"
        self.live = g
        if live is None:
            g.save(state="serving", ready=time.time())
            say(f"{g.name} is serving ({took})")
            return True
        # The old one stops accepting now; until it has exited both may answer ("ready"), then
        # the new one alone serves ("serving", in reap()).
        live.retire()
        live.save(state="retired")
        self.retiring.append(live)
        g.save(state="ready", ready=time.time())
        # The one line per reload (tests and the benchmark count it).
        say(f"reloaded: {g.name} serving ({took}), {live.name} retiring")
        self.reap()
        return True

    def reap(self):
        for g in list(self.retiring):
            if not g.alive():
                say(f"{g.name} exited ({(time.monotonic() - g.retiring_at) * 1000:.0f} ms after it was told to stop)")
                self.retiring.remove(g)
            elif time.monotonic() - g.retiring_at > RETIRE_MERCY_S:
                say(f"{g.name} is taking too long to stop: SIGKILL")
                g.kill()
            else:
                g.nudge()
        live = self.live
        if live is not None and live.status["state"] == "ready" and not self.retiring:
            live.save(state="serving")

    def run(self):
        waited = False
        while current_target() is None or not os.path.exists(TRIGGER):
            if STOPPING:
                return 0
            if not waited:
                say(f"waiting for the first release ({ROOT}/current, {TRIGGER})")
                waited = True
            time.sleep(0.2)
        os.makedirs(RUN_DIR, mode=0o700, exist_ok=True)
        watch = TriggerWatch(TRIGGER)
        pending = True
        forced = False
        retry_at = None
        while not STOPPING:
            if watch.touched():
                pending = True
            if self.hup:
                self.hup = False
                pending = forced = True
            if self.live is not None and not self.live.alive():
                say(f"{self.live.name} died (status {self.live.proc.returncode}); starting a new generation")
                self.live.save(state="failed", reason=f"it died (status {self.live.proc.returncode}) while serving")
                self.live = None
                pending = True
            if pending and (retry_at is None or time.monotonic() >= retry_at):
                pending = False
                retry_at = None
                started = self.start(forced)
                forced = False
                if not started and self.live is None:
                    pending, retry_at = True, time.monotonic() + RETRY_S
                continue
            self.reap()
            # While a generation stops: wake up to nudge it and to see it gone.
            longest = 0.1 if self.retiring else 1.0
            timeout = longest if retry_at is None else max(0.0, min(longest, retry_at - time.monotonic()))
            try:
                ready, _, _ = select.select([watch.fd, self.wake_r], [], [], timeout)
            except InterruptedError:
                continue
            if self.wake_r in ready:
                try:
                    os.read(self.wake_r, 4096)
                except BlockingIOError:
                    pass
        return self.shutdown()

    def shutdown(self):
        generations = [g for g in [self.live, *self.retiring] if g is not None and g.alive()]
        say(f"stopping {len(generations)} generation(s)")
        for g in generations:
            g.retire()
        deadline = time.monotonic() + 8
        while any(g.alive() for g in generations) and time.monotonic() < deadline:
            time.sleep(0.05)
        for g in generations:
            if g.alive():
                g.kill()
                g.proc.wait()
        return 0


def main(argv):
    if argv[:1] == ["status"]:
        import argparse

        parser = argparse.ArgumentParser(prog="touchdeploy-generations status")
        parser.add_argument("revision")
        parser.add_argument("--config", default="")
        parser.add_argument("--touched", type=int)
        args = parser.parse_args(argv[1:])
        print(status_line(args.revision, args.config, args.touched))
        return 0
    if argv:
        print(f"usage: touchdeploy-generations [status REVISION [--config VERSION] [--touched MTIME]] (got {argv[0]!r})", file=sys.stderr)
        return 2
    return Manager().run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
