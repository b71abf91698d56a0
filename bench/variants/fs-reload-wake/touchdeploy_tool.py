"""What the host script runs in the container with `docker exec`, and what supervisord starts.

    touchdeploy-run [--config DIR] [--pidfile FILE] -- COMMAND...
        Runs COMMAND with the env and secrets of config version DIR (default: the live one,
        /srv/app/config) applied, in a new session (so that it and everything it starts can be
        signalled as one process group), its pid written to FILE. The release command runs so:
        `docker exec -w <new release's app dir> <container> touchdeploy-run --config
        /srv/app/configs/<new version> --pidfile ... -- /bin/sh -c '<release command>'`.
    touchdeploy-run --stop FILE [--timeout SECONDS]
        Stops what `touchdeploy-run --pidfile FILE` started: SIGTERM to its process group, then
        SIGKILL after SECONDS (default 5). Killing `docker exec` does not stop the command in the
        container; the host script runs this after a deadline or a signal.
    touchdeploy-process NAME
        What supervisord runs for the process NAME of the live config (processes file): its
        COMMAND under /bin/sh -c, with the live env and secrets, in /srv/app/current/<app dir>.
        The command itself never goes through supervisord's config parser (no quoting rules).
    touchdeploy-processes sync --stop-timeout SECONDS [--deadline SECONDS]
        Makes supervisord run the live config's processes on the live release: processes no
        longer wanted are stopped and removed, new ones added, and every other one restarted
        (SIGTERM to its process group, SIGKILL after SECONDS, then started again). Waits until
        each has stayed up for its startsecs; exit 1 naming the first that did not.
    touchdeploy-processes write-conf
        Writes supervisord's program sections for the live processes (at container start).

Only the Python standard library: supervisord is reached over its XML-RPC socket.
"""

import argparse
import http.client
import os
import signal
import socket
import sys
import time
import xmlrpc.client

# Nothing written next to the code (runtime/ is the image's build context; /etc/touchdeploy is
# read-only for the container's user).
sys.dont_write_bytecode = True

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import touchdeploy_env  # noqa: E402

ROOT = touchdeploy_env.ROOT
LIVE = touchdeploy_env.LIVE
RUN_DIR = os.environ.get("TOUCHDEPLOY_RUN_DIR", "/tmp/touchdeploy")
CONF = os.path.join(RUN_DIR, "processes.conf")
SOCKET = os.environ.get("TOUCHDEPLOY_SUPERVISOR_SOCKET", "/tmp/supervisor.sock")
STARTSECS = int(os.environ.get("TOUCHDEPLOY_PROCESS_STARTSECS", "3"))
# supervisord's own program name for uWSGI: never a process of the config.
WEB = "uwsgi"

# supervisord's process states and faults (supervisor/states.py, supervisor/xmlrpc.py).
STOPPED, STARTING, RUNNING, BACKOFF, STOPPING, EXITED, FATAL = 0, 10, 20, 30, 40, 100, 200
DOWN = (STOPPED, EXITED, FATAL)
FAULT_BAD_NAME, FAULT_NOT_RUNNING, FAULT_ALREADY_STARTED = 10, 70, 60


def say(message):
    print(message, flush=True)


def fail(message, code=1):
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def read_processes(config_dir=LIVE):
    """[(name, command bytes)] of a config version ([] without one)."""
    path = os.path.join(config_dir, "processes")
    if not os.path.exists(path):
        return []
    fields = touchdeploy_env.read_records(path)
    if len(fields) % 2:
        raise ValueError(f"{path}: an odd number of fields")
    return [(fields[i].decode("ascii"), fields[i + 1]) for i in range(0, len(fields), 2)]


# --- run / stop ---------------------------------------------------------------------------------


def write_pidfile(path, pid):
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.replace(tmp, path)


def cmd_run(args):
    if not args.command:
        fail("touchdeploy-run: no command")
    touchdeploy_env.apply(args.config or LIVE)
    # Its own process group, to be signalled as one (docker exec may already make it a group
    # leader, and then setsid is refused).
    try:
        os.setsid()
    except PermissionError:
        if os.getpgid(0) != os.getpid():
            os.setpgid(0, 0)
    if args.pidfile:
        write_pidfile(args.pidfile, os.getpid())
    try:
        os.execvp(args.command[0], args.command)
    except OSError as err:
        fail(f"cannot run {args.command[0]}: {err.strerror}", 127)


