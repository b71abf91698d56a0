#!/usr/bin/env bash
# touchdeploy.sh: the host-side release engine of touchdeploy.
#
# An app root on the host is bind-mounted read-only into a long-lived uWSGI container. A code
# deploy fetches one commit into an immutable release directory, switches the `current` symlink
# atomically and touches the reload trigger once; uWSGI then reloads gracefully (~2 s).
#
#   touchdeploy.sh init     --root DIR [--reload-file NAME]
#   touchdeploy.sh prepare  --root DIR --repo URL --commit SHA [--ssh-key FILE] [--known-hosts FILE]
#   touchdeploy.sh activate --root DIR --commit SHA [--subdir PATH] [--reload-file NAME]
#                           [--health-url URL] [--health-timeout SECONDS] [--keep N]
#                           [--dependency-files "a b c"] [--container-fingerprint FP]
#   touchdeploy.sh deploy   --root DIR --repo URL --commit SHA  (prepare + activate; all options of both)
#   touchdeploy.sh rollback --root DIR [--to SHA] [--subdir PATH] [--reload-file NAME]
#                           [--health-url URL] [--health-timeout SECONDS]
#   touchdeploy.sh status   --root DIR    (prints the live commit; exit 3 if none)
#   touchdeploy.sh check    SUBCOMMAND [its options]  (validates them only; touches nothing)
# Every subcommand that changes something also takes --lock-timeout SECONDS (default 300).
#
# It is run by hand or, by the Pulumi program, as `bash -s -- SUBCOMMAND ARGS...` with this
# text on stdin (locally or over SSH as an unprivileged deploy user). Hence: everything is a
# function, `main "$@"` is the last line, nothing reads stdin, no environment variable needed.
#
# Layout under --root (see host/README.md):
#   releases/<sha>/    the commit's tree (git archive) + REVISION (the sha, no newline); read-only
#   current, previous  relative symlinks to releases/<sha>, switched by atomic rename
#   repo.git/          bare cache the commits are fetched into
#   shared/            operator files shared by all releases
#   .reload            the reload trigger uWSGI watches (--reload-file)
#   .lock, .lock.holder  per-root lock (flock) and who holds it ("pid sha started-at")
#
# Exit codes:
#   0  ok, or nothing to do (already prepared / already live)
#   1  unexpected failure, or a required host tool is missing
#   2  bad input (option or value), or the release lacks <subdir>/uwsgi.ini
#   3  nothing is live / nothing to roll back to
#   4  fetch failed, commit not found in the repository, or release not prepared
#   5  the commit's dependency fingerprint differs from the container's: container deploy needed
#   6  health check failed; switched back and the previous release is serving again
#   7  health check failed and nothing healthy serves: switching back failed too, or there was
#      no other release to switch back to (URGENT)
#   8  timed out waiting for another deploy's lock on the same root

set -Eeuo pipefail

readonly E_UNEXPECTED=1 E_USAGE=2 E_NOTHING=3 E_MISSING=4 E_DEPENDENCIES=5 E_ROLLED_BACK=6
readonly E_URGENT=7 E_LOCK=8

# ---------------------------------------------------------------------------------------------
# Output. Progress goes to stdout, one line per step with its duration; errors to stderr.

STEP_OPEN=0
STEP_T0=0

# Nanoseconds since the epoch. bash 5 has the clock built in (no fork of `date`, which matters
# when many hosts share a CPU, bench/README.md); bash 4.4 falls back to date.
if [[ -n ${EPOCHREALTIME:-} ]]; then
    now_ns() { local t=${EPOCHREALTIME/[.,]/}; printf '%s000' "$t"; }
    now_s() { printf '%s' "$EPOCHSECONDS"; }
else
    now_ns() { date +%s%N; }
    now_s() { date +%s; }
fi

# Seconds since $1 (a now_ns value), as "1.23s".
elapsed() {
    local d=$(($(now_ns) - $1))
    printf '%d.%02ds' $((d / 1000000000)) $((d % 1000000000 / 10000000))
}

say() { printf 'touchdeploy: %s\n' "$*"; }

# Starts a step line ("touchdeploy: fetch    abc from x ... "); step_done finishes it.
step() {
    printf 'touchdeploy: %-8s %s ... ' "$1" "$2"
    STEP_OPEN=1
    STEP_T0=$(now_ns)
}

step_done() {
    printf '%s in %s\n' "${1:-done}" "$(elapsed "$STEP_T0")"
    STEP_OPEN=0
}

# A step interrupted by an error or a warning still ends its line, so stdout stays readable.
close_step() {
    if ((STEP_OPEN)); then
        printf '%s\n' "${1:-...}"
        STEP_OPEN=0
    fi
}

warn() {
    close_step
    printf 'touchdeploy: warning: %s\n' "$*" >&2
}

die() {
    local code=$1
    shift
    close_step failed
    printf 'touchdeploy: error: %s\n' "$*" >&2
    exit "$code"
}

# A value as the user should see it in a message: quoted, control characters made visible.
show() { printf '%q' "$1"; }

short() { printf '%s' "${1:0:12}"; }

