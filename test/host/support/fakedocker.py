#!/usr/bin/env python3
"""A stand-in for the `docker` CLI, for the host script's bash-only tests (python3 stdlib only).

The host script talks to the app's container in exactly four ways, and this emulates them on
the host, for one container whose description is in `$FAKE_DOCKER_STATE/container.json`
({name, root, subdir, user, running, env}):

- `docker inspect --type container --format '{{.State.Running}} {{.Config.User}}' -- NAME`
  prints `true|false UID:GID` (an unknown NAME: "No such container", exit 1);
- `docker exec [-w DIR] NAME touchdeploy-run ...` runs the REAL runtime tool
  (runtime/touchdeploy_tool.py, with runtime/touchdeploy_env.py) as the host user, the way the
  image's /usr/local/bin/touchdeploy-run does, with TOUCHDEPLOY_ROOT set to the app root: every
  argument that starts with /srv/app is translated to the root (the bind mount), /tmp/touchdeploy
  to `$FAKE_DOCKER_STATE/run` (the container's own /tmp), and the environment is the
  container's (`env` of container.json plus the image's TOUCHDEPLOY_* variables), not the
  caller's. So the release command really runs with the config version's env and secrets
  applied by the image's code, in the new release, and `--stop` really signals its group;
- `docker exec NAME touchdeploy-generations status ...` runs the REAL runtime command
  (runtime/touchdeploy_generations.py) the same way: it reads `$FAKE_DOCKER_STATE/run`, where the
  stand-in server in `--mode generations` records its starts;
- `docker exec NAME touchdeploy-processes sync --stop-timeout S --deadline D` is emulated (the
  real one drives supervisord over XML-RPC, which a bash-only suite does not have): every
  process it started before is stopped (SIGTERM to its process group, SIGKILL after S, with
  the real tool's code), then every process of the live config (`<root>/config/processes`) is
  started with the real `touchdeploy_tool.py process NAME` in its own session, and each must
  still run after `$FAKE_STARTSECS` seconds (default 0.5; supervisord's startsecs is 3 in the
  image), else "error: process NAME did not stay up" and exit 1.

What it does not emulate: supervisord's autorestart, startretries and log handling, Docker's
user switching (everything runs as the test's user) and a real mount (paths are rewritten).
Each call is logged to `$FAKE_DOCKER_STATE/events.log` as one JSON object per line; processes'
output goes to `$FAKE_DOCKER_STATE/process-<name>.log`.
"""

import fcntl
import json
import os
import subprocess
import sys
import time

# Nothing written next to the code (runtime/ is the image's build context; /etc/touchdeploy is
# read-only for the container's user).
sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
# The image's tools: runtime/ in the repository, or the copy fakeDocker() makes next to this
# file's copy (a deploy user other than the test's must be able to read them, wherever the
# checkout lives).
RUNTIME = os.environ.get("FAKE_DOCKER_RUNTIME") or os.path.normpath(
    os.path.join(HERE, "..", "..", "..", "runtime")
)
TOOL = os.path.join(RUNTIME, "touchdeploy_tool.py")
GENERATIONS = os.path.join(RUNTIME, "touchdeploy_generations.py")
STATE = os.environ["FAKE_DOCKER_STATE"]
STARTSECS = float(os.environ.get("FAKE_STARTSECS", "0.5"))


def load():
    with open(os.path.join(STATE, "container.json")) as f:
        return json.load(f)


def log(event, **fields):
    with open(os.path.join(STATE, "events.log"), "a") as f:
        f.write(json.dumps({"t": time.time_ns(), "event": event, **fields}) + "\n")


def container_env(c):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": STATE,
        "LC_ALL": "C.UTF-8",
        "TOUCHDEPLOY_ROOT": c["root"],
        "TOUCHDEPLOY_APP_SUBDIR": c.get("subdir", ""),
        "TOUCHDEPLOY_RUN_DIR": os.path.join(STATE, "run"),
    }
    env.update(c.get("env", {}))
    return env


def translate(arg, c):
    if arg == "/srv/app" or arg.startswith("/srv/app/"):
        return c["root"] + arg[len("/srv/app") :]
    if arg == "/tmp/touchdeploy" or arg.startswith("/tmp/touchdeploy/"):
        return os.path.join(STATE, "run") + arg[len("/tmp/touchdeploy") :]
    return arg


def fail(message, code=1):
    sys.stderr.write(message + "\n")
    sys.exit(code)


def inspect(args, c):
    name = args[-1]
    if name != c["name"]:
        fail(f"Error: No such container: {name}")
    log("inspect", name=name)
    print(f"{'true' if c.get('running', True) else 'false'} {c['user']}")