def group_alive(pgid):
    """A process of the group is still running (a zombie waiting to be reaped does not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # After the command name in parentheses: state, ppid, pgrp, ...
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def wait_group(pgid, seconds):
    """True once no process of the group is left, False if some still are after `seconds`."""
    deadline = time.monotonic() + seconds
    while group_alive(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop_group(pgid, timeout):
    """SIGTERM to the group, SIGKILL after `timeout` s; returns what it took ('' if gone)."""
    if not group_alive(pgid):
        return ""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return ""
    if wait_group(pgid, timeout):
        return "stopped by SIGTERM"
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    wait_group(pgid, 5)
    return f"killed (SIGKILL) after {timeout:g}s"


def cmd_stop(args):
    try:
        with open(args.stop) as f:
            pid = int(f.read().strip() or "0")
    except FileNotFoundError:
        return
    if pid > 1:
        what = stop_group(pid, args.timeout)
        if what:
            say(f"the command (process group {pid}) was {what}")
    os.unlink(args.stop)


def cmd_process(args):
    name = args.name
    try:
        wanted = dict(read_processes())
    except (OSError, ValueError) as err:
        fail(f"process {name}: cannot read {LIVE}/processes: {err}")
    if name not in wanted:
        fail(f"process {name} is not in the live config ({LIVE}/processes)")
    touchdeploy_env.apply(LIVE)
    app_dir = os.path.join(ROOT, "current", os.environ.get("TOUCHDEPLOY_APP_SUBDIR", ""))
    try:
        os.chdir(app_dir)
    except OSError as err:
        fail(f"process {name}: cannot enter {app_dir}: {err.strerror}")
    os.environ["TOUCHDEPLOY_PROCESS"] = name
    os.execv("/bin/sh", ["/bin/sh", "-c", wanted[name]])


# --- supervisord --------------------------------------------------------------------------------


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path, timeout=30):
        super().__init__()
        self.socket_path = path
        self.conn_timeout = timeout

    def make_connection(self, host):
        return UnixConnection(self.socket_path, self.conn_timeout)


def supervisor():
    proxy = xmlrpc.client.ServerProxy("http://localhost/RPC2", transport=UnixTransport(SOCKET))
    return proxy.supervisor


def conf_text(names):
    """supervisord's program sections for these processes (the command comes from the config)."""
    sections = []
    for name in names:
        sections.append(
            "\n".join(
                [
                    f"[program:{name}]",
                    f"command=/usr/local/bin/touchdeploy-process {name}",
                    "autostart=true",
                    "autorestart=true",
                    f"startsecs={STARTSECS}",
                    "startretries=3",
                    "stopsignal=TERM",
                    # touchdeploy-processes stops them itself (SIGKILL after --stop-timeout);
                    # this bounds a stop by supervisord (docker stop has its own deadline).
                    "stopwaitsecs=30",
                    "stopasgroup=true",
                    "killasgroup=true",
                    "stdout_logfile=/dev/stdout",
                    "stdout_logfile_maxbytes=0",
                    "redirect_stderr=true",
                    "",
                ]
            )
        )
    return "\n".join(sections)


def write_conf(names):
    os.makedirs(RUN_DIR, mode=0o700, exist_ok=True)
    tmp = f"{CONF}.tmp"
    with open(tmp, "w") as f:
        f.write(conf_text(names))
    os.replace(tmp, CONF)


def live_names():
    names = [name for name, _ in read_processes()]
    for name in names:
        if name == WEB or not name.replace("-", "").isalnum() or not name[0].isalpha():
            raise ValueError(f"{LIVE}/processes: bad process name {name!r}")
    return names


def cmd_write_conf(_args):
    try:
        names = live_names()
    except (OSError, ValueError) as err:
        # The web server must start anyway: no processes, and say why.
        print(f"touchdeploy: warning: no processes started: {err}", file=sys.stderr, flush=True)
        names = []
    write_conf(names)


def info_by_name(rpc):
    return {p["name"]: p for p in rpc.getAllProcessInfo() if p["group"] != WEB}