# Hides credentials in a URL: https://token@h/x and https://user:pass@h/x -> https://***@h/x,
# ssh://git:pass@h/x -> ssh://git:***@h/x. A plain ssh user (git@github.com) is kept.
redact() {
    local url=$1 re='^([A-Za-z][A-Za-z0-9+.-]*://)([^/@]*)@(.*)$'
    if [[ $url =~ $re ]]; then
        local scheme=${BASH_REMATCH[1]} userinfo=${BASH_REMATCH[2]} rest=${BASH_REMATCH[3]}
        if [[ $userinfo == *:* ]]; then
            userinfo="${userinfo%%:*}:***"
        elif [[ $scheme == http://* || $scheme == https://* ]]; then
            userinfo='***'
        fi
        url="$scheme$userinfo@$rest"
    fi
    printf '%s' "$url"
}

# Same for free text from git (its messages can quote the URL it was given).
redact_text() { sed -E 's#(://)[^/@[:space:]]*@#\1***@#g'; }

# Single-quotes a word for /bin/sh (GIT_SSH_COMMAND is run by sh, which may not be bash).
sh_quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

on_unexpected_error() {
    local code=$1 line=$2 cmd=$3
    trap - ERR
    close_step failed
    printf 'touchdeploy: error: unexpected failure (status %s) at line %s: %s; nothing was rolled back, check the output above\n' \
        "$code" "$line" "$cmd" >&2
    exit "$E_UNEXPECTED"
}

usage() {
    cat <<'EOF'
usage: touchdeploy.sh SUBCOMMAND --root DIR [options]
  init     --root DIR [--reload-file NAME]
  prepare  --root DIR --repo URL --commit SHA [--ssh-key FILE] [--known-hosts FILE]
  activate --root DIR --commit SHA [--subdir PATH] [--reload-file NAME] [--health-url URL]
           [--health-timeout SECONDS] [--keep N] [--dependency-files "a b c"]
           [--container-fingerprint FP]
  deploy   --root DIR --repo URL --commit SHA [options of prepare and activate]
  rollback --root DIR [--to SHA] [--subdir PATH] [--reload-file NAME] [--health-url URL]
           [--health-timeout SECONDS]
  status   --root DIR
  check    SUBCOMMAND [options]   validates the options of SUBCOMMAND; changes nothing
Changing subcommands also take --lock-timeout SECONDS (default 300).
Exit codes: 0 ok, 1 unexpected, 2 bad input, 3 nothing live, 4 fetch/commit/release missing,
5 dependencies changed, 6 unhealthy and rolled back, 7 unhealthy and rollback failed, 8 lock timeout.
EOF
}

# ---------------------------------------------------------------------------------------------
# Arguments. Everything is validated before anything is touched; no value is ever evaluated.

declare -A OPT=()
# 1 for `check`: validate values only (files are not required to exist here).
CHECK_ONLY=0

# The options each subcommand accepts.
options_of() {
    local prepare="repo commit ssh-key known-hosts"
    local activate="commit subdir reload-file health-url health-timeout keep dependency-files container-fingerprint"
    case $1 in
    init) echo "root reload-file lock-timeout" ;;
    prepare) echo "root $prepare lock-timeout" ;;
    activate) echo "root $activate lock-timeout" ;;
    deploy) echo "root repo ssh-key known-hosts $activate lock-timeout" ;;
    rollback) echo "root to subdir reload-file health-url health-timeout lock-timeout" ;;
    status) echo "root" ;;
    esac
}