def exec_(args, c):
    workdir = None
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in ("-w", "--workdir"):
            workdir = args.pop(0)
        elif flag in ("-i", "--interactive"):
            pass
        else:
            fail(f"fakedocker: unsupported exec flag {flag}", 125)
    name, command = args[0], args[1:]
    if name != c["name"]:
        fail(f"Error response from daemon: No such container: {name}")
    if not c.get("running", True):
        fail(f"Error response from daemon: container {name} is not running")
    log("exec", workdir=workdir, argv=command)
    env = container_env(c)
    cwd = translate(workdir, c) if workdir else c["root"]
    tool = command[0]
    if tool == "touchdeploy-run":
        argv = [sys.executable, "-I", TOOL, "run", *[translate(a, c) for a in command[1:]]]
        os.chdir(cwd)
        os.execve(sys.executable, argv, env)
    if tool == "touchdeploy-processes":
        return processes(command[1:], c, env)
    if tool == "touchdeploy-generations":
        # The real command (its status answer reads the run dir's status file, which the
        # stand-in writes with the same module in --mode generations).
        argv = [sys.executable, "-I", GENERATIONS, *[translate(a, c) for a in command[1:]]]
        os.chdir(cwd)
        os.execve(sys.executable, argv, env)
    fail(f"fakedocker: unsupported command {tool}", 126)


# --- the processes (supervisord's part) ---------------------------------------------------------


def procs_file():
    return os.path.join(STATE, "procs.json")


def read_procs():
    try:
        with open(procs_file()) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def write_procs(procs):
    tmp = procs_file() + ".tmp"
    with open(tmp, "w") as f:
        json.dump(procs, f)
    os.replace(tmp, procs_file())


def read_text(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def processes(args, c, env):
    if args[:1] != ["sync"]:
        fail(f"fakedocker: unsupported touchdeploy-processes {args}", 126)
    stop_timeout = float(args[args.index("--stop-timeout") + 1])
    os.environ["TOUCHDEPLOY_ROOT"] = c["root"]
    sys.path.insert(0, RUNTIME)
    import touchdeploy_tool  # the real reader and stopper, with TOUCHDEPLOY_ROOT set

    os.makedirs(os.path.join(STATE, "run"), exist_ok=True)
    with open(os.path.join(STATE, "run", "processes.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        procs = read_procs()
        for name, info in sorted(procs.items()):
            how = touchdeploy_tool.stop_group(info["pid"], stop_timeout) or "had exited"
            log("stop", name=name, pid=info["pid"], how=how)
            print(f"{name}: {how}", flush=True)
        procs = {}
        write_procs(procs)
        wanted = [name for name, _ in touchdeploy_tool.read_processes()]
        revision = read_text(os.path.join(c["root"], "current", "REVISION"))
        version = read_text(os.path.join(c["root"], "config", "VERSION"))
        for name in wanted:
            out = open(os.path.join(STATE, f"process-{name}.log"), "ab")
            child = subprocess.Popen(
                [sys.executable, "-I", TOOL, "process", name],
                env=env,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            procs[name] = {"pid": child.pid, "revision": revision, "config": version}
            log("start", name=name, pid=child.pid, revision=revision, config=version)
            globals().setdefault("children", {})[name] = child
        write_procs(procs)
        time.sleep(STARTSECS)
        for name in wanted:
            child = globals()["children"][name]
            code = child.poll()
            if code is not None:
                log("died", name=name, pid=child.pid, status=code)
                print(f"error: process {name} did not stay up for {STARTSECS}s (exit status {code})")
                sys.exit(1)
            print(f"{name}: running (pid {child.pid}), up for {STARTSECS}s", flush=True)
        if not wanted:
            print("no processes", flush=True)


def ps(args, c):
    """`docker ps -a --filter label=KEY=VALUE --format '{{.Names}}'`: the container's name when
    its root matches a `label=touchdeploy.root=ROOT` filter (containerArgs labels it so)."""
    wanted = None
    while args:
        flag = args.pop(0)
        if flag in ("-a", "--all"):
            continue
        if flag == "--filter":
            wanted = args.pop(0)
        elif flag == "--format":
            if args.pop(0) != "{{.Names}}":
                fail("fakedocker: ps supports only --format '{{.Names}}'", 125)
        else:
            fail(f"fakedocker: unsupported ps flag {flag}", 125)
    log("ps", filter=wanted)
    if c.get("exists", True) and wanted == f"label=touchdeploy.root={c['root']}":
        print(c["name"])


def main():
    args = sys.argv[1:]
    c = load()
    if not args:
        fail("fakedocker: no command", 125)
    if c.get("daemon") == "down":
        fail(
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
            "Is the docker daemon running?"
        )
    if args[0] == "ps":
        return ps(args[1:], c)
    if args[0] == "inspect":
        return inspect(args[1:], c)
    if args[0] == "exec":
        return exec_(args[1:], c)
    fail(f"fakedocker: unsupported command {args[0]}", 125)


if __name__ == "__main__":
    main()