def stop(rpc, names, timeout):
    """Stops these processes: SIGTERM to each process group, SIGKILL after `timeout`."""
    infos = info_by_name(rpc)
    groups = []
    for name in names:
        info = infos.get(name)
        if info is None:
            continue
        if info["state"] in (STARTING, RUNNING, BACKOFF):
            if info["pid"]:
                groups.append((name, info["pid"]))
            try:
                rpc.stopProcess(name, False)
            except xmlrpc.client.Fault as fault:
                if fault.faultCode != FAULT_NOT_RUNNING:
                    raise
    t0 = time.monotonic()
    deadline = t0 + timeout
    for name, pgid in groups:
        left = max(0.0, deadline - time.monotonic())
        if wait_group(pgid, left):
            say(f"{name}: stopped by SIGTERM in {time.monotonic() - t0:.2f}s")
            continue
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_group(pgid, 5)
        say(f"{name}: did not stop within {timeout:g}s of SIGTERM: killed (SIGKILL)")
    # supervisord notices the exits on its next tick.
    settle = time.monotonic() + 10
    while time.monotonic() < settle:
        infos = info_by_name(rpc)
        if all(infos.get(n) is None or infos[n]["state"] not in (STOPPING,) for n in names):
            break
        time.sleep(0.05)


def cmd_sync(args):
    try:
        names = live_names()
    except (OSError, ValueError) as err:
        fail(f"cannot read the live processes: {err}")
    write_conf(names)
    rpc = supervisor()
    added, changed, removed = rpc.reloadConfig()[0]
    before = set(info_by_name(rpc))
    restart = [n for n in names if n in before and n not in added and n not in changed]
    stop(rpc, sorted(set(restart) | set(removed) | set(changed)), args.stop_timeout)
    for group in removed + changed:
        rpc.removeProcessGroup(group)
    for group in added + changed:
        # autostart: supervisord starts it on its next tick.
        rpc.addProcessGroup(group)
    for name in restart:
        try:
            rpc.startProcess(name, False)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != FAULT_ALREADY_STARTED:
                raise
    # Each must reach RUNNING: up for startsecs. BACKOFF means it exited before that.
    deadline = time.monotonic() + STARTSECS + args.deadline
    pending = set(names)
    while pending:
        infos = info_by_name(rpc)
        for name in sorted(pending):
            info = infos.get(name)
            state = info["state"] if info else None
            if state == RUNNING:
                say(f"{name}: running (pid {info['pid']}), up for {STARTSECS}s")
                pending.discard(name)
            elif state in (BACKOFF, EXITED, FATAL):
                why = info["spawnerr"] or f"exit status {info['exitstatus']}"
                fail(
                    f"process {name} did not stay up for {STARTSECS}s ({info['statename']}: "
                    f"{why}); its output is in the container's log"
                )
        if pending and time.monotonic() >= deadline:
            fail(f"process(es) {' '.join(sorted(pending))} not running after {args.deadline}s")
        if pending:
            time.sleep(0.1)
    for name in removed:
        say(f"{name}: stopped and removed (no longer in the config)")
    if not names and not removed:
        say("no processes")


def with_lock(fn, args):
    """One sync at a time per container: a second waits (a switch back after a signal)."""
    import fcntl

    os.makedirs(RUN_DIR, mode=0o700, exist_ok=True)
    with open(os.path.join(RUN_DIR, "processes.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return fn(args)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    tool = argv.pop(0) if argv else ""
    if tool == "run":
        parser = argparse.ArgumentParser(prog="touchdeploy-run")
        parser.add_argument("--config")
        parser.add_argument("--pidfile")
        parser.add_argument("--stop")
        parser.add_argument("--timeout", type=float, default=5)
        parser.add_argument("command", nargs=argparse.REMAINDER)
        args = parser.parse_args(argv)
        if args.command and args.command[0] == "--":
            args.command = args.command[1:]
        return cmd_stop(args) if args.stop else cmd_run(args)
    if tool == "process":
        parser = argparse.ArgumentParser(prog="touchdeploy-process")
        parser.add_argument("name")
        return cmd_process(parser.parse_args(argv))
    if tool == "processes":
        parser = argparse.ArgumentParser(prog="touchdeploy-processes")
        parser.add_argument("action", choices=["sync", "write-conf"])
        parser.add_argument("--stop-timeout", type=float, default=10)
        parser.add_argument("--deadline", type=float, default=30)
        args = parser.parse_args(argv)
        if args.action == "write-conf":
            return cmd_write_conf(args)
        return with_lock(cmd_sync, args)
    fail(f"usage: touchdeploy_tool.py run|process|processes ... (got {tool!r})", 2)


if __name__ == "__main__":
    main()