parse_args() {
    local sub=$1
    shift
    local allowed name value
    allowed=" $(options_of "$sub") "
    while (($#)); do
        case $1 in
        --?*=*)
            name=${1%%=*}
            name=${name#--}
            value=${1#*=}
            shift
            ;;
        --?*)
            name=${1#--}
            if (($# < 2)); then
                die "$E_USAGE" "option --$(show "$name") needs a value"
            fi
            value=$2
            shift 2
            ;;
        *)
            die "$E_USAGE" "unexpected argument $(show "$1") for '$sub' (options are --name VALUE)"
            ;;
        esac
        if [[ ! $name =~ ^[a-z][a-z-]*$ || $allowed != *" $name "* ]]; then
            local accepted=() list
            read -r -a accepted <<<"$allowed"
            printf -v list ' --%s' "${accepted[@]}"
            die "$E_USAGE" "unknown option --$(show "$name") for '$sub' (accepted:$list)"
        fi
        if [[ -n ${OPT[$name]+set} ]]; then
            die "$E_USAGE" "option --$name given twice"
        fi
        OPT[$name]=$value
    done
}

bad() { die "$E_USAGE" "--$1 $(show "$2"): $3"; }

no_control_chars() {
    if [[ $2 == *[[:cntrl:]]* ]]; then
        bad "$1" "$2" "control characters (newline, tab, ...) are not allowed"
    fi
}

validate_sha() {
    [[ $2 =~ ^[0-9a-f]{40}$ ]] || bad "$1" "$2" "must be a full commit SHA: exactly 40 lowercase hex digits"
}

validate_root() {
    local v=$1
    no_control_chars root "$v"
    [[ $v == /* ]] || bad root "$v" "must be an absolute path"
    [[ /$v/ != */../* && /$v/ != */./* ]] || bad root "$v" "must not contain . or .. components"
    while [[ $v == */ && $v != / ]]; do v=${v%/}; done
    [[ $v != / ]] || bad root "$v" "must not be /"
    OPT[root]=$v
}

validate_repo() {
    local v=$1
    # Characters a repository URL or path needs; no quotes, spaces, $, `, ;, |, &, <, >, \ ...
    local charset='^[]A-Za-z0-9._~:/?#@!%+,=[-]+$'
    local scp='^[A-Za-z0-9_][A-Za-z0-9._-]*@[A-Za-z0-9_][A-Za-z0-9._-]*:.+$'
    no_control_chars repo "$v"
    [[ $v != -* ]] || bad repo "$v" "must not start with -"
    [[ $v =~ $charset ]] || bad repo "$v" "contains a character not allowed in a repository URL (percent-encode it)"
    [[ $v != *://-* && $v != *@-* ]] || bad repo "$v" "a host must not start with -"
    case $v in
    /* | file://?* | ssh://?* | https://?* | http://?* | git://?*) ;;
    *)
        # scp-like user@host:path (no / before the colon, else git reads it as a local path).
        [[ $v =~ $scp ]] ||
            bad repo "$v" "must be an absolute path, a file://, ssh://, https://, http:// or git:// URL, or user@host:path"
        ;;
    esac
}

# A relative path inside a release: used for --subdir and each --dependency-files entry.
# Plain path characters only: these also travel in container environment and log lines.
validate_relative_path() {
    local name=$1 v=$2
    no_control_chars "$name" "$v"
    [[ $v =~ ^[A-Za-z0-9._/@+-]+$ ]] ||
        bad "$name" "$v" "may only contain letters, digits and . _ / @ + -"
    [[ $v != /* ]] || bad "$name" "$v" "must be relative (to the release, or to the app subdir)"
    [[ $v != -* ]] || bad "$name" "$v" "must not start with -"
    [[ /$v/ != */../* ]] || bad "$name" "$v" "must not contain a .. component"
}

validate_reload_file() {
    local v=$1
    no_control_chars reload-file "$v"
    [[ -n $v && $v != */* && $v != . && $v != .. ]] ||
        bad reload-file "$v" "must be a plain file name in --root (no /)"
    [[ $v != -* ]] || bad reload-file "$v" "must not start with -"
    case $v in
    releases | current | previous | repo.git | shared | .lock | .lock.holder* | .current.tmp-* | .previous.tmp-*)
        bad reload-file "$v" "is one of touchdeploy's own names in --root"
        ;;
    esac
}

validate_health_url() {
    no_control_chars health-url "$1"
    [[ $1 =~ ^https?://[^[:space:]/]+(/[^[:space:]]*)?$ ]] ||
        bad health-url "$1" "must be an http:// or https:// URL without spaces"
}

validate_positive_int() {
    [[ $2 =~ ^[1-9][0-9]{0,5}$ ]] || bad "$1" "$2" "must be a positive integer (at most 999999)"
}

validate_file() {
    local name=$1 v=$2
    no_control_chars "$name" "$v"
    [[ $v != -* ]] || bad "$name" "$v" "must not start with -"
    ((CHECK_ONLY)) || [[ -f $v && -r $v ]] || bad "$name" "$v" "is not a readable file"
    [[ $v == /* ]] || OPT[$name]=$PWD/$v
}

validate_fingerprint() {
    [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$ ]] ||
        bad container-fingerprint "$1" "must be a fingerprint (hex digits) or 'unmanaged'"
}

# Fills the globals the commands use, with defaults, after checking every value.
validate_options() {
    local sub=$1 f
    [[ -n ${OPT[root]+set} ]] || die "$E_USAGE" "'$sub' needs --root DIR"
    validate_root "${OPT[root]}"
    case $sub in
    prepare | deploy)
        [[ -n ${OPT[repo]+set} ]] || die "$E_USAGE" "'$sub' needs --repo URL"
        ;;
    esac
    case $sub in
    prepare | activate | deploy)
        [[ -n ${OPT[commit]+set} ]] || die "$E_USAGE" "'$sub' needs --commit SHA"
        ;;
    esac
    [[ -z ${OPT[repo]+set} ]] || validate_repo "${OPT[repo]}"
    [[ -z ${OPT[commit]+set} ]] || validate_sha commit "${OPT[commit]}"
    [[ -z ${OPT[to]+set} ]] || validate_sha to "${OPT[to]}"
    [[ -z ${OPT[ssh-key]+set} ]] || validate_file ssh-key "${OPT[ssh-key]}"
    [[ -z ${OPT[known-hosts]+set} ]] || validate_file known-hosts "${OPT[known-hosts]}"
    if [[ -n ${OPT[known-hosts]+set} && -z ${OPT[ssh-key]+set} ]]; then
        die "$E_USAGE" "--known-hosts is only used with --ssh-key"
    fi
    # An empty --subdir means the release root, like no --subdir.
    if [[ -n ${OPT[subdir]:-} ]]; then
        validate_relative_path subdir "${OPT[subdir]}"
        f=${OPT[subdir]}
        while [[ $f == */ ]]; do f=${f%/}; done
        [[ $f != . ]] || f=
        OPT[subdir]=$f
    fi
    [[ -z ${OPT[reload-file]+set} ]] || validate_reload_file "${OPT[reload-file]}"
    [[ -z ${OPT[health-url]+set} ]] || validate_health_url "${OPT[health-url]}"
    local n
    for n in health-timeout keep lock-timeout; do
        [[ -z ${OPT[$n]+set} ]] || validate_positive_int "$n" "${OPT[$n]}"
    done
    DEPENDENCY_FILES=()
    if [[ -n ${OPT[dependency-files]+set} ]]; then
        no_control_chars dependency-files "${OPT[dependency-files]}"
        read -r -a DEPENDENCY_FILES <<<"${OPT[dependency-files]}"
        for f in "${DEPENDENCY_FILES[@]}"; do validate_relative_path dependency-files "$f"; done
    fi
    [[ -z ${OPT[container-fingerprint]+set} ]] || validate_fingerprint "${OPT[container-fingerprint]}"

    ROOT=${OPT[root]}
    REPO=${OPT[repo]-}
    COMMIT=${OPT[commit]-}
    SUBDIR=${OPT[subdir]-}
    RELOAD_FILE=${OPT[reload-file]-.reload}
    HEALTH_URL=${OPT[health-url]-}
    HEALTH_TIMEOUT=${OPT[health-timeout]-60}
    KEEP=${OPT[keep]-5}
    LOCK_TIMEOUT=${OPT[lock-timeout]-300}
}

# Names the missing tool and where it comes from, before anything changes.
require_tools() {
    local sub=$1 tool missing=()
    local tools="date readlink"
    case $sub in
    init) tools+=" mkdir touch stat flock git" ;;
    prepare) tools+=" mkdir touch stat flock git tar chmod mv rm sed" ;;
    activate | rollback) tools+=" mkdir touch stat flock git ln mv chmod rm ls sleep sha256sum" ;;
    deploy) tools+=" mkdir touch stat flock git tar ln mv chmod rm ls sleep sha256sum sed" ;;
    esac
    [[ -z $HEALTH_URL ]] || tools+=" curl"
    for tool in $tools; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    if ((${#missing[@]})); then
        die "$E_UNEXPECTED" "missing required tool(s) on this host: ${missing[*]} (touchdeploy needs bash, git, curl, flock from util-linux, tar and coreutils)"
    fi
    if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 4))); then
        die "$E_UNEXPECTED" "bash 4.4 or newer is required (this is $BASH_VERSION)"
    fi
}

# ---------------------------------------------------------------------------------------------
# The root, its lock and its symlinks.

TMP_RELEASE=

cleanup_on_exit() {
    # Our own half-extracted release, if we fail or are interrupted (not SIGKILL: the next
    # deploy removes those under the lock).
    if [[ -n $TMP_RELEASE && -e $TMP_RELEASE ]]; then
        chmod -R u+w -- "$TMP_RELEASE" 2>/dev/null || true
        rm -rf -- "$TMP_RELEASE" 2>/dev/null || true
    fi
}

# Creates the layout; idempotent. Dirs 0755 and files 0644 (umask 022) so that the container's
# user (uid 10001) can read whatever the deploy user writes.
init_root() {
    [[ -d $ROOT ]] || mkdir -p -- "$ROOT" || die "$E_UNEXPECTED" "cannot create --root $ROOT"
    [[ -w $ROOT ]] || die "$E_UNEXPECTED" "--root $ROOT is not writable by $(id -un 2>/dev/null || id -u): create it for the deploy user"
    acquire_lock
    mkdir -p -- "$ROOT/releases" "$ROOT/shared"
    clean_stale_tmp
    if [[ ! -f $ROOT/repo.git/HEAD ]]; then
        git init --quiet --bare -- "$ROOT/repo.git" 9>&-
    fi
    local link
    for link in current previous; do
        if [[ -e $ROOT/$link && ! -L $ROOT/$link ]]; then
            die "$E_UNEXPECTED" "$ROOT/$link exists and is not a symlink: move it away"
        fi
    done
    [[ -e $ROOT/$RELOAD_FILE ]] || : >"$ROOT/$RELOAD_FILE"
    local mode
    mode=$(stat -c %a -- "$ROOT")
    if (((8#$mode & 8#005) != 8#005)); then
        warn "$ROOT has mode $mode: the container's user (uid 10001) needs to read it (chmod 755)"
    fi
}

# One deploy per root at a time. flock is released by the kernel when the holder dies, even by
# SIGKILL, but only once no process has fd 9 open any more: every child that may run for long
# (git, tar, curl, and the subshells waiting for them) closes it first (9>&- / exec 9>&-), so
# an orphan left by a killed deploy (a git stuck on the network) cannot keep the lock.
acquire_lock() {
    local holder t0
    exec 9>>"$ROOT/.lock"
    if ! flock -n 9; then
        holder=$(lock_holder)
        say "lock     $ROOT is locked by another deploy (pid sha started-at: ${holder:-unknown}); waiting up to ${LOCK_TIMEOUT}s"
        t0=$(now_ns)
        flock -w "$LOCK_TIMEOUT" 9 ||
            die "$E_LOCK" "timed out after ${LOCK_TIMEOUT}s waiting for the lock on $ROOT, held by ${holder:-unknown} (pid sha started-at): wait for that deploy to finish, or check that pid"
        say "lock     acquired after $(elapsed "$t0")"
    fi
    # Written under another name and renamed: a waiter never reads a half-written file.
    printf '%s %s %s\n' "$$" "${COMMIT:-${OPT[to]:-rollback}}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        >"$ROOT/.lock.holder.tmp-$$"
    mv -f -- "$ROOT/.lock.holder.tmp-$$" "$ROOT/.lock.holder"
}

# "pid sha started-at" of the deploy holding the lock. The holder writes it just after it got
# the lock, so a pid that is not running (the previous holder's) means: not written yet.
lock_holder() {
    local holder pid tries=0
    while :; do
        holder=$(cat -- "$ROOT/.lock.holder" 2>/dev/null || true)
        pid=${holder%% *}
        if [[ $pid =~ ^[0-9]+$ && -d /proc/$pid ]] || ((++tries >= 10)); then
            break
        fi
        sleep 0.1
    done
    printf '%s' "${holder:-unknown}"
}

# The sha a symlink (current/previous) points to, or nothing.
link_sha() {
    local target
    target=$(readlink -- "$ROOT/$1" 2>/dev/null) || return 0
    if [[ $target =~ ^releases/([0-9a-f]{40})$ && -d $ROOT/$target ]]; then
        printf '%s' "${BASH_REMATCH[1]}"
    fi
}

# Points $ROOT/$1 at releases/$2 (or removes it for ""), atomically: a new symlink under a
# temporary name renamed over the old one, so readers always see a complete link.
set_link() {
    local name=$1 sha=$2 tmp="$ROOT/.$1.tmp-$$"
    if [[ -z $sha ]]; then
        rm -f -- "$ROOT/$name"
        return
    fi
    rm -f -- "$tmp"
    ln -s -- "releases/$sha" "$tmp"
    mv -fT -- "$tmp" "$ROOT/$name"
}

# Touches the trigger once. uWSGI compares mtimes in whole seconds, so a second deploy within
# the same second would be missed: the new mtime is max(now, previous mtime + 1).
touch_trigger() {
    local file="$ROOT/$RELOAD_FILE" now old t
    now=$(now_s)
    old=$(stat -c %Y -- "$file" 2>/dev/null || echo 0)
    t=$((now > old ? now : old + 1))
    touch -d "@$t" -- "$file" || die "$E_UNEXPECTED" "cannot touch the reload trigger $file"
    TRIGGER_NS=$(now_ns)
    say "reload   touched $RELOAD_FILE (mtime $t): uWSGI reloads gracefully"
}

# ---------------------------------------------------------------------------------------------
# prepare: fetch one commit into the cache, extract it into an immutable release.

git_cache() { git -C "$ROOT/repo.git" -c protocol.ext.allow=never "$@" 9>&-; }

# Fetches from $REPO: `git_fetch sha` fetches $COMMIT, `git_fetch refs` all branches and tags,
# forced (+) so rewritten history is fine, into refs/touchdeploy/. Credentials handled; git's
# stderr is returned redacted in FETCH_ERR. Every fetched commit keeps a ref
# (refs/touchdeploy/commits/<sha>, removed with its release): a fetch advertises the objects
# behind the cache's refs, so without one every fetch would transfer the whole history again.
git_fetch() {
    local ssh_cmd err rc=0 opts=(--quiet --no-tags) refspecs
    if [[ $1 == sha ]]; then
        refspecs=("+$COMMIT:refs/touchdeploy/commits/$COMMIT")
    else
        opts+=(--prune)
        refspecs=('+refs/heads/*:refs/touchdeploy/heads/*' '+refs/tags/*:refs/touchdeploy/tags/*')
    fi
    if [[ -n ${OPT[ssh-key]-} ]]; then
        ssh_cmd="ssh -i $(sh_quote "${OPT[ssh-key]}") -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o BatchMode=yes"
        if [[ -n ${OPT[known-hosts]-} ]]; then
            ssh_cmd+=" -o UserKnownHostsFile=$(sh_quote "${OPT[known-hosts]}")"
        fi
        err=$(
            exec 9>&-
            GIT_SSH_COMMAND=$ssh_cmd git_cache fetch "${opts[@]}" -- "$REPO" "${refspecs[@]}" 2>&1 >/dev/null
        ) || rc=$?
    else
        err=$(
            exec 9>&-
            git_cache fetch "${opts[@]}" -- "$REPO" "${refspecs[@]}" 2>&1 >/dev/null
        ) || rc=$?
    fi
    # git's own verdict: its fatal/error lines (else its last line), on one line.
    FETCH_ERR=$(printf '%s\n' "$err" | redact_text | sed -n -E '/^(fatal|error): /p' | head -n 2 | tr '\n' ' ')
    [[ -n $FETCH_ERR ]] || FETCH_ERR="$(printf '%s\n' "$err" | redact_text | sed -e '/^[[:space:]]*$/d' | tail -n 1) "
    return "$rc"
}

fetch_commit() {
    if git_cache cat-file -e "$COMMIT^{commit}" 2>/dev/null; then
        say "fetch    $(short "$COMMIT") already in the local cache (repo.git)"
        return
    fi
    step fetch "$(short "$COMMIT") from $(redact "$REPO")"
    # By SHA first (git's protocol v2 allows it). A server that refuses unadvertised objects
    # gets a second try with all branches and tags.
    if ! git_fetch sha; then
        local first_err=$FETCH_ERR
        printf 'by SHA failed, trying all branches and tags ... '
        if ! git_fetch refs; then
            die "$E_MISSING" "fetch of $(short "$COMMIT") from $(redact "$REPO") failed: ${FETCH_ERR:-$first_err}(check the URL, the network and the deploy key)"
        fi
    fi
    if ! git_cache cat-file -e "$COMMIT^{commit}" 2>/dev/null; then
        die "$E_MISSING" "commit $COMMIT not found in $(redact "$REPO"): push it first (or check the SHA); nothing was changed"
    fi
    git_cache update-ref "refs/touchdeploy/commits/$COMMIT" "$COMMIT"
    step_done
}

# Removes half-written releases of deploys that were killed (we hold the lock: none is ours).
clean_stale_tmp() {
    local d
    for d in "$ROOT"/releases/.tmp-*; do
        [[ -e $d ]] || continue
        chmod -R u+w -- "$d" 2>/dev/null || true
        if rm -rf -- "$d"; then
            say "clean    removed ${d#"$ROOT"/} left by an interrupted deploy"
        else
            warn "could not remove $d left by an interrupted deploy"
        fi
    done
    # Symlinks and the holder record a deploy killed between writing and renaming them left.
    rm -f -- "$ROOT"/.current.tmp-* "$ROOT"/.previous.tmp-* "$ROOT"/.lock.holder.tmp-*
}

extract_release() {
    local final="$ROOT/releases/$COMMIT" tmp="$ROOT/releases/.tmp-$COMMIT-$$"
    step extract "$(short "$COMMIT") into releases/"
    TMP_RELEASE=$tmp
    mkdir -- "$tmp"
    # tar.umask and --no-same-permissions: files 0644 / dirs 0755, whoever runs this (root's
    # tar would otherwise keep the archive's 0664 modes).
    (
        exec 9>&-
        git_cache -c tar.umask=0022 archive --format=tar "$COMMIT" |
            tar -x --no-same-owner --no-same-permissions -C "$tmp" -f -
    )
    # A REVISION in the commit (even a symlink pointing elsewhere) is replaced, never written through.
    rm -f -- "$tmp/REVISION"
    printf '%s' "$COMMIT" >"$tmp/REVISION"
    chmod -R a-w -- "$tmp"
    # Only a complete tree ever has the final name.
    mv -T -- "$tmp" "$final"
    TMP_RELEASE=
    step_done
}

do_prepare() {
    if [[ -d $ROOT/releases/$COMMIT ]]; then
        say "prepare  $(short "$COMMIT") already prepared"
        return
    fi
    fetch_commit
    extract_release
}

# ---------------------------------------------------------------------------------------------
# Health: what the server answers (status, X-Revision, X-Touchdeploy-Fingerprint).

HTTP_STATUS=000
HTTP_REVISION=
HTTP_FINGERPRINT=

probe() {
    local out line
    HTTP_STATUS=000
    HTTP_REVISION=''
    HTTP_FINGERPRINT=''
    HTTP_MS=0
    out=$(
        exec 9>&-
        curl --silent --noproxy '*' --globoff --connect-timeout 1 --max-time 2 \
            --output /dev/null --dump-header - \
            --write-out 'td-status:%{http_code}\ntd-time:%{time_total}\n' \
            --url "$HEALTH_URL" 2>/dev/null
    ) || true
    while IFS= read -r line; do
        line=${line%$'\r'}
        case ${line,,} in
        x-revision:*) HTTP_REVISION=$(trim "${line#*:}") ;;
        x-touchdeploy-fingerprint:*) HTTP_FINGERPRINT=$(trim "${line#*:}") ;;
        td-status:*) HTTP_STATUS=${line#*:} ;;
        td-time:*) [[ ${line#*:} =~ ^([0-9]+)[.,]([0-9]{3}) ]] &&
            HTTP_MS=$((10#${BASH_REMATCH[1]} * 1000 + 10#${BASH_REMATCH[2]})) ;;
        esac
    done <<<"$out"
}

# A uWSGI whose workers were spawned a moment ago can miss a reload: a worker that has not yet
# installed its signal handler never gets the master's "stop gracefully", keeps serving the old
# code, and the master waits out worker-reload-mercy (30 s) before forcing it (measured: 7 of
# 240 first deploys to fresh containers, bench/README.md). So the trigger is only touched for a
# server that answered promptly before the switch; one that is starting (no answer, or an
# answer that waited in the listen queue) is first waited for, and needs no touch at all when
# it comes up on the new release.
READY_MS=500
SETTLE_NS=500000000

server_was_running() {
    [[ -n $HEALTH_URL ]] || return 0
    probe
    [[ $HTTP_STATUS != 000 ]] && ((HTTP_MS < READY_MS))
}

reload_once_started() {
    local sha=$1 deadline first=0 now
    step start "the server is not answering yet: waiting for it to start (up to ${HEALTH_TIMEOUT}s)"
    deadline=$(($(now_ns) + HEALTH_TIMEOUT * 1000000000))
    while :; do
        probe
        now=$(now_ns)
        if [[ $HTTP_STATUS != 000 && $HTTP_REVISION == "$sha" ]]; then
            step_done "it started on releases/$(short "$sha"), no reload needed:"
            TRIGGER_NS=$now
            return 0
        fi
        if [[ $HTTP_STATUS != 000 ]]; then
            ((first)) || first=$now
            # Up, on the release it started with: reload it once its workers are settled.
            if ((now - first >= SETTLE_NS && HTTP_MS < READY_MS)); then
                step_done "up on $(short "${HTTP_REVISION:-unknown}")"
                touch_trigger
                return 0
            fi
        fi
        if ((now >= deadline)); then
            step_done "still not answering"
            touch_trigger
            return 0
        fi
        sleep 0.1 9>&-
    done
}

trim() {
    local v=$1
    v=${v#"${v%%[![:space:]]*}"}
    printf '%s' "${v%"${v##*[![:space:]]}"}"
}

# Polls until $1 is served with 200 (0) or gives up (1, reason in WHY). Fails fast when the new
# revision answers non-200 for 3 s: a broken app keeps answering 500 after a reload.
wait_served() {
    local sha=$1 deadline bad_since=0 now
    deadline=$(($(now_ns) + HEALTH_TIMEOUT * 1000000000))
    WHY=
    while :; do
        probe
        if [[ $HTTP_STATUS == 200 && $HTTP_REVISION == "$sha" ]]; then
            return 0
        fi
        now=$(now_ns)
        if [[ $HTTP_REVISION == "$sha" ]]; then
            ((bad_since)) || bad_since=$now
            if ((now - bad_since >= 3000000000)); then
                WHY="it answered HTTP $HTTP_STATUS for 3s"
                return 1
            fi
        else
            bad_since=0
        fi
        if ((now >= deadline)); then
            WHY="not served with HTTP 200 within ${HEALTH_TIMEOUT}s (last seen: HTTP $HTTP_STATUS, revision $(short "${HTTP_REVISION:-none}"))"
            return 1
        fi
        sleep 0.2 9>&-
    done
}

# True when $1 answers 200 with X-Revision $1 right now (used for "already live").
served_now() {
    [[ -n $HEALTH_URL ]] || return 0
    probe
    [[ $HTTP_STATUS == 200 && $HTTP_REVISION == "$1" ]]
}

# ---------------------------------------------------------------------------------------------
# Dependency guard: the container's image has the dependencies of some commit installed; a
# commit whose dependency files differ needs a container deploy, not a code deploy.

# sha256 of the lines "P\n<sha256 of P's content, or absent>\n" for each path, in the given
# order; the TypeScript side computes the same from git objects (symlink = its target text).
dependency_fingerprint() {
    local dir=$1 p h text=
    for p in "${DEPENDENCY_FILES[@]}"; do
        h=$(file_hash "$dir/$p")
        text+="$p"$'\n'"$h"$'\n'
    done
    h=$(printf '%s' "$text" | sha256sum)
    printf '%s' "${h%% *}"
}

file_hash() {
    local h
    if [[ -L $1 ]]; then
        h=$(printf '%s' "$(readlink -- "$1")" | sha256sum)
    elif [[ -f $1 ]]; then
        h=$(sha256sum <"$1")
    else
        printf absent
        return
    fi
    printf '%s' "${h%% *}"
}

dependency_guard() {
    local app_dir=$1 fp expected from changed=() p live live_dir
    [[ -n ${OPT[dependency-files]+set} ]] || return 0
    fp=$(dependency_fingerprint "$app_dir")
    expected=${OPT[container-fingerprint]-}
    from="--container-fingerprint"
    if [[ -z $expected && -n $HEALTH_URL ]]; then
        probe
        if [[ $HTTP_FINGERPRINT =~ ^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$ ]]; then
            expected=$HTTP_FINGERPRINT
            from="the X-Touchdeploy-Fingerprint of $HEALTH_URL"
        fi
    fi
    if [[ -z $expected ]]; then
        warn "dependency check skipped: the container's fingerprint is unknown (pass --container-fingerprint, or a --health-url that answers)"
        return 0
    fi
    if [[ $expected == unmanaged ]]; then
        warn "dependency check skipped: the container's dependencies are unmanaged"
        return 0
    fi
    if [[ $fp == "$expected" ]]; then
        say "deps     $(short "$COMMIT") has the container's dependency fingerprint $(short "$fp")"
        return 0
    fi
    # Which files differ from the live release (whose dependencies the container normally has).
    live=$(link_sha current)
    if [[ -n $live ]]; then
        live_dir="$ROOT/releases/$live${SUBDIR:+/$SUBDIR}"
        for p in "${DEPENDENCY_FILES[@]}"; do
            [[ $(file_hash "$app_dir/$p") == "$(file_hash "$live_dir/$p")" ]] || changed+=("$p")
        done
    fi
    die "$E_DEPENDENCIES" "commit $(short "$COMMIT") has dependency fingerprint $fp but the container runs $expected (from $from)${changed[*]:+; changed since live commit $(short "$live"): ${changed[*]}}: this commit changes dependencies: run a container deploy (pulumi up builds the image for them); nothing was switched"
}

# ---------------------------------------------------------------------------------------------
# activate / rollback: switch, touch once, wait until healthy, else switch back.

# Switches current (and previous), touches the trigger, waits for health. On failure switches
# back to what was live and exits 6 (or 7 when that is not healthy either). $1 = sha, $2 =
# verb for messages ("deploy" or "roll back to"), $3 = what previous becomes.
switch_and_verify() {
    local sha=$1 verb=$2 new_previous=$3
    local old_current old_previous
    local running=1
    old_current=$(link_sha current)
    old_previous=$(link_sha previous)
    server_was_running || running=0
    step switch "current -> releases/$(short "$sha")${old_current:+ (was $(short "$old_current"))}"
    set_link current "$sha"
    if [[ -n $new_previous && $new_previous != "$sha" ]]; then
        set_link previous "$new_previous"
    fi
    step_done
    # The release's mtime orders releases for pruning: the one just made live is the newest.
    touch -- "$ROOT/releases/$sha"
    if ((running)); then
        touch_trigger
    else
        reload_once_started "$sha"
    fi
    [[ -n $HEALTH_URL ]] || return 0

    step health "waiting for $(short "$sha") on $HEALTH_URL (up to ${HEALTH_TIMEOUT}s)"
    if wait_served "$sha"; then
        printf 'healthy %s after the reload\n' "$(elapsed "$TRIGGER_NS")"
        STEP_OPEN=0
        return 0
    fi
    close_step "unhealthy: $WHY"
    local why=$WHY
    if [[ $HTTP_STATUS == 200 && -n $HTTP_REVISION && $HTTP_REVISION != "$sha" ]]; then
        why+="; the server never reloaded: does its container mount $ROOT and watch $RELOAD_FILE (TOUCHDEPLOY_RELOAD_FILE)?"
    fi
    if [[ -z $old_current || $old_current == "$sha" ]]; then
        die "$E_URGENT" "URGENT: commit $(short "$sha") failed its health check ($why) and there is no other release to switch back to: nothing healthy is serving; fix it and deploy again, or run 'touchdeploy.sh rollback --to SHA'"
    fi
    step switch "back: current -> releases/$(short "$old_current")"
    set_link current "$old_current"
    set_link previous "$old_previous"
    step_done
    touch_trigger
    step health "waiting for $(short "$old_current") on $HEALTH_URL (up to ${HEALTH_TIMEOUT}s)"
    if wait_served "$old_current"; then
        printf 'healthy %s after the reload\n' "$(elapsed "$TRIGGER_NS")"
        STEP_OPEN=0
        die "$E_ROLLED_BACK" "could not $verb $(short "$sha"): it failed its health check ($why); switched back: commit $(short "$old_current") is serving again; fix the commit (see the container's log) and deploy again"
    fi
    die "$E_URGENT" "URGENT: could not $verb $(short "$sha") ($why) AND switching back to $(short "$old_current") did not become healthy ($WHY): the app is down; check the container (docker logs) now"
}

# Keeps the newest $KEEP releases by mtime, and always the live and previous ones.
prune_releases() {
    local live previous name n=0 removed=()
    live=$(link_sha current)
    previous=$(link_sha previous)
    step prune "keeping the newest $KEEP releases"
    # ls -t sorts by mtime (nanoseconds); names are checked to be 40 hex digits below.
    local names=()
    # shellcheck disable=SC2012
    mapfile -t names < <(ls -1t -- "$ROOT/releases")
    for name in "${names[@]}"; do
        [[ $name =~ ^[0-9a-f]{40}$ ]] || continue
        n=$((n + 1))
        if ((n <= KEEP)) || [[ $name == "$live" || $name == "$previous" ]]; then
            continue
        fi
        chmod -R u+w -- "$ROOT/releases/$name"
        rm -rf -- "${ROOT:?}/releases/$name"
        git_cache update-ref -d "refs/touchdeploy/commits/$name" 2>/dev/null || true
        removed+=("$(short "$name")")
    done
    step_done "removed ${#removed[@]}${removed[*]:+ (${removed[*]})}"
}

do_activate() {
    local rel="$ROOT/releases/$COMMIT" app_dir live
    [[ -d $rel ]] || die "$E_MISSING" "release $(short "$COMMIT") is not prepared under $ROOT/releases: run prepare first"
    app_dir="$rel${SUBDIR:+/$SUBDIR}"
    [[ -f $app_dir/uwsgi.ini ]] ||
        die "$E_USAGE" "commit $(short "$COMMIT") has no ${SUBDIR:+$SUBDIR/}uwsgi.ini: check --subdir (the app's directory in the repository); nothing was switched"
    dependency_guard "$app_dir"
    live=$(link_sha current)
    if [[ $live == "$COMMIT" ]] && served_now "$COMMIT"; then
        say "already live: $(short "$COMMIT")${HEALTH_URL:+ is served by $HEALTH_URL}; nothing to do"
        ALREADY_LIVE=1
        return 0
    fi
    switch_and_verify "$COMMIT" deploy "$live"
    prune_releases
}

# ---------------------------------------------------------------------------------------------
# Subcommands.

cmd_init() {
    init_root
    say "init     $ROOT ready (releases/, shared/, repo.git, $RELOAD_FILE)"
}

cmd_prepare() {
    local t0
    t0=$(now_ns)
    init_root
    do_prepare
    say "prepared $(short "$COMMIT") in $(elapsed "$t0")"
}

cmd_activate() {
    local t0
    t0=$(now_ns)
    ALREADY_LIVE=0
    init_root
    do_activate
    ((ALREADY_LIVE)) || say "deployed $(short "$COMMIT") in $(elapsed "$t0")"
}

cmd_deploy() {
    local t0
    t0=$(now_ns)
    ALREADY_LIVE=0
    init_root
    do_prepare
    do_activate
    ((ALREADY_LIVE)) || say "deployed $(short "$COMMIT") in $(elapsed "$t0")"
}

cmd_rollback() {
    local t0 live target
    t0=$(now_ns)
    init_root
    live=$(link_sha current)
    [[ -n $live ]] || die "$E_NOTHING" "nothing is live under $ROOT: nothing to roll back"
    if [[ -n ${OPT[to]-} ]]; then
        target=${OPT[to]}
        [[ -d $ROOT/releases/$target ]] ||
            die "$E_MISSING" "release $(short "$target") is not under $ROOT/releases (pruned or never deployed): deploy it instead"
    else
        target=$(link_sha previous)
        [[ -n $target ]] || die "$E_NOTHING" "nothing to roll back to: $ROOT has no previous release"
    fi
    if [[ $target == "$live" ]]; then
        say "already live: $(short "$target"); nothing to do"
        return 0
    fi
    if [[ -n ${OPT[subdir]+set} && ! -f $ROOT/releases/$target${SUBDIR:+/$SUBDIR}/uwsgi.ini ]]; then
        die "$E_USAGE" "release $(short "$target") has no ${SUBDIR:+$SUBDIR/}uwsgi.ini: check --subdir; nothing was switched"
    fi
    # previous becomes the release we leave, so a second rollback goes forward again.
    switch_and_verify "$target" "roll back to" "$live"
    say "rolled back to $(short "$target") in $(elapsed "$t0")"
}

cmd_status() {
    local live
    live=$(link_sha current)
    [[ -n $live ]] || die "$E_NOTHING" "nothing is live under $ROOT (no current release): deploy a commit first"
    printf '%s\n' "$live"
}

main() {
    # Nothing below may read the script text that bash -s is still reading from stdin.
    exec </dev/null
    umask 022
    export LC_ALL=C GIT_TERMINAL_PROMPT=0 GIT_ALLOW_PROTOCOL=file:git:http:https:ssh
    trap 'on_unexpected_error $? $LINENO "$BASH_COMMAND"' ERR
    trap cleanup_on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM HUP
    local sub=${1-}
    case $sub in
    init | prepare | activate | deploy | rollback | status) shift ;;
    check)
        # The same parsing and validation as the real subcommand, and nothing else: the
        # program's own validation is tested against this (test/unit/hostRules.test.ts).
        shift
        sub=${1-}
        case $sub in
        init | prepare | activate | deploy | rollback | status) shift ;;
        *) die "$E_USAGE" "check: unknown subcommand $(show "$sub") (init, prepare, activate, deploy, rollback, status)" ;;
        esac
        CHECK_ONLY=1
        parse_args "$sub" "$@"
        validate_options "$sub"
        say "check    $sub: every option is valid"
        exit 0
        ;;
    -h | --help | help)
        usage
        exit 0
        ;;
    '')
        usage >&2
        exit "$E_USAGE"
        ;;
    *) die "$E_USAGE" "unknown subcommand $(show "$sub") (init, prepare, activate, deploy, rollback, status)" ;;
    esac
    parse_args "$sub" "$@"
    validate_options "$sub"
    require_tools "$sub"
    "cmd_$sub"
}

main "$@"
