#!/usr/bin/env bash
# touchdeploy.sh: the host-side release engine of touchdeploy.
#
# An app root on the host is bind-mounted read-only into a long-lived uWSGI container. A code
# deploy fetches one commit into an immutable release directory, switches the `current` symlink
# atomically, touches the reload trigger once and waits until the server serves the commit, or
# switches back. After any failure or signal, what is live is a release that passed its health
# check; a deploy killed outright (SIGKILL) is switched back by the next run (see STEPS).
#
# It is run by hand or, by the Pulumi program, as `bash -s -- SUBCOMMAND ARGS...` with this text
# on stdin (locally or over SSH as an unprivileged deploy user). Hence: only tables and function
# definitions at the top level, `main "$@"` is the last line, nothing reads stdin, and no
# environment variable is needed (TOUCHDEPLOY_TRACE=1 traces; see `--help`).
#
# Each rule lives in one place, a table below, from which `--help` is printed:
#   SUBCOMMANDS  what each subcommand takes, runs and needs
#   OPTIONS      each option's value, default and meaning (checked by valid_<option>)
#   STEPS        each step, in order, and what undoes it
#   RESERVED     the names touchdeploy owns in --root
#   EXIT_CODES   each exit code and what to do next (host/README.md and README.md agree)

set -Eeuo pipefail

readonly E_UNEXPECTED=1 E_USAGE=2 E_NOTHING=3 E_MISSING=4 E_DEPENDENCIES=5 E_ROLLED_BACK=6
readonly E_URGENT=7 E_LOCK=8 E_COMMAND=9

# Where the container sees the app root (runtime/Dockerfile: TOUCHDEPLOY_ROOT), and the
# container's user when the deploy user is root (the image's default user).
readonly CONTAINER_ROOT=/srv/app DEFAULT_CONTAINER_USER=10001:10001

# ---------------------------------------------------------------------------------------------
# Tables.

# One row per subcommand, fields separated by |:
#   name | old name (an alias, same behaviour) | required options | optional options (@fetch:
#   those of fetch) | the steps it runs, in order (see STEPS) | tools it needs besides bash and
#   coreutils | what it does.
SUBCOMMANDS=(
    'setup    | init     | root             | reload-file state-dirs lock-timeout | lock recover layout | flock git | create the layout and the state directories under --root (idempotent); print the container'"'"'s user'
    'fetch    | prepare  | root repo commit | ssh-key known-hosts credentials-file fetch-timeout lock-timeout | lock recover layout fetch extract | flock git tar | fetch the commit into releases/<sha> (nothing live changes)'
    'release  | activate | root commit      | subdir reload-file health-url health-timeout keep dependency-files container-fingerprint container release-command release-command-timeout process-stop-timeout payload lock-timeout | lock recover check command switch reload health restart prune | flock git realpath sha256sum | make a fetched release live with its env: release command, switch, reload once, wait until healthy, restart the processes, else switch back'
    'deploy   |          | root repo commit | @fetch @release | lock recover layout fetch extract check command switch reload health restart prune | flock git tar realpath sha256sum | fetch + release'
    'rollback |          | root             | to subdir reload-file health-url health-timeout container process-stop-timeout lock-timeout | lock recover target check switch reload health restart | flock realpath | switch to the release --to names (with the live env), else to previous (with its env), as release does'
    'status   |          | root             | | status | | print the live commit: the last one that passed its health check (exit 3 if none)'
    'destroy  |          | root             | reload-file lock-timeout | lock destroy | flock | remove what touchdeploy made under --root; keep shared/ and state/; remove the root only if then empty'
)

# One row per option: name | value | default (empty: none) | meaning. valid_<name> checks a
# value and sets the global of the same name in capitals (reload-file -> RELOAD_FILE).
OPTIONS=(
    'root                  | DIR     |         | the app root on this host: absolute, no . or .., not /'
    'repo                  | URL     |         | absolute path or file:// (spaces allowed), ssh://, https://, http://, git://, or user@host:path'
    'commit                | SHA     |         | the commit: 40 lowercase hex digits'
    'to                    | SHA     |         | the release to roll back to (default: previous)'
    'subdir                | PATH    |         | the app directory in the repository, holding uwsgi.ini (default: the top)'
    'reload-file           | NAME    | .reload | the reload trigger in --root (a plain file name, not a reserved one)'
    'health-url            | URL     |         | polled until it answers 200 with X-Revision: <sha> (http:// or https://)'
    'health-timeout        | SECONDS | 60      | how long a release may take to be served'
    'keep                  | N       | 5       | releases kept by prune, besides current, previous and recently fetched ones'
    'dependency-files      | "A B"   |         | files (relative to --subdir) whose fingerprint must match the container'"'"'s'
    'container-fingerprint | FP      |         | the container'"'"'s fingerprint, or unmanaged (default: its X-Touchdeploy-Fingerprint)'
    'container             | NAME    |         | the app'"'"'s container here: docker exec runs the release command and the processes in it'
    'release-command       | CMD     |         | run once before the switch in the container (sh -c), in the new release'"'"'s app dir, with the new env'
    'release-command-timeout | SECONDS | 600   | deadline of the release command (then SIGTERM, 5 s, SIGKILL)'
    'process-stop-timeout  | SECONDS | 10      | when the processes restart: SIGTERM, this long, then SIGKILL'
    'payload               | stdin   |         | the app'"'"'s env, secrets and processes follow the script on stdin (NUL-terminated records)'
    'state-dirs            | "A B"   |         | directories <root>/state/<name> the container'"'"'s user may write (mounted at /srv/state/<name>)'
    'ssh-key               | FILE    |         | private key for fetching over SSH'
    'known-hosts           | FILE    |         | known_hosts for fetching over SSH (only with --ssh-key)'
    'credentials-file      | FILE    |         | USER:PASSWORD or a token, one line, mode 0600, for an https:// or http:// --repo'
    'fetch-timeout         | SECONDS | 600     | deadline of the fetch and of the extraction (a stalled transfer ends after 30 s)'
    'lock-timeout          | SECONDS | 300     | how long to wait for another run holding the lock on --root'
)

# The steps, in the order subcommands run them, and what undoes each when a later step fails
# or a signal (TERM, INT, HUP) arrives. Phases as Capistrano's: starting, updating (nothing
# live changes), publishing (from the switch until the health check passes, a failure or
# signal switches back), finishing (the result stands). A new step goes into SUBCOMMANDS'
# steps column and gets a step_<name> function; one between extract and switch is "updating".
#   name | phase | what it does | undone by
STEPS=(
    'lock    | starting   | take <root>/.lock (flock, --lock-timeout), check it is still that file | the kernel, when the run ends'
    'recover | starting   | switch back a release a killed run left unverified (the journal)       | -'
    'target  | starting   | rollback: choose --to or previous                                      | -'
    'layout  | starting   | create releases/, shared/, repo.git, the trigger                       | - (idempotent)'
    'fetch   | updating   | fetch the commit into repo.git (by SHA, else branches and tags)        | temporary packs removed'
    'extract | updating   | git archive into releases/.tmp-*, renamed releases/<sha> when complete | the temporary directory removed'
    'check   | updating   | everything that can fail, before the switch; the env written; new links made aside | the temporaries and the unused env version removed'
    'command | updating   | the release command in the container, in the new release, with the new env | - (nothing switched: stopped on a deadline or signal)'
    'switch  | publishing | write the journal, then rename previous, config and current            | switch back: every link from the journal'
    'reload  | publishing | touch the trigger once (or wait for a starting server)                 | touch again after switching back'
    'health  | publishing | wait until the commit and its env are served with 200                  | as switch'
    'restart | publishing | restart the processes on the new release and env, check each stays up; then remove the journal | as switch, then restart them on the old ones'
    'prune   | finishing  | remove old releases and their cache refs, and env versions no link points to; problems are warnings | - (the release stands)'
    'destroy | finishing  | remove what touchdeploy made under --root, keeping shared/ and state/; nothing while a container labelled with the root exists | -'
)

# Names touchdeploy owns in --root (glob patterns): never a --reload-file. destroy removes all
# of them but shared and state.
RESERVED=(releases current previous repo.git shared state .ssh .history '.lock*' '.switch*'
    '.current.*' '.previous.*' '.tmp-*' configs config previous-config '.config.*'
    '.previous-config.*')

#   code | meaning; what to do next
EXIT_CODES=(
    '0   | ok, or nothing to do (already fetched, already live)'
    '1   | a host problem (a missing tool, a path not writable, a foreign file in the way) or an unexpected failure before the switch; nothing live changed; fix what the message names and run again'
    '2   | bad input (an option or value), or the release lacks <subdir>/uwsgi.ini; nothing changed; fix the option or the commit'
    '3   | nothing is live, or nothing to roll back to; deploy a commit first'
    '4   | the fetch failed, the commit is not in the repository, or the release is not fetched; nothing live changed; push the commit, check the URL, the network and the key, or run fetch'
    '5   | the commit'"'"'s dependency fingerprint differs from the container'"'"'s, or cannot be known, or the container runs as a user that cannot read the app'"'"'s env and state; nothing live changed; run a container deploy (pulumi up)'
    '6   | the release failed its health check, or failed or was interrupted after the switch; switched back: the previous release serves again; fix and deploy again'
    '7   | URGENT: nothing healthy serves (switching back did not become healthy, or there was nothing to switch back to); check the container now, then rollback --to SHA'
    '8   | another run held the lock on --root longer than --lock-timeout; nothing changed; wait for it, or check the pid in <root>/.lock.holder'
    '9   | the release command failed (or timed out); nothing was switched: the live release and its env still serve; fix the command or the commit (its output is above) and deploy again'
    '129 | interrupted by SIGHUP before the switch; nothing live changed; run it again'
    '130 | interrupted by SIGINT before the switch; nothing live changed; run it again'
    '143 | interrupted by SIGTERM before the switch; nothing live changed; run it again'
)

# ---------------------------------------------------------------------------------------------
# Output. Progress goes to stdout, one line per step with its duration; errors to stderr, one
# `touchdeploy: error:` line. A closed stdout (a dropped SSH session) never stops a deploy.

STEP_OPEN=0
STEP_T0=0
NOW=0
NOW_S=0

# The clock, without forks (bash 5 has it built in); bash 4.4 falls back to date.
if [[ -n ${EPOCHREALTIME:-} ]]; then
    now() {
        local t=${EPOCHREALTIME/[.,]/}
        NOW=${t}000
        NOW_S=${t:0:${#t}-6}
    }
else
    now() {
        NOW=$(date +%s%N)
        NOW_S=${NOW:0:${#NOW}-9}
    }
fi

# Seconds since $1 (a NOW value), as "1.23s".
elapsed() {
    now
    local d=$((NOW - $1))
    printf '%d.%02ds' $((d / 1000000000)) $((d % 1000000000 / 10000000))
}

# shellcheck disable=SC2059 # the format is always ours
out() { printf "$@" 2>/dev/null || true; }

say() { out 'touchdeploy: %s\n' "$*"; }

# Starts a step line ("touchdeploy: fetch    abc from x ... "); step_done finishes it.
step() {
    out 'touchdeploy: %-8s %s ... ' "$1" "$2"
    STEP_OPEN=1
    now
    STEP_T0=$NOW
}

step_done() {
    out '%s in %s\n' "${1:-done}" "$(elapsed "$STEP_T0")"
    STEP_OPEN=0
}

# A step interrupted by an error or a warning still ends its line, so stdout stays readable.
close_step() {
    if ((STEP_OPEN)); then
        out '%s\n' "${1:-...}"
        STEP_OPEN=0
    fi
}

warn() {
    close_step
    printf 'touchdeploy: warning: %s\n' "$*" >&2 2>/dev/null || true
}

die() {
    local code=$1
    shift
    close_step failed
    printf 'touchdeploy: error: %s\n' "$*" >&2 2>/dev/null || true
    exit "$code"
}

# A value as the user should see it in a message: quoted, control characters made visible.
show() { printf '%q' "$1"; }

short() { printf '%s' "${1:0:12}"; }

# "releases/<short sha>", or $2 when there is no sha.
release_shown() {
    if [[ -n $1 ]]; then printf 'releases/%s' "${1:0:12}"; else printf '%s' "$2"; fi
}

# Who runs this, for messages ("uid 1500 (deploy)"); id -un of a uid without a name prints the
# number and fails, so it is only used when it names someone.
who_am_i() {
    local name
    name=$(id -un 2>/dev/null) || name=
    [[ -n $name && $name != "$EUID" ]] && printf 'uid %s (%s)' "$EUID" "$name" || printf 'uid %s' "$EUID"
}

# Hides credentials in a URL: any user info of an http(s) URL (https://token@h, https://u:p@h)
# becomes ***, a password elsewhere (ssh://git:pass@h) becomes git:***, and every query value
# (?access_token=...) becomes ***. A plain scp-like user (git@github.com:x) is kept.
redact() {
    local url=$1 re='^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)(.*)$'
    if [[ $url =~ $re ]]; then
        local scheme=${BASH_REMATCH[1]} auth=${BASH_REMATCH[2]} rest=${BASH_REMATCH[3]} userinfo
        if [[ $auth == *@* ]]; then
            userinfo=${auth%@*}
            if [[ $scheme == [Hh][Tt][Tt][Pp]://* || $scheme == [Hh][Tt][Tt][Pp][Ss]://* ]]; then
                userinfo='***'
            elif [[ $userinfo == *:* ]]; then
                userinfo="${userinfo%%:*}:***"
            fi
            auth="$userinfo@${auth##*@}"
        fi
        if [[ $rest == *\?* ]]; then
            local path=${rest%%\?*} query=${rest#*\?} fragment='' part parts=() kept=()
            if [[ $query == *#* ]]; then
                fragment="#${query#*#}"
                query=${query%%#*}
            fi
            IFS='&' read -r -a parts <<<"$query"
            for part in "${parts[@]}"; do
                [[ $part != *=* ]] || part="${part%%=*}=***"
                kept+=("$part")
            done
            rest="$path?$(
                IFS='&'
                printf '%s' "${kept[*]}"
            )$fragment"
        fi
        url=$scheme$auth$rest
    fi
    printf '%s' "$url"
}

# Same for free text from git or curl (their messages can quote a URL).
redact_text() { sed -E -e 's#(://)[^/@[:space:]]*@#\1***@#g' -e 's#([?&][^=&[:space:]]*=)[^&[:space:]]*#\1***#g'; }

# Single-quotes a word for /bin/sh (GIT_SSH_COMMAND is run by sh, which may not be bash).
sh_quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# Splits a table row on | and trims each field into the array ROW (word splitting with IFS=|
# and no globbing: no here-string, no process).
row() {
    local field fields IFS='|'
    set -f
    # shellcheck disable=SC2206 # split on | on purpose
    fields=($1)
    set +f
    ROW=()
    for field in "${fields[@]}"; do
        field=${field#"${field%%[![:space:]]*}"}
        ROW+=("${field%"${field##*[![:space:]]}"}")
    done
}

# The tables' rows by name, split once: SUB_ROWS[name] and OPTION_ROWS[name] hold the row's
# index; ALIASES[old name] the new one.
declare -A SUB_ROWS=() OPTION_ROWS=() ALIASES=()
index_tables() {
    local i
    for i in "${!SUBCOMMANDS[@]}"; do
        row "${SUBCOMMANDS[$i]}"
        SUB_ROWS[${ROW[0]}]=$i
        [[ -z ${ROW[1]} ]] || ALIASES[${ROW[1]}]=${ROW[0]}
    done
    for i in "${!OPTIONS[@]}"; do
        row "${OPTIONS[$i]}"
        OPTION_ROWS[${ROW[0]}]=$i
    done
}

# ---------------------------------------------------------------------------------------------
# Help, printed from the tables.

# Sets SUB_ROW (the SUBCOMMANDS row of $1 or its old name), or returns 1.
find_subcommand() {
    local name=${ALIASES[${1:-.}]:-${1:-.}}
    [[ -n ${SUB_ROWS[$name]+x} ]] || return 1
    row "${SUBCOMMANDS[${SUB_ROWS[$name]}]}"
    SUB_ROW=("${ROW[@]}")
}

# The options of subcommand row SUB_ROW: REQUIRED and ALLOWED (required + optional) arrays;
# "@fetch" in the optional column stands for all of fetch's options.
options_of_row() {
    local word words w
    # shellcheck disable=SC2206 # option names: plain words
    REQUIRED=(${SUB_ROW[2]})
    ALLOWED=("${REQUIRED[@]}")
    for word in ${SUB_ROW[3]}; do
        words=("$word")
        if [[ $word == @* ]]; then
            row "${SUBCOMMANDS[${SUB_ROWS[${word#@}]}]}"
            # shellcheck disable=SC2206 # option names: plain words
            words=(${ROW[2]} ${ROW[3]})
        fi
        for w in "${words[@]}"; do
            [[ " ${ALLOWED[*]} " == *" $w "* ]] || ALLOWED+=("$w")
        done
    done
}

# Sets OPTION_ROW for option $1, or returns 1.
find_option() {
    [[ -n ${OPTION_ROWS[$1]+x} ]] || return 1
    row "${OPTIONS[${OPTION_ROWS[$1]}]}"
    OPTION_ROW=("${ROW[@]}")
}

usage() {
    local r o line words width=96 name
    printf 'usage: touchdeploy.sh SUBCOMMAND --root DIR [--option VALUE ...]\n\n'
    printf 'Subcommands (the old name in brackets is still accepted):\n'
    for r in "${SUBCOMMANDS[@]}"; do
        row "$r"
        SUB_ROW=("${ROW[@]}")
        name=${SUB_ROW[0]}
        options_of_row
        words=()
        for o in "${ALLOWED[@]}"; do
            find_option "$o"
            if [[ " ${REQUIRED[*]} " == *" $o "* ]]; then
                words+=("--$o ${OPTION_ROW[1]}")
            else
                words+=("[--$o ${OPTION_ROW[1]}]")
            fi
        done
        line=$(printf '  %-8s' "$name")
        for o in "${words[@]}"; do
            if ((${#line} + ${#o} + 1 > width)); then
                printf '%s\n' "$line"
                line=$(printf '  %-8s' '')
            fi
            line+=" $o"
        done
        printf '%s\n' "$line"
        printf '  %-8s %s%s\n' '' "${SUB_ROW[6]}" "${SUB_ROW[1]:+ [${SUB_ROW[1]}]}"
    done
    printf '  %-8s %s\n  %-8s %s\n' check 'SUBCOMMAND [its options]' '' \
        'validate the options exactly as SUBCOMMAND would; change nothing'
    printf '\nOptions (--name VALUE or --name=VALUE, each at most once):\n'
    for r in "${OPTIONS[@]}"; do
        row "$r"
        printf '  %-32s %s%s\n' "--${ROW[0]} ${ROW[1]}" "${ROW[3]}" "${ROW[2]:+ (default ${ROW[2]})}"
    done
    printf '\nSteps, in order, and what undoes each (a failure or signal after the switch switches back):\n'
    for r in "${STEPS[@]}"; do
        row "$r"
        printf '  %-8s %-11s %s; undone by: %s\n' "${ROW[0]}" "${ROW[1]}" "${ROW[2]}" "${ROW[3]}"
    done
    printf '\nNames reserved in --root: %s\n' "${RESERVED[*]}"
    printf '\nExit codes:\n'
    for r in "${EXIT_CODES[@]}"; do
        row "$r"
        printf '  %-4s %s\n' "${ROW[0]}" "${ROW[1]}"
    done
    printf '\nEnvironment: TOUCHDEPLOY_TRACE=1 traces every command on stderr (set -x; never credentials or secrets).\n'
}

# ---------------------------------------------------------------------------------------------
# Arguments. Everything is validated before anything is touched; no value is ever evaluated.

# The options' globals (OPTIONS), set by validate_options to the checked value or the default.
ROOT='' REPO='' COMMIT='' TO='' SUBDIR='' RELOAD_FILE='' HEALTH_URL='' HEALTH_TIMEOUT=''
KEEP='' CONTAINER_FINGERPRINT='' SSH_KEY='' KNOWN_HOSTS='' CREDENTIALS_FILE=''
FETCH_TIMEOUT='' LOCK_TIMEOUT='' CONTAINER='' RELEASE_COMMAND='' RELEASE_COMMAND_TIMEOUT=''
PROCESS_STOP_TIMEOUT='' PAYLOAD=''
DEPENDENCY_FILES=() STATE_DIRS=()

# 1 for `check`: validate values only (files are not required to exist here).
CHECK_ONLY=0

parse_args() {
    local sub=$1 name value o
    shift
    declare -gA GIVEN=()
    options_of_row
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
        if [[ ! $name =~ ^[a-z][a-z-]*$ || " ${ALLOWED[*]} " != *" $name "* ]]; then
            local list
            printf -v list ' --%s' "${ALLOWED[@]}"
            die "$E_USAGE" "unknown option --$(show "$name") for '$sub' (accepted:$list)"
        fi
        if [[ -n ${GIVEN[$name]+set} ]]; then
            die "$E_USAGE" "option --$name given twice"
        fi
        GIVEN[$name]=$value
    done
    for o in "${REQUIRED[@]}"; do
        find_option "$o"
        [[ -n ${GIVEN[$o]+set} ]] || die "$E_USAGE" "'$sub' needs --$o ${OPTION_ROW[1]}"
    done
}

bad() {
    local value
    value=$(show "$2")
    case $1 in
    repo | health-url)
        value=$(show "$(redact "$2")")
        value=${value//\\\*/*}
        ;;
    esac
    die "$E_USAGE" "--$1 $value: $3"
}

no_control_chars() {
    if [[ $2 == *[[:cntrl:]]* ]]; then
        bad "$1" "$2" "control characters (newline, tab, ...) are not allowed"
    fi
}

# Fills every option's global: the validated value, else the default.
validate_options() {
    local r name var
    DEPENDENCY_FILES=() STATE_DIRS=()
    for r in "${OPTIONS[@]}"; do
        row "$r"
        name=${ROW[0]}
        var=${name^^}
        var=${var//-/_}
        case $name in
        dependency-files | state-dirs) ;; # lists, empty by default
        *) printf -v "$var" '%s' "${ROW[2]}" ;;
        esac
        if [[ -n ${GIVEN[$name]+set} ]]; then
            "valid_${name//-/_}" "${GIVEN[$name]}"
        fi
    done
    GIVEN_REPO=${GIVEN[repo]-}
    valid_combination
    # What messages show, made before a trace could show the values they hide.
    REPO_SHOWN=$(redact "$GIVEN_REPO")
    HEALTH_SHOWN=$(redact "$HEALTH_URL")
    unset GIVEN
}

valid_root() {
    local v=$1
    no_control_chars root "$v"
    [[ $v == /* ]] || bad root "$v" "must be an absolute path"
    [[ /$v/ != */../* && /$v/ != */./* ]] || bad root "$v" "must not contain . or .. components"
    while [[ $v == */ && $v != / ]]; do v=${v%/}; done
    [[ $v != / ]] || bad root "$v" "must not be /"
    ROOT=$v
}

# Sets REPO (as git gets it: without credentials), and GIT_USERNAME/GIT_PASSWORD from the user
# info of an http(s) URL (percent-decoded, as git would). A local path or file:// URL may
# contain spaces; URLs are percent-encoded.
valid_repo() {
    local v=$1 charset
    local url_chars='^[]A-Za-z0-9._~:/?#@!%+,=[-]+$' local_chars='^[]A-Za-z0-9._~:/?#@!%+,=[ -]+$'
    local scp='^[A-Za-z0-9_][A-Za-z0-9._-]*@[A-Za-z0-9_][A-Za-z0-9._-]*:.+$'
    no_control_chars repo "$v"
    [[ $v != -* ]] || bad repo "$v" "must not start with -"
    case $v in /* | file://*) charset=$local_chars ;; *) charset=$url_chars ;; esac
    [[ $v =~ $charset ]] || bad repo "$v" "contains a character not allowed in a repository URL (percent-encode it; spaces only in a local path)"
    [[ $v != *://-* && $v != *@-* ]] || bad repo "$v" "a host must not start with -"
    case $v in
    /* | file://?* | ssh://?* | https://?* | http://?* | git://?*) ;;
    *)
        # scp-like user@host:path (no / before the colon, else git reads it as a local path).
        [[ $v =~ $scp ]] ||
            bad repo "$v" "must be an absolute path, a file://, ssh://, https://, http:// or git:// URL, or user@host:path"
        ;;
    esac
    REPO=$v
    GIT_USERNAME=
    GIT_PASSWORD=
    URL_CREDENTIALS=0
    local re='^(https?://)([^/?#]*)@([^/?#@]+)(.*)$'
    if [[ $v =~ $re ]]; then
        local userinfo=${BASH_REMATCH[2]}
        REPO=${BASH_REMATCH[1]}${BASH_REMATCH[3]}${BASH_REMATCH[4]}
        URL_CREDENTIALS=1
        if [[ $userinfo == *:* ]]; then
            GIT_USERNAME=$(percent_decode "${userinfo%%:*}")
            GIT_PASSWORD=$(percent_decode "${userinfo#*:}")
        else
            # A token alone (https://TOKEN@host): git sends it as the user name.
            GIT_USERNAME=$(percent_decode "$userinfo")
        fi
    fi
}

percent_decode() { printf '%b' "${1//%/\\x}"; }

valid_commit() { valid_sha commit "$1" COMMIT; }
valid_to() { valid_sha to "$1" TO; }

valid_sha() {
    [[ $2 =~ ^[0-9a-f]{40}$ ]] || bad "$1" "$2" "must be a full commit SHA: exactly 40 lowercase hex digits"
    printf -v "$3" '%s' "$2"
}

# A relative path inside a release: --subdir and each --dependency-files entry. Plain path
# characters only (they also travel in container environment and log lines). Sets NORMALIZED
# (no ./ components, no repeated or trailing /).
valid_relative_path() {
    local name=$1 v=$2 part parts=() kept=()
    no_control_chars "$name" "$v"
    [[ $v =~ ^[A-Za-z0-9._/@+-]+$ ]] ||
        bad "$name" "$v" "may only contain letters, digits and . _ / @ + -"
    [[ $v != /* ]] || bad "$name" "$v" "must be relative (to the release, or to the app subdir)"
    [[ $v != -* ]] || bad "$name" "$v" "must not start with -"
    [[ /$v/ != */../* ]] || bad "$name" "$v" "must not contain a .. component"
    IFS=/ read -r -a parts <<<"$v"
    for part in "${parts[@]}"; do
        [[ -z $part || $part == . ]] || kept+=("$part")
    done
    local IFS=/
    NORMALIZED="${kept[*]}"
}

# An empty --subdir means the release's top, like no --subdir.
valid_subdir() {
    SUBDIR=
    [[ -n $1 ]] || return 0
    valid_relative_path subdir "$1"
    SUBDIR=$NORMALIZED
}

# True when $1 is one of touchdeploy's own names in --root (RESERVED).
is_reserved() {
    local pattern
    for pattern in "${RESERVED[@]}"; do
        # shellcheck disable=SC2053 # the pattern is a glob on purpose
        [[ $1 == $pattern ]] && return 0
    done
    return 1
}

# Returns 1 (with WHY) unless $1 is a plain file name the trigger may have.
reload_file_ok() {
    WHY=
    if [[ $1 == *[[:cntrl:]]* ]]; then
        WHY="control characters (newline, tab, ...) are not allowed"
    elif [[ -z $1 || $1 == */* || $1 == . || $1 == .. ]]; then
        WHY="must be a plain file name in --root (no /)"
    elif [[ $1 == -* ]]; then
        WHY="must not start with -"
    elif is_reserved "$1"; then
        WHY="is one of touchdeploy's own names in --root"
    fi
    [[ -z $WHY ]]
}

valid_reload_file() {
    reload_file_ok "$1" || bad reload-file "$1" "$WHY"
    RELOAD_FILE=$1
}

# Also prepares CURL_CONFIG: curl reads the URL and any user info from stdin, never argv.
valid_health_url() {
    local v=$1 re='^(https?://)(([^/@[:space:]]*)@)?([^/[:space:]@]+)(/[^[:space:]]*)?$' url
    no_control_chars health-url "$v"
    [[ $v =~ ^https?://[^[:space:]/]+(/[^[:space:]]*)?$ && $v =~ $re ]] ||
        bad health-url "$v" "must be an http:// or https:// URL without spaces"
    HEALTH_URL=$v
    url=${BASH_REMATCH[1]}${BASH_REMATCH[4]}${BASH_REMATCH[5]}
    CURL_CONFIG="url = \"$(curl_escape "$url")\""
    if [[ -n ${BASH_REMATCH[2]} ]]; then
        CURL_CONFIG+=$'\n'"user = \"$(curl_escape "$(percent_decode "${BASH_REMATCH[3]}")")\""
    fi
}

curl_escape() {
    local v=${1//\\/\\\\}
    printf '%s' "${v//\"/\\\"}"
}

valid_positive_int() {
    [[ $2 =~ ^[1-9][0-9]{0,5}$ ]] || bad "$1" "$2" "must be a positive integer (at most 999999)"
    printf -v "$3" '%s' "$2"
}

valid_health_timeout() { valid_positive_int health-timeout "$1" HEALTH_TIMEOUT; }
valid_keep() { valid_positive_int keep "$1" KEEP; }
valid_lock_timeout() { valid_positive_int lock-timeout "$1" LOCK_TIMEOUT; }
valid_fetch_timeout() { valid_positive_int fetch-timeout "$1" FETCH_TIMEOUT; }

# An empty list means no dependency check, like no option.
valid_dependency_files() {
    local f list=()
    no_control_chars dependency-files "$1"
    read -r -a list <<<"$1"
    DEPENDENCY_FILES=()
    for f in "${list[@]}"; do
        valid_relative_path dependency-files "$f"
        DEPENDENCY_FILES+=("$NORMALIZED")
    done
}

valid_container_fingerprint() {
    [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$ ]] ||
        bad container-fingerprint "$1" "must be a fingerprint (hex digits) or 'unmanaged'"
    CONTAINER_FINGERPRINT=$1
}

# A Docker container name (as `docker run --name` accepts it).
valid_container() {
    [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$ ]] ||
        bad container "$1" "must be a Docker container name (letters, digits, _ . -; at most 128)"
    CONTAINER=$1
}

# Any text (run by sh -c in the container, never by this script); empty means none. One
# argument of execve(2): at most MAX_ARG bytes.
readonly MAX_ARG=131071
valid_release_command() {
    ((${#1} <= MAX_ARG)) || bad release-command "${1:0:40}..." "is ${#1} bytes: at most $MAX_ARG (one argument of execve(2)); put a script in the repository and run that"
    RELEASE_COMMAND=$1
}

valid_release_command_timeout() { valid_positive_int release-command-timeout "$1" RELEASE_COMMAND_TIMEOUT; }
valid_process_stop_timeout() { valid_positive_int process-stop-timeout "$1" PROCESS_STOP_TIMEOUT; }

valid_payload() {
    [[ $1 == stdin ]] || bad payload "$1" "must be 'stdin' (the records follow the script on stdin)"
    PAYLOAD=stdin
}

# Names of directories under <root>/state/ (an empty list: none).
valid_state_dirs() {
    local d list=()
    no_control_chars state-dirs "$1"
    read -r -a list <<<"$1"
    STATE_DIRS=()
    for d in "${list[@]}"; do
        [[ $d =~ ^[a-z][a-z0-9_-]{0,30}$ ]] ||
            bad state-dirs "$d" "must be a name of lowercase letters, digits, _ and - (at most 31, starting with a letter)"
        [[ " ${STATE_DIRS[*]} " != *" $d "* ]] || bad state-dirs "$d" "is given twice"
        STATE_DIRS+=("$d")
    done
}

valid_file() {
    local name=$1 v=$2
    no_control_chars "$name" "$v"
    [[ $v != -* ]] || bad "$name" "$v" "must not start with -"
    ((CHECK_ONLY)) || [[ -f $v && -r $v ]] || bad "$name" "$v" "is not a readable file"
    [[ $v == /* ]] || v=$PWD/$v
    VALID_FILE=$v
}

valid_ssh_key() {
    valid_file ssh-key "$1"
    SSH_KEY=$VALID_FILE
}

valid_known_hosts() {
    valid_file known-hosts "$1"
    KNOWN_HOSTS=$VALID_FILE
}

# USER:PASSWORD or a token alone, on the first line; readable by its owner only.
valid_credentials_file() {
    local mode line
    valid_file credentials-file "$1"
    CREDENTIALS_FILE=$VALID_FILE
    ((CHECK_ONLY)) && return 0
    mode=$(stat -c %a -- "$CREDENTIALS_FILE")
    (((8#$mode & 8#077) == 0)) ||
        bad credentials-file "$1" "is readable by others (mode $mode): chmod 600 it"
    line=
    { IFS= read -r line || true; } <"$CREDENTIALS_FILE"
    line=${line%$'\r'}
    [[ -n $line && $line != *[[:cntrl:]]* ]] ||
        bad credentials-file "$1" "must hold USER:PASSWORD or a token on its first line"
    if [[ $line == *:* ]]; then
        FILE_USERNAME=${line%%:*}
        FILE_PASSWORD=${line#*:}
    else
        FILE_USERNAME=
        FILE_PASSWORD=$line
    fi
}

valid_combination() {
    GUARD=0
    ((${#DEPENDENCY_FILES[@]} == 0)) || GUARD=1
    if [[ -n $KNOWN_HOSTS && -z $SSH_KEY ]]; then
        die "$E_USAGE" "--known-hosts is only used with --ssh-key"
    fi
    if [[ -n $CREDENTIALS_FILE ]]; then
        [[ $REPO == http://* || $REPO == https://* ]] ||
            die "$E_USAGE" "--credentials-file is only used with an https:// or http:// --repo"
        ((!URL_CREDENTIALS)) ||
            die "$E_USAGE" "--repo carries credentials and --credentials-file too: give them once, in the file"
        GIT_USERNAME=${FILE_USERNAME:-${GIT_USERNAME:-x-access-token}}
        GIT_PASSWORD=${FILE_PASSWORD-}
    fi
    if ((GUARD)) && [[ -z $CONTAINER_FINGERPRINT && -z $HEALTH_URL ]]; then
        die "$E_USAGE" "--dependency-files needs --container-fingerprint (or a --health-url whose server sends X-Touchdeploy-Fingerprint)"
    fi
    if [[ -n $RELEASE_COMMAND && -z $CONTAINER ]]; then
        die "$E_USAGE" "--release-command needs --container NAME (it runs in the app's container)"
    fi
}

# Names the missing tool and where it comes from, before anything changes.
require_tools() {
    local tool missing=() tools="timeout readlink mkdir ln mv rm stat touch chmod sort ${SUB_ROW[5]}"
    [[ -z $HEALTH_URL ]] || tools+=" curl"
    [[ -z $CONTAINER ]] || tools+=" docker"
    [[ -z $PAYLOAD ]] || tools+=" cmp chown"
    for tool in $tools; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    if ((${#missing[@]})); then
        die "$E_UNEXPECTED" "missing required tool(s) on this host: ${missing[*]} (touchdeploy needs bash, git, curl, flock from util-linux, tar, coreutils, diffutils, and docker with --container)"
    fi
    if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 4))); then
        die "$E_UNEXPECTED" "bash 4.4 or newer is required (this is $BASH_VERSION)"
    fi
}

# ---------------------------------------------------------------------------------------------
# Running commands: every one that can take long gets a deadline and runs in the background,
# so a signal is handled at once (bash runs a trap only after a foreground command ends).

MAIN_PID=
CHILD=
RUN_DIR=
# before: nothing live changed | switched: the journal exists, a failure switches back |
# undoing: switching back | committed: the release passed its health check and stands.
PHASE=before
STEP_NAME=start

# Runs "$@" under `timeout` (which puts it in its own process group, killed whole on a
# signal) with output to $RUN_DIR/out, and waits for it. Returns its status (124: deadline).
run_limited() {
    local secs=$1 rc
    shift
    timeout -k 5 "$secs" "$@" >"${RUN_DIR:-/dev/null}/${RUN_DIR:+out}" 2>&1 </dev/null 9>&- &
    CHILD=$!
    while :; do
        rc=0
        wait "$CHILD" || rc=$?
        # Above 128 may only mean that a trapped signal interrupted `wait`: then it still runs.
        if ((rc > 128)) && kill -0 "$CHILD" 2>/dev/null; then
            continue
        fi
        break
    done
    CHILD=
    return "$rc"
}

# What the last run_limited command printed.
last_output() {
    [[ -n $RUN_DIR && -f $RUN_DIR/out ]] || return 0
    printf '%s' "$(<"$RUN_DIR/out")"
}

kill_child() {
    if [[ -n $CHILD ]]; then
        kill -KILL -- "-$CHILD" 2>/dev/null || kill -KILL "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
        CHILD=
    fi
}

# git on the cache, for local plumbing: quick, bounded anyway.
git_local() { timeout -k 5 120 git -C "$ROOT/repo.git" -c protocol.ext.allow=never "$@" 9>&-; }

# ---------------------------------------------------------------------------------------------
# Signals and failures. Before the switch: say so and exit (nothing live changed). After it:
# switch back, as a failed health check does. After the health check: the release stands.

on_signal() {
    local sig=$1 code
    case $sig in HUP) code=129 ;; INT) code=130 ;; *) code=143 ;; esac
    kill_child
    ((!COMMAND_RUNNING)) || stop_command
    case $PHASE in
    switched)
        undo_switch "interrupted by SIG$sig during the $STEP_NAME step" signal
        ;;
    committed)
        close_step interrupted
        warn "interrupted by SIG$sig during the $STEP_NAME step, after $(short "$COMMIT") passed its health check: it stays live"
        exit 0
        ;;
    *)
        die "$code" "interrupted by SIG$sig during the $STEP_NAME step: nothing live changed; run it again"
        ;;
    esac
}

on_err() {
    local code=$1 line=$2 cmd=$3
    # A subshell leaves the report to the shell that ran it: one error line, not three.
    [[ $BASHPID == "$MAIN_PID" ]] || exit "$code"
    trap - ERR
    case $PHASE in
    switched)
        undo_switch "an unexpected failure (status $code at line $line: $cmd)" failure
        ;;
    committed)
        warn "unexpected failure (status $code at line $line: $cmd) after $(short "$COMMIT") passed its health check: it stays live"
        exit 0
        ;;
    *)
        die "$E_UNEXPECTED" "unexpected failure (status $code) at line $line: $cmd; nothing live changed, see the output above"
        ;;
    esac
}

# A known failure: before the switch it is an error with its own code; after it, a reason to
# switch back.
fail() {
    local code=$1
    shift
    if [[ $PHASE == switched ]]; then
        close_step failed
        undo_switch "$*" failure
    fi
    die "$code" "$*"
}

TMP_RELEASE=
FETCHING=0
MADE_LINKS=0

on_exit() {
    kill_child
    ((!COMMAND_RUNNING)) || stop_command
    # Our own half-extracted release, or our own fetch's debris (SIGKILL leaves them to the next
    # run, which removes them under the lock).
    if [[ -n $TMP_RELEASE && -e $TMP_RELEASE ]]; then
        chmod -R u+w -- "$TMP_RELEASE" 2>/dev/null || true
        rm -rf -- "$TMP_RELEASE" 2>/dev/null || true
    fi
    ((!FETCHING)) || clean_fetch_debris
    # The links this run prepared and did not use (only ours: others' are the next run's), and
    # the journal's entries once the journal itself is gone.
    if ((MADE_LINKS)); then
        remove_aside_links
        [[ -L $ROOT/.switch ]] || remove_journal_entries
    fi
    # A config version this run wrote and nothing points to (the release failed or was
    # switched back): it holds secrets nobody can use.
    [[ -z $TMP_CONFIG ]] || rm -rf -- "$TMP_CONFIG" 2>/dev/null || true
    if [[ -n $CONFIG_MADE ]] && config_unreferenced "$CONFIG_MADE"; then
        rm -rf -- "$ROOT/configs/$CONFIG_MADE" 2>/dev/null || true
    fi
    [[ -z $RUN_DIR ]] || rm -rf -- "$RUN_DIR" 2>/dev/null || true
}

# A pause point for the fault-injection tests (test/host/): with TOUCHDEPLOY_TEST_PAUSE_AT=$1,
# write "$1 PID" to TOUCHDEPLOY_TEST_PAUSE_FILE and wait (at most 120 s) until the test
# removes it; a signal sent meanwhile is handled here, at this step boundary.
boundary() {
    [[ ${TOUCHDEPLOY_TEST_PAUSE_AT-} == "$1" && -n ${TOUCHDEPLOY_TEST_PAUSE_FILE-} ]] || return 0
    local file=$TOUCHDEPLOY_TEST_PAUSE_FILE deadline
    printf '%s %s\n' "$1" "$$" >"$file.tmp" && mv -f -- "$file.tmp" "$file"
    now
    deadline=$((NOW_S + 120))
    while [[ -e $file ]] && ((NOW_S < deadline)); do
        sleep 0.02
        now
    done
}

# ---------------------------------------------------------------------------------------------
# The root, its lock and its links.

link_sha() {
    local target
    target=$(readlink -- "$ROOT/$1" 2>/dev/null) || return 0
    if [[ $target =~ ^releases/([0-9a-f]{40})$ ]] && release_ok "${BASH_REMATCH[1]}"; then
        printf '%s' "${BASH_REMATCH[1]}"
    fi
}

# A release is complete: a real directory (never a symlink) whose REVISION file holds its sha.
release_ok() {
    local dir=$ROOT/releases/$1 revision=
    [[ -d $dir && ! -L $dir && -f $dir/REVISION && ! -L $dir/REVISION ]] || return 1
    { IFS= read -r revision || true; } <"$dir/REVISION"
    [[ $revision == "$1" ]]
}

# The sha a journal entry points to ("" for none or a missing release).
journal_sha() {
    local target
    target=$(readlink -- "$ROOT/.switch.$1" 2>/dev/null) || return 0
    if [[ $target =~ ^releases/([0-9a-f]{40})$ ]]; then
        printf '%s' "${BASH_REMATCH[1]}"
    fi
}

# The links switched together, in the order they are switched: the release (current) last.
LINKS=(previous-config previous config current)

remove_aside_links() {
    local name
    for name in "${LINKS[@]}"; do
        rm -f -- "$ROOT/.$name.new" "$ROOT/.$name.restore" 2>/dev/null || true
    done
}

remove_journal_entries() {
    local name
    for name in "${LINKS[@]}"; do
        rm -f -- "$ROOT/.switch.$name" 2>/dev/null || true
    done
}

# Makes $2 a link like $1, without a new inode when it can (a hard link to the symlink: works
# on a full disk), else a new symlink with the same target.
copy_link() {
    ln -P -- "$ROOT/$1" "$ROOT/$2" 2>/dev/null ||
        ln -s -- "$(readlink -- "$ROOT/$1")" "$ROOT/$2" 2>/dev/null
}

# Renames the link $1 over the link $2 (names in the root). When both already point to the same
# place (they may even be the same inode: mv refuses "the same file"), $1 just goes.
replace_link() {
    if [[ -L $ROOT/$2 && $(readlink -- "$ROOT/$1") == "$(readlink -- "$ROOT/$2")" ]]; then
        rm -f -- "$ROOT/$1"
    else
        mv -fT -- "$ROOT/$1" "$ROOT/$2"
    fi
}

# Appends "time event sha" to the release history (.history): prune orders releases by it. A
# history that cannot be written (a full disk) only makes prune less informed.
history_add() {
    now
    { printf '%s %s %s\n' "$NOW" "$1" "$2" >>"$ROOT/.history"; } 2>/dev/null ||
        warn "could not record '$1 $(short "$2")' in $ROOT/.history (disk full?): prune will order releases by time instead"
}

step_lock() {
    if [[ ! -d $ROOT ]]; then
        case ${SUB_ROW[0]} in
        setup | fetch | deploy)
            mkdir -p -- "$ROOT" 2>/dev/null ||
                die "$E_UNEXPECTED" "cannot create --root $ROOT as $(who_am_i): create it for the deploy user"
            ;;
        release) die "$E_MISSING" "nothing is fetched under $ROOT (no such directory; is --root right?): run fetch first" ;;
        rollback) die "$E_NOTHING" "nothing is live under $ROOT (no such directory; is --root right?): nothing to roll back" ;;
        *)
            say "destroy  $ROOT does not exist: nothing to remove"
            DONE_EARLY=1
            return 0
            ;;
        esac
    fi
    [[ -w $ROOT && -x $ROOT ]] ||
        die "$E_UNEXPECTED" "--root $ROOT is not writable by $(who_am_i): create it for the deploy user"
    acquire_lock
}

# One run per root at a time: flock on the root directory itself (a lock file could be
# removed while held, letting a second run in). The kernel releases it when the holder dies,
# even by SIGKILL, once no process has fd 9 open any more: every child closes it (9>&-), so an
# orphan left by a killed run (a git stuck on the network) cannot keep the lock.
acquire_lock() {
    local holder deadline t0 left rc
    now
    t0=$NOW
    deadline=$((NOW_S + LOCK_TIMEOUT))
    for _ in 1 2 3; do
        if ! { exec 9<"$ROOT"; } 2>/dev/null; then
            die "$E_UNEXPECTED" "cannot open --root $ROOT to lock it as $(who_am_i)"
        fi
        if ! flock -n 9; then
            holder=$(lock_holder)
            say "lock     $ROOT is locked by another deploy (pid sha started-at: ${holder:-unknown}); waiting up to ${LOCK_TIMEOUT}s"
            now
            left=$((deadline - NOW_S))
            ((left > 0)) || left=1
            rc=0
            flock -w "$left" 9 </dev/null &
            CHILD=$!
            while :; do
                rc=0
                wait "$CHILD" || rc=$?
                if ((rc > 128)) && kill -0 "$CHILD" 2>/dev/null; then continue; fi
                break
            done
            CHILD=
            ((rc == 0)) ||
                die "$E_LOCK" "timed out after ${LOCK_TIMEOUT}s waiting for the lock on $ROOT, held by ${holder:-unknown} (pid sha started-at): wait for that deploy to finish, or check that pid"
            say "lock     acquired after $(elapsed "$t0")"
        fi
        # Removed or replaced while we waited (destroy, or by hand)? A lock on a directory that is
        # no longer --root excludes nobody: lock the new one.
        if [[ ! -e /proc/$BASHPID/fd/9 || /proc/$BASHPID/fd/9 -ef $ROOT ]]; then
            write_holder
            return 0
        fi
        exec 9<&-
        say "lock     $ROOT was removed or replaced while we waited: locking it again"
        if [[ ! -d $ROOT ]]; then
            step_lock
            return 0
        fi
    done
    die "$E_UNEXPECTED" "--root $ROOT keeps being replaced while we wait for its lock: is something removing it?"
}

# Best effort: a full disk must not fail the run (a rollback above all).
write_holder() {
    local tmp="$ROOT/.lock.holder.tmp-$$" started
    started=$(TZ=UTC printf '%(%Y-%m-%dT%H:%M:%SZ)T' -1)
    if { printf '%s %s %s\n' "$$" "${COMMIT:-${TO:-${SUB_ROW[0]}}}" "$started" >"$tmp"; } 2>/dev/null; then
        mv -f -- "$tmp" "$ROOT/.lock.holder" 2>/dev/null || rm -f -- "$tmp" 2>/dev/null || true
    else
        rm -f -- "$tmp" 2>/dev/null || true
    fi
}

# "pid sha started-at" of the run holding the lock. The holder writes it just after it got
# the lock, so a pid that is not running (the previous holder's) means: not written yet.
lock_holder() {
    local holder='' pid tries=0
    while :; do
        holder=
        { IFS= read -r holder || true; } 2>/dev/null <"$ROOT/.lock.holder" || true
        pid=${holder%% *}
        if [[ $pid =~ ^[0-9]+$ && -d /proc/$pid ]] || ((++tries >= 10)); then
            break
        fi
        sleep 0.1
    done
    printf '%s' "${holder:-unknown}"
}

# Removes what killed runs left (we hold the lock: nothing here is anyone's), and a journal's
# entries without the journal itself (a switch that finished, or never began).
clean_temporaries() {
    local d
    for d in "$ROOT"/releases/.tmp-*; do
        [[ -e $d || -L $d ]] || continue
        if remove_tree "$d"; then
            say "clean    removed ${d#"$ROOT"/} left by an interrupted deploy"
        else
            warn "could not remove $d left by an interrupted deploy: $(last_output)"
        fi
    done
    local leftovers=() name
    for name in "${LINKS[@]}"; do
        leftovers+=("$ROOT/.$name.new" "$ROOT/.$name.restore")
        [[ -L $ROOT/.switch ]] || leftovers+=("$ROOT/.switch.$name")
    done
    for d in "$ROOT"/.lock.holder.tmp-* "$ROOT"/.history.tmp-*; do
        [[ ! -e $d && ! -L $d ]] || leftovers+=("$d")
    done
    rm -f -- "${leftovers[@]}" 2>/dev/null || true
    for d in "$ROOT"/configs/.tmp-*; do
        [[ ! -e $d ]] || rm -rf -- "$d" 2>/dev/null || true
    done
    clean_fetch_debris
}

# Removes a tree touchdeploy made read-only; never follows a symlink (one named like a release
# is removed itself, its target untouched).
remove_tree() {
    if [[ -L $1 ]]; then
        rm -f -- "$1" 2>/dev/null
        return
    fi
    run_limited 300 chmod -R u+w -- "$1" || true
    run_limited 300 rm -rf -- "$1"
}

# git's leftovers of a fetch that failed or was killed: they can keep a disk full.
clean_fetch_debris() {
    local f debris=()
    for f in "$ROOT"/repo.git/objects/pack/tmp_* "$ROOT"/repo.git/objects/??/tmp_obj_* \
        "$ROOT"/repo.git/objects/pack/*.temp "$ROOT"/repo.git/objects/??/*.temp \
        "$ROOT"/repo.git/objects/incoming-* "$ROOT"/repo.git/objects/tmp_objdir*; do
        [[ ! -e $f ]] || debris+=("$f")
    done
    ((${#debris[@]} == 0)) || rm -rf -- "${debris[@]}" 2>/dev/null || true
}

# The journal of a switch: .switch.current and .switch.previous are what current and previous
# were (links, or "none"), made before the switch; .switch (a hard link of .switch.current)
# says a switch is under way. From its creation until the health check passes, any failure,
# signal or crash restores both links from it: now, or in the next run (step recover).
restore_links() {
    local name target
    for name in "${LINKS[@]}"; do
        if [[ ! -L $ROOT/.switch.$name ]]; then
            # A journal written before config links existed: that link was not switched.
            [[ $name == *config ]] && continue
            return 1
        fi
        target=$(readlink -- "$ROOT/.switch.$name" 2>/dev/null) || return 1
        if [[ $target == none ]]; then
            rm -f -- "$ROOT/$name" || return 1
        else
            rm -f -- "$ROOT/.$name.restore"
            copy_link ".switch.$name" ".$name.restore" || return 1
            replace_link ".$name.restore" "$name" || return 1
        fi
    done
}

clear_journal() {
    rm -f -- "$ROOT/.switch" 2>/dev/null || true
    remove_journal_entries
}

RECOVERED=0
RECOVERED_FROM=

step_recover() {
    local unverified='' back previous target
    # What the killed run was making live: .current.new until it was renamed, then current.
    if [[ -L $ROOT/.switch ]]; then
        target=$(readlink -- "$ROOT/.current.new" 2>/dev/null) || target=$(readlink -- "$ROOT/current" 2>/dev/null) || target=
        [[ ! $target =~ ^releases/([0-9a-f]{40})$ ]] || unverified=${BASH_REMATCH[1]}
    fi
    clean_temporaries
    [[ -L $ROOT/.switch ]] || return 0
    back=$(journal_sha current)
    previous=$(journal_sha previous)
    step recover "a run that was killed left $(release_shown "$unverified" "its release") unverified: current -> $(release_shown "$back" nothing), previous -> $(release_shown "$previous" nothing)"
    restore_links || die "$E_UNEXPECTED" "cannot restore current and previous from the journal in $ROOT: $(who_am_i) must be able to write there"
    step_done
    # The server may have reloaded the unverified release: reload what is current again (through
    # the trigger this run names if it exists, else the one setup recorded).
    if [[ -n $back ]]; then
        local given=$RELOAD_FILE t event name
        if [[ ! -f $ROOT/$RELOAD_FILE && -f $ROOT/.history ]]; then
            while read -r t event name; do
                [[ $event == trigger && -f $ROOT/$name ]] && reload_file_ok "$name" && RELOAD_FILE=$name
            done <"$ROOT/.history"
        fi
        touch_when_settled "$SETTLE_NS" "$((HEALTH_TIMEOUT < 10 ? HEALTH_TIMEOUT : 10))"
        RELOAD_FILE=$given
    fi
    clear_journal
    RECOVERED=1
    RECOVERED_FROM=$unverified
    if [[ -e $ROOT/.switch.processes && -z $CONTAINER ]]; then
        warn "the app's processes may still run $(release_shown "$unverified" "the release switched back"): the next release or rollback with --container restarts them"
    fi
}

step_layout() {
    if [[ ! -d $ROOT/releases || ! -d $ROOT/shared ]]; then
        mkdir -p -- "$ROOT/releases" "$ROOT/shared" 2>/dev/null ||
            die "$E_UNEXPECTED" "cannot create releases/ and shared/ in $ROOT as $(who_am_i)"
        check_root_mode
    fi
    if [[ ! -f $ROOT/repo.git/HEAD ]]; then
        run_limited 60 git init --quiet --bare -- "$ROOT/repo.git" ||
            die "$E_UNEXPECTED" "cannot create the cache $ROOT/repo.git: $(last_output)"
    fi
    check_links
    ensure_trigger
    ensure_state_dirs
}

# setup --state-dirs: <root>/state/<name>, 0700, the container's user's (the deploy user, or
# 10001 when that is root). Never changed once made: they hold the app's data.
ensure_state_dirs() {
    local name dir owner
    ((${#STATE_DIRS[@]})) || return 0
    container_user_default
    if [[ ! -d $ROOT/state ]]; then
        { [[ ! -e $ROOT/state && ! -L $ROOT/state ]] && mkdir -- "$ROOT/state"; } 2>/dev/null ||
            die "$E_UNEXPECTED" "cannot create $ROOT/state as $(who_am_i) (a file or a dangling link in the way?)"
    fi
    for name in "${STATE_DIRS[@]}"; do
        dir=$ROOT/state/$name
        if [[ -L $dir || (-e $dir && ! -d $dir) ]]; then
            die "$E_UNEXPECTED" "$dir is not a directory (a symlink or a file): the container mounts it read-write; move it away"
        fi
        if [[ ! -d $dir ]]; then
            mkdir -m 700 -- "$dir" 2>/dev/null || die "$E_UNEXPECTED" "cannot create $dir as $(who_am_i)"
            if ((EUID == 0)); then
                chown -- "$CT_UID:$CT_GID" "$dir" 2>/dev/null ||
                    die "$E_UNEXPECTED" "cannot chown $dir to the container's user $CT_UID:$CT_GID"
            fi
            say "state    created state/$name (mode 700, owner $CT_UID:$CT_GID)"
            continue
        fi
        owner=$(stat -c %u -- "$dir")
        if [[ $owner != "$CT_UID" ]]; then
            warn "state/$name belongs to uid $owner, not the container's user $CT_UID: the app may not be able to write it (chown -R $CT_UID:$CT_GID $dir)"
        fi
    done
}

check_root_mode() {
    local mode
    mode=$(stat -c %a -- "$ROOT")
    if (((8#$mode & 8#005) != 8#005)); then
        warn "$ROOT has mode $mode: the container's user (uid 10001) needs to read it (chmod 755)"
    fi
}

check_links() {
    local link
    for link in current previous; do
        if [[ -e $ROOT/$link && ! -L $ROOT/$link ]]; then
            die "$E_UNEXPECTED" "$ROOT/$link exists and is not a symlink: move it away"
        fi
    done
}

# The trigger: a plain file in the root that we own (setting an mtime needs the owner), never
# a symlink (a touch would follow it out of the root).
ensure_trigger() {
    local file=$ROOT/$RELOAD_FILE
    if [[ -L $file || (-e $file && ! -f $file) ]]; then
        die "$E_UNEXPECTED" "the reload trigger $file is not a plain file (a symlink or a directory): remove it; touchdeploy creates it"
    fi
    if [[ ! -e $file ]]; then
        { : >"$file"; } 2>/dev/null || die "$E_UNEXPECTED" "cannot create the reload trigger $file as $(who_am_i)"
        history_add trigger "$RELOAD_FILE"
    fi
    [[ -O $file || $EUID == 0 ]] ||
        die "$E_UNEXPECTED" "the reload trigger $file belongs to another user: only its owner can set its time: chown it to $(who_am_i)"
}

# ---------------------------------------------------------------------------------------------
# fetch / extract: one commit into the cache, then into an immutable release directory.

GIT_USERNAME=
GIT_PASSWORD=
URL_CREDENTIALS=0

# Every object of the commit's tree is in the cache.
cache_connected() {
    run_limited 300 git -C "$ROOT/repo.git" rev-list --objects --no-walk "$1"
}

cache_has_ref() {
    [[ $(git_local rev-parse -q --verify "refs/touchdeploy/commits/$1" 2>/dev/null) == "$1" ]]
}

# The cache is only a cache: a damaged one is replaced by an empty one.
reset_cache() {
    remove_tree "$ROOT/repo.git" || die "$E_UNEXPECTED" "cannot remove the damaged cache $ROOT/repo.git as $(who_am_i): $(last_output)"
    run_limited 60 git init --quiet --bare -- "$ROOT/repo.git" ||
        die "$E_UNEXPECTED" "cannot create the cache $ROOT/repo.git: $(last_output)"
}

# Fetches from $REPO: `git_fetch sha` fetches $COMMIT, `git_fetch refs` all branches and tags,
# forced (+) so rewritten history is fine. Credentials reach git through a credential helper
# reading its environment, never argv; the user's own helpers are off (none may store them).
# Every fetched commit keeps a ref (refs/touchdeploy/commits/<sha>): a fetch advertises the
# objects behind the cache's refs, so without one every fetch would transfer the whole history.
git_fetch() {
    local rc=0 refspecs xtrace=$- stall=$((FETCH_TIMEOUT < 30 ? FETCH_TIMEOUT : 30))
    local opts=(--quiet --no-tags) ssh cfg
    if [[ $1 == sha ]]; then
        refspecs=("+$COMMIT:refs/touchdeploy/commits/$COMMIT")
    else
        opts+=(--prune)
        refspecs=('+refs/heads/*:refs/touchdeploy/heads/*' '+refs/tags/*:refs/touchdeploy/tags/*')
    fi
    cfg=(-c protocol.ext.allow=never -c credential.helper= -c core.askPass= -c gc.auto=0
        -c maintenance.auto=false -c http.lowSpeedLimit=1000 -c "http.lowSpeedTime=$stall")
    if [[ -n $GIT_USERNAME || -n $GIT_PASSWORD ]]; then
        # shellcheck disable=SC2016 # expanded by git's sh, from its environment
        cfg+=(-c 'credential.helper=!f() { if test "$1" = get; then printf "username=%s\npassword=%s\n" "$TOUCHDEPLOY_GIT_USERNAME" "$TOUCHDEPLOY_GIT_PASSWORD"; fi; }; f')
    fi
    ssh="ssh -o BatchMode=yes -o ConnectTimeout=$stall -o ServerAliveInterval=10 -o ServerAliveCountMax=2"
    if [[ -n $SSH_KEY ]]; then
        ssh+=" -i $(sh_quote "$SSH_KEY") -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes"
        # Pinned: only the given file counts, not the host's /etc/ssh/ssh_known_hosts too.
        [[ -z $KNOWN_HOSTS ]] ||
            ssh+=" -o UserKnownHostsFile=$(sh_quote "$KNOWN_HOSTS") -o GlobalKnownHostsFile=/dev/null"
    fi
    FETCHING=1
    { set +x; } 2>/dev/null # no credentials in a trace
    GIT_SSH_COMMAND=$ssh TOUCHDEPLOY_GIT_USERNAME=$GIT_USERNAME TOUCHDEPLOY_GIT_PASSWORD=$GIT_PASSWORD \
        run_limited "$FETCH_TIMEOUT" git -C "$ROOT/repo.git" "${cfg[@]}" fetch "${opts[@]}" -- "$REPO" "${refspecs[@]}" || rc=$?
    [[ $xtrace != *x* ]] || set -x
    FETCHING=0
    if ((rc != 0)); then
        clean_fetch_debris
        if ((rc == 124 || rc == 137)); then
            FETCH_ERR="timed out after ${FETCH_TIMEOUT}s (--fetch-timeout) "
        else
            git_verdict "$(last_output)"
            FETCH_ERR=$VERDICT
        fi
    fi
    return "$rc"
}

# git's own verdict from its output: its fatal/error lines (else its last line), on one line.
git_verdict() {
    local line lines=() picked=()
    mapfile -t lines < <(printf '%s\n' "$1" | redact_text)
    for line in "${lines[@]}"; do
        [[ $line == fatal:* || $line == error:* ]] && ((${#picked[@]} < 2)) && picked+=("$line")
    done
    if ((${#picked[@]} == 0)); then
        for line in "${lines[@]}"; do [[ -z ${line//[[:space:]]/} ]] || picked=("$line"); done
    fi
    VERDICT="${picked[*]:-} "
}

step_fetch() {
    local has_ref=0
    ! cache_has_ref "$COMMIT" || has_ref=1
    if ((has_ref)) && release_ok "$COMMIT"; then
        say "fetch    $(short "$COMMIT") already fetched (releases/$(short "$COMMIT"))"
        ALREADY_FETCHED=1
        return 0
    fi
    if ((has_ref)) && cache_connected "$COMMIT"; then
        say "fetch    $(short "$COMMIT") already in the local cache (repo.git)"
        return 0
    fi
    if ((has_ref)); then
        # Fetched once, objects missing since: git would not fetch them again (it has the ref).
        say "clean    $(short "$COMMIT") is incomplete in repo.git: starting a new cache"
        reset_cache
    fi
    local d
    for d in "$ROOT/repo.git" "$ROOT/repo.git/objects" "$ROOT/repo.git/refs"; do
        [[ -w $d ]] || die "$E_UNEXPECTED" "the cache $d is not writable by $(who_am_i): chown it to the deploy user, or remove $ROOT/repo.git (it is only a cache)"
    done
    if ((URL_CREDENTIALS)); then
        warn "--repo carries credentials: other users of this host can read them in the process list while this runs; use --credentials-file"
    fi
    step fetch "$(short "$COMMIT") from $REPO_SHOWN"
    fetch_into_cache
    step_done
}

fetch_into_cache() {
    local rc=0 first
    git_fetch sha || rc=$?
    if ((rc == 0)); then
        # git checked that the commit is complete before it wrote refs/touchdeploy/commits/<sha>.
        history_add fetched "$COMMIT"
        return 0
    fi
    if ((rc != 0)); then
        first=$FETCH_ERR
        if ((rc == 124 || rc == 137)); then
            die "$E_MISSING" "fetch of $(short "$COMMIT") from $REPO_SHOWN failed: ${first}(check the URL and the network)"
        fi
        out 'by SHA failed, trying all branches and tags ... '
        git_fetch refs ||
            die "$E_MISSING" "fetch of $(short "$COMMIT") from $REPO_SHOWN failed: ${FETCH_ERR:-$first}(check the URL, the network and the deploy key)"
        # The branches were only a way to get the commit: their refs would keep every object.
        git_local for-each-ref --format='delete %(refname)' refs/touchdeploy/heads refs/touchdeploy/tags |
            git_local update-ref --stdin 2>/dev/null || true
    fi
    if [[ $(git_local cat-file -t "$COMMIT" 2>/dev/null) != commit ]]; then
        die "$E_MISSING" "commit $COMMIT not found in $REPO_SHOWN: push it first (or check the SHA); nothing was changed"
    fi
    cache_has_ref "$COMMIT" || git_local update-ref "refs/touchdeploy/commits/$COMMIT" "$COMMIT"
    cache_connected "$COMMIT" ||
        die "$E_MISSING" "commit $(short "$COMMIT") is incomplete in $ROOT/repo.git after the fetch: $(last_output | redact_text)"
    history_add fetched "$COMMIT"
}

step_extract() {
    local final=$ROOT/releases/$COMMIT
    release_ok "$COMMIT" && return 0
    if [[ -e $final || -L $final ]]; then
        remove_tree "$final" ||
            die "$E_UNEXPECTED" "releases/$(short "$COMMIT") is incomplete and cannot be removed as $(who_am_i): $(last_output)"
        say "clean    removed an incomplete releases/$(short "$COMMIT")"
    fi
    step extract "$(short "$COMMIT") into releases/"
    if ! extract_to "$final"; then
        [[ $EXTRACT_FAILED == git ]] ||
            die "$E_MISSING" "could not extract $(short "$COMMIT") into $ROOT/releases: $EXTRACT_ERR(disk full?)"
        # The cache is damaged (objects missing or corrupt): it is only a cache, start afresh.
        out 'the cache is damaged (%s), fetching into a new one ... ' "${EXTRACT_ERR% }"
        reset_cache
        fetch_into_cache
        extract_to "$final" ||
            die "$E_MISSING" "could not extract $(short "$COMMIT") into $ROOT/releases: $EXTRACT_ERR"
    fi
    step_done
}

# git archive | tar into a temporary directory, renamed to $1 only when complete. Sets
# EXTRACT_FAILED (git or tar) and EXTRACT_ERR on failure.
extract_to() {
    local tmp="$ROOT/releases/.tmp-$COMMIT-$$" rc=0 statuses
    EXTRACT_FAILED='' EXTRACT_ERR=''
    TMP_RELEASE=$tmp
    mkdir -- "$tmp" 2>/dev/null || {
        EXTRACT_FAILED=tar EXTRACT_ERR="cannot create $tmp "
        return 1
    }
    # tar.umask and --no-same-permissions: files 0644 / dirs 0755, whoever runs this (root's
    # tar would otherwise keep the archive's 0664 modes).
    # shellcheck disable=SC2016 # run by that bash, with the values as arguments
    run_limited "$FETCH_TIMEOUT" bash -c 'git -C "$1" -c protocol.ext.allow=never -c tar.umask=0022 archive --format=tar "$2" |
        tar -x --no-same-owner --no-same-permissions -C "$3" -f -
        s=("${PIPESTATUS[@]}"); printf "td-pipe %s %s\n" "${s[0]}" "${s[1]}"; exit $((s[0] | s[1]))' \
        touchdeploy "$ROOT/repo.git" "$COMMIT" "$tmp" || rc=$?
    if ((rc != 0)); then
        statuses=$(last_output)
        git_verdict "$(printf '%s\n' "$statuses" | grep -v '^td-pipe ' || true)"
        EXTRACT_ERR=$VERDICT
        if ((rc == 124 || rc == 137)); then
            EXTRACT_FAILED=tar EXTRACT_ERR="timed out after ${FETCH_TIMEOUT}s (--fetch-timeout) "
        elif [[ $statuses =~ td-pipe\ ([0-9]+)\ ([0-9]+) && ${BASH_REMATCH[1]} != 0 && ${BASH_REMATCH[2]} == 0 ]]; then
            EXTRACT_FAILED=git
        elif [[ $statuses =~ td-pipe\ ([0-9]+)\ ([0-9]+) && ${BASH_REMATCH[2]} != 0 && $EXTRACT_ERR != *tar:* ]] && [[ $EXTRACT_ERR == *fatal:* || $EXTRACT_ERR == *error:* ]]; then
            EXTRACT_FAILED=git
        else
            EXTRACT_FAILED=tar
        fi
        remove_tree "$tmp" || true
        TMP_RELEASE=
        return 1
    fi
    # touchdeploy's REVISION replaces whatever the commit has there (a file, a directory, a
    # symlink pointing elsewhere): it is never written through.
    if ! rm -rf -- "$tmp/REVISION" 2>/dev/null || ! { printf '%s' "$COMMIT" >"$tmp/REVISION"; } 2>/dev/null; then
        EXTRACT_FAILED=tar EXTRACT_ERR="cannot write $tmp/REVISION "
        remove_tree "$tmp" || true
        TMP_RELEASE=
        return 1
    fi
    run_limited 300 chmod -R a-w -- "$tmp" || true
    # Only a complete tree ever has the final name.
    mv -T -- "$tmp" "$1"
    TMP_RELEASE=
}

# ---------------------------------------------------------------------------------------------
# Health: what the server answers (status, X-Revision, X-Touchdeploy-Fingerprint).

HTTP_STATUS=000
HTTP_REVISION=
HTTP_CONFIG=
HTTP_FINGERPRINT=
HTTP_MS=0
CONNECTED=0
PROBE_ERR=
PROBE_TLS=0
CURL_CONFIG=

# One request, bounded by $1 seconds (at most 5): a signal waits at most that long.
probe() {
    local max=${1:-5} output line rc=0 connected=0
    ((max <= 5)) || max=5
    HTTP_STATUS=000 HTTP_REVISION='' HTTP_CONFIG='' HTTP_FINGERPRINT='' HTTP_MS=0 CONNECTED=0 PROBE_ERR='' PROBE_TLS=0
    output=$(curl -q --silent --show-error --noproxy '*' --globoff --connect-timeout 1 \
        --max-time "$max" --output /dev/null --dump-header - \
        --write-out 'td-status:%{http_code}\ntd-connect:%{time_connect}\ntd-time:%{time_total}\n' \
        --config - 2>&1 9>&- <<<"$CURL_CONFIG") || rc=$?
    while IFS= read -r line; do
        line=${line%$'\r'}
        case ${line,,} in
        x-revision:*) HTTP_REVISION=$(trim "${line#*:}") ;;
        x-touchdeploy-config:*) HTTP_CONFIG=$(trim "${line#*:}") ;;
        x-touchdeploy-fingerprint:*) HTTP_FINGERPRINT=$(trim "${line#*:}") ;;
        td-status:*) HTTP_STATUS=${line#*:} ;;
        td-connect:*) [[ ${line#*:} =~ ^0*[.,]?0*$ ]] || connected=1 ;;
        td-time:*) [[ ${line#*:} =~ ^([0-9]+)[.,]([0-9]{3}) ]] &&
            HTTP_MS=$((10#${BASH_REMATCH[1]} * 1000 + 10#${BASH_REMATCH[2]})) ;;
        curl:*) PROBE_ERR=$(trim "${line#curl:}") ;;
        esac
    done <<<"$output"
    # Running: it answered, or took the connection and is busy (curl timed out on it). A
    # connection closed at once is not a server (Docker's proxy accepts for a stopped one).
    if [[ $HTTP_STATUS != 000 ]] || ((connected && rc == 28)); then
        CONNECTED=1
    fi
    case $rc in 35 | 51 | 53 | 54 | 58 | 59 | 60 | 64 | 66 | 77 | 80 | 82 | 83 | 90 | 91) PROBE_TLS=1 ;; esac
    return 0
}

trim() {
    local v=$1
    v=${v#"${v%%[![:space:]]*}"}
    printf '%s' "${v%"${v##*[![:space:]]}"}"
}

# A uWSGI whose workers were spawned a moment ago can miss a reload: a worker that has not yet
# installed its signal handler never gets the master's "stop gracefully", keeps serving the old
# code, and the master waits out worker-reload-mercy (30 s) before forcing it (measured: 7 of
# 240 first deploys to fresh containers, bench/README.md). So the trigger is touched at once
# only for a server that answered promptly before the switch; one that was not answering, was
# slow, or was reloaded by us a moment ago is touched once it has answered for SETTLE_NS.
READY_MS=500
SETTLE_NS=500000000
FAILFAST_NS=3000000000
# Seconds between two health probes while waiting for a revision (bench/ measures other values).
HEALTH_POLL=0.1
RUNNING=1
PROMPT=1
UP_SINCE=0
TOUCHED=0
TRIGGER_NS=0
# The trigger's mtime (whole seconds) of our last touch: the runtime reports only the starts
# that began at or after it.
TRIGGER_MTIME=

# probe, remembering since when the server answers without a break.
observe() {
    probe "$@"
    now
    if [[ $HTTP_STATUS != 000 ]]; then
        ((UP_SINCE)) || UP_SINCE=$NOW
    elif ((!CONNECTED)); then
        UP_SINCE=0
    fi
}

# The server before the switch: running (any answer, or at least a connection), prompt.
first_probe() {
    RUNNING=1 PROMPT=1
    [[ -n $HEALTH_URL ]] || return 0
    observe "$((HEALTH_TIMEOUT < 5 ? HEALTH_TIMEOUT : 5))"
    if ((PROBE_TLS)); then
        die "$E_USAGE" "--health-url $HEALTH_SHOWN: TLS failed (${PROBE_ERR:-curl status}): the health check talks to the container's port, use http://127.0.0.1:PORT/...; nothing was switched"
    fi
    ((CONNECTED)) || RUNNING=0
    [[ $HTTP_STATUS != 000 ]] && ((HTTP_MS < READY_MS)) || PROMPT=0
}

# Touches the trigger once the server has answered for $1 ns without a break (0: at once), or
# after $2 seconds at most; without --health-url, at once.
touch_when_settled() {
    local need=$1 deadline
    if [[ -n $HEALTH_URL ]] && ((need > 0)); then
        now
        deadline=$((NOW + $2 * 1000000000))
        while :; do
            observe 1
            if ((UP_SINCE && NOW - UP_SINCE >= need)) || ((NOW >= deadline)); then
                break
            fi
            sleep 0.05
        done
    fi
    touch_trigger
}

# Touches the trigger once. uWSGI's touch-reload compares mtimes in whole seconds, so a second
# deploy within the same second would be missed: the new mtime is max(now, previous + 1).
touch_trigger() {
    local file="$ROOT/$RELOAD_FILE" old t
    if [[ ! -f $file || -L $file ]] || ! old=$(stat -c %Y -- "$file" 2>/dev/null) ||
        ! { now && t=$((NOW_S > old ? NOW_S : old + 1)) && touch -d "@$t" -- "$file" 2>/dev/null; }; then
        # While switching back the caller decides; elsewhere it is a failure (after the switch:
        # switch back).
        [[ $PHASE != undoing ]] || return 1
        fail "$E_UNEXPECTED" "cannot touch the reload trigger $file as $(who_am_i) (gone, not a plain file, or not ours)"
    fi
    TOUCHED=1
    now
    TRIGGER_NS=$NOW
    TRIGGER_MTIME=$t
    RUNTIME_ASKED_NS=$NOW
    UP_SINCE=0
    say "reload   touched $RELOAD_FILE (mtime $t): the runtime starts the new release beside the old one"
}

# The server answers 200 with the commit $1 and the config version $2 ("" for none: no
# X-Touchdeploy-Config header).
serves() { [[ $HTTP_STATUS == 200 && $HTTP_REVISION == "$1" && $HTTP_CONFIG == "$2" ]]; }

# The runtime (runtime/touchdeploy_generations.py) starts a new uWSGI generation on the touch and
# keeps the old one serving until the new one is healthy, so a commit that cannot start never
# answers the health URL: the old revision does. With --container the script asks the runtime
# (docker exec ... touchdeploy-generations status) what became of the start that our touch
# caused, every RUNTIME_ASK_NS while the commit is not served (not before: a healthy release is
# usually served sooner, and then nobody asks). Returns 0 when that start failed, with the
# runtime's reason in RUNTIME_FAILURE. A container whose image has no such command (an older
# runtime) is not asked again.
RUNTIME_ASK_NS=500000000
RUNTIME_ASKED_NS=0
RUNTIME_STATUS=1
RUNTIME_FAILURE=
start_failed() {
    local sha=$1 config=$2
    now
    ((NOW - RUNTIME_ASKED_NS >= RUNTIME_ASK_NS)) || return 1
    runtime_state "$sha" "$config" || return 1
    [[ $RUNTIME_STATE == failed\ * ]] || return 1
    RUNTIME_FAILURE=${RUNTIME_STATE#failed }
    return 0
}

# Sets RUNTIME_STATE to the runtime's line about the start of commit $1 with config $2 that our
# touch caused (see start_failed); 1 when it cannot be asked (no --container, no touch, an older
# runtime, docker exec failed).
RUNTIME_STATE=
runtime_state() {
    RUNTIME_STATE=
    [[ -n $CONTAINER && -n $TRIGGER_MTIME ]] && ((RUNTIME_STATUS)) || return 1
    now
    RUNTIME_ASKED_NS=$NOW
    if ! run_limited 10 docker exec "$CONTAINER" touchdeploy-generations status "$1" \
        --config "$2" --touched "$TRIGGER_MTIME"; then
        [[ $(last_output) != *touchdeploy-generations* ]] || RUNTIME_STATUS=0
        return 1
    fi
    RUNTIME_STATE=$(last_output | tail -n 1)
}

# Once the commit answers, the previous generation may still be stopping (it stops accepting
# at once, but finishes the requests it has): then an answer can still come from it. With
# --container the health check passes only when the runtime says the new generation alone
# serves (or started nothing for our touch); 1 while it says `starting` or `ready`.
runtime_settled() {
    runtime_state "$1" "$2" || return 0
    [[ $RUNTIME_STATE != starting\ * && $RUNTIME_STATE != ready\ * ]]
}

# Polls until commit $1 with config version $2 is served with 200 (0), or gives up (1, reason
# in WHY) at DEADLINE_NS. Fails fast when the new revision answers non-200 for 3 s (a broken
# app keeps answering 500), and when the runtime reports that it could not start it.
DEADLINE_NS=0
wait_served() {
    local sha=$1 config=$2 bad_since=0 left
    WHY=
    while :; do
        now
        left=$(((DEADLINE_NS - NOW) / 1000000000))
        ((left >= 1)) || left=1
        observe "$left"
        if serves "$sha" "$config"; then
            if runtime_settled "$sha" "$config" || ((NOW >= DEADLINE_NS)); then
                return 0
            fi
            sleep 0.05
            continue
        fi
        if ((PROBE_TLS)); then
            WHY="TLS failed: ${PROBE_ERR:-curl status}"
            return 1
        fi
        if start_failed "$sha" "$config"; then
            WHY="the runtime could not start $(short "$sha")${config:+ with env $config}: $RUNTIME_FAILURE"
            return 1
        fi
        if [[ $HTTP_REVISION == "$sha" ]]; then
            ((bad_since)) || bad_since=$NOW
            if ((NOW - bad_since >= FAILFAST_NS)); then
                WHY="it answered HTTP $HTTP_STATUS for 3s"
                return 1
            fi
        else
            bad_since=0
        fi
        if ((NOW >= DEADLINE_NS)); then
            WHY="not served with HTTP 200 within ${HEALTH_WAITED}s (last seen: HTTP $HTTP_STATUS, revision $(short "${HTTP_REVISION:-none}")"
            if [[ $HTTP_CONFIG != "$config" ]]; then
                WHY+=", env ${HTTP_CONFIG:-none} instead of ${config:-none}"
            fi
            WHY+=")"
            return 1
        fi
        sleep "$HEALTH_POLL"
    done
}

set_deadline() {
    now
    DEADLINE_NS=$((NOW + $1 * 1000000000))
    HEALTH_WAITED=$1
}

# ---------------------------------------------------------------------------------------------
# Dependency guard: the container's image has the dependencies of some commit installed; a
# commit whose dependency files differ needs a container deploy, not a code deploy.

# Sets FP to the dependency fingerprint of commit $1, from its git objects exactly as
# components/fingerprint.ts computes it (raw bytes; a symlink counts as its target text, a
# path through a symlinked directory is absent): sha256 of "P\n<sha256 of P or absent>\n" for
# each path P in order. BLOB[P] is P's blob id (or absent). Returns 1 if the commit is missing.
fingerprint_of() {
    local sha=$1 p spec entry meta path text='' h type id
    declare -gA BLOB=()
    local -A found=()
    [[ $(git_local cat-file -t "$sha" 2>/dev/null) == commit ]] || return 1
    local specs=()
    for p in "${DEPENDENCY_FILES[@]}"; do specs+=("${SUBDIR:+$SUBDIR/}$p"); done
    while IFS= read -r -d '' entry; do
        meta=${entry%%$'\t'*}
        path=${entry#*$'\t'}
        found[$path]=$meta
    done < <(GIT_LITERAL_PATHSPECS=1 git_local ls-tree --full-tree -z "$sha" -- "${specs[@]}" 2>/dev/null)
    for p in "${DEPENDENCY_FILES[@]}"; do
        spec=${SUBDIR:+$SUBDIR/}$p
        meta=${found[$spec]-}
        if [[ -z $meta ]]; then
            BLOB[$p]=absent
            h=absent
        else
            read -r _ type id <<<"$meta" || true
            [[ $type == blob ]] ||
                die "$E_USAGE" "--dependency-files: $p is a $type in commit $(short "$sha"), not a file"
            BLOB[$p]=$id
            h=$(git_local cat-file blob "$id" | sha256sum)
            h=${h%% *}
        fi
        text+="$p"$'\n'"$h"$'\n'
    done
    h=$(printf '%s' "$text" | sha256sum)
    FP=${h%% *}
}

dependency_guard() {
    local fp expected from changed=() p live
    fingerprint_of "$COMMIT" ||
        die "$E_MISSING" "commit $(short "$COMMIT") is not in $ROOT/repo.git, which the dependency check reads: run fetch again"
    fp=$FP
    local -A new_blob=()
    for p in "${!BLOB[@]}"; do new_blob[$p]=${BLOB[$p]}; done
    expected=$CONTAINER_FINGERPRINT
    from="--container-fingerprint"
    if [[ -z $expected ]]; then
        # Fail closed: a server that does not say what it was built for is not trusted to have it.
        local deadline
        now
        deadline=$((NOW + HEALTH_TIMEOUT * 1000000000))
        while [[ -z $HTTP_FINGERPRINT && $HTTP_STATUS == 000 ]] && ((CONNECTED && NOW < deadline)); do
            sleep 0.1
            observe "$(((deadline - NOW) / 1000000000 + 1))"
        done
        if [[ $HTTP_FINGERPRINT =~ ^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$ ]]; then
            expected=$HTTP_FINGERPRINT
            from="the X-Touchdeploy-Fingerprint of $HEALTH_SHOWN"
        else
            local why="it answered HTTP $HTTP_STATUS without X-Touchdeploy-Fingerprint"
            [[ $HTTP_STATUS != 000 ]] || why="it did not answer${PROBE_ERR:+ ($PROBE_ERR)}"
            die "$E_DEPENDENCIES" "cannot check the dependencies of $(short "$COMMIT"): the container's fingerprint is unknown (no --container-fingerprint, and $HEALTH_SHOWN: $why): pass --container-fingerprint (pulumi up does), or 'unmanaged' to skip the check; nothing was switched"
        fi
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
    if [[ -n $live ]] && fingerprint_of "$live"; then
        for p in "${DEPENDENCY_FILES[@]}"; do
            [[ ${new_blob[$p]} == "${BLOB[$p]}" ]] || changed+=("$p")
        done
    fi
    die "$E_DEPENDENCIES" "commit $(short "$COMMIT") has dependency fingerprint $fp but the container runs $expected (from $from)${changed[*]:+; changed since live commit $(short "$live"): ${changed[*]}}: this commit changes dependencies: run a container deploy (pulumi up builds the image for them); nothing was switched"
}

# ---------------------------------------------------------------------------------------------
# The app's config: its env, secrets and processes (--payload stdin), kept in immutable
# versions configs/<version>/ that are switched WITH the release: the links config and
# previous-config go with current and previous, through the same journal. configs/ and each
# version are 0700 and their files 0600, owned by the container's user (the deploy user, or
# 10001 when that is root): only the deploy user and the container's user can read a secret.
# No value is ever printed, traced, compared in a message or put on a command line.

declare -A PAYLOAD_ENV=() PAYLOAD_SECRET=() PAYLOAD_PROCESS=()
readonly MAX_ENV_TOTAL=1048576 MAX_PAYLOAD_RECORDS=1000

bad_payload() { die "$E_USAGE" "--payload: $*; nothing was changed"; }

# Reads the records that follow the script on stdin (fd 8): kind NUL key NUL value NUL, kind
# env, secret or process. Everything is checked before anything changes.
read_payload() {
    local field='' fields=() kind key value i n total=0 xtrace=$-
    { set +x; } 2>/dev/null # no value in a trace
    while IFS= read -r -d '' -u 8 field; do
        fields+=("$field")
        total=$((total + ${#field}))
        if ((${#fields[@]} > 3 * MAX_PAYLOAD_RECORDS || total > 8 * MAX_ENV_TOTAL)); then
            bad_payload "more than $MAX_PAYLOAD_RECORDS records or $((8 * MAX_ENV_TOTAL)) bytes"
        fi
    done
    [[ -z $field ]] ||
        bad_payload "it ends with ${#field} bytes that are not NUL-terminated (each field ends with a NUL byte)"
    ((${#fields[@]} % 3 == 0)) ||
        bad_payload "${#fields[@]} fields are not whole records (each record is three: kind, key or name, value or command)"
    total=0
    for ((i = 0; i < ${#fields[@]}; i += 3)); do
        kind=${fields[i]} key=${fields[i + 1]}
        n=$((i / 3 + 1))
        case $kind in
        env | secret)
            payload_key_ok "$n" "$kind" "$key"
            value=${fields[i + 2]}
            ((${#key} + 1 + ${#value} <= MAX_ARG)) ||
                bad_payload "record $n ($kind $key): $key=VALUE is $((${#key} + 1 + ${#value})) bytes, the kernel passes at most $MAX_ARG per variable"
            total=$((total + ${#key} + ${#value} + 2))
            if [[ $kind == env ]]; then PAYLOAD_ENV[$key]=$value; else PAYLOAD_SECRET[$key]=$value; fi
            ;;
        process)
            [[ $key =~ ^[a-z][a-z0-9-]{0,30}$ && $key != uwsgi ]] ||
                bad_payload "record $n: process name $(show "$key") must be lowercase letters, digits and - (at most 31, starting with a letter), and not uwsgi"
            [[ -z ${PAYLOAD_PROCESS[$key]+x} ]] || bad_payload "record $n: process $key is given twice"
            value=${fields[i + 2]}
            [[ -n ${value//[[:space:]]/} ]] || bad_payload "record $n: process $key has no command"
            ((${#value} <= MAX_ARG)) ||
                bad_payload "record $n: the command of process $key is ${#value} bytes, at most $MAX_ARG"
            PAYLOAD_PROCESS[$key]=$value
            ;;
        *) bad_payload "record $n: unknown kind $(show "$kind") (env, secret or process)" ;;
        esac
    done
    ((total <= MAX_ENV_TOTAL)) ||
        bad_payload "the env and secrets take $total bytes, at most $MAX_ENV_TOTAL (every process of the app gets them from execve(2))"
    if ((${#PAYLOAD_PROCESS[@]})) && [[ -z $CONTAINER ]]; then
        die "$E_USAGE" "--payload has processes ($(payload_process_names)): they need --container NAME (they run in the app's container)"
    fi
    [[ $xtrace != *x* ]] || set -x
}

payload_key_ok() {
    local n=$1 kind=$2 key=$3
    [[ $key =~ ^[A-Za-z_][A-Za-z0-9_]{0,254}$ ]] ||
        bad_payload "record $n: $kind key $(show "$key") must match [A-Za-z_][A-Za-z0-9_]* (at most 255)"
    [[ $key != TOUCHDEPLOY_* ]] ||
        bad_payload "record $n: $kind key $key: TOUCHDEPLOY_* are the runtime's own variables"
    [[ $key != UWSGI_* ]] ||
        bad_payload "record $n: $kind key $key: uWSGI reads UWSGI_* variables as its own options (set them in the app's uwsgi.ini)"
    [[ -z ${PAYLOAD_ENV[$key]+x} && -z ${PAYLOAD_SECRET[$key]+x} ]] ||
        bad_payload "record $n: $key is given twice (as env or secret)"
}

payload_process_names() {
    local IFS=' '
    printf '%s' "${!PAYLOAD_PROCESS[*]}"
}

# Keys of an associative array (named $1), sorted: the same payload makes the same bytes.
sorted_keys() {
    local -n assoc=$1
    ((${#assoc[@]})) || return 0
    printf '%s\n' "${!assoc[@]}" | LC_ALL=C sort
}

# Writes env, secrets and processes into the new directory $1 (0700, files 0600).
write_config_files() {
    local dir=$1 key keys=() xtrace=$- ok=1
    { set +x; } 2>/dev/null # the values are in the commands below
    umask 077
    mapfile -t keys < <(sorted_keys PAYLOAD_ENV)
    { for key in "${keys[@]}"; do printf '%s=%s\0' "$key" "${PAYLOAD_ENV[$key]}"; done >"$dir/env"; } 2>/dev/null || ok=0
    mapfile -t keys < <(sorted_keys PAYLOAD_SECRET)
    { for key in "${keys[@]}"; do printf '%s=%s\0' "$key" "${PAYLOAD_SECRET[$key]}"; done >"$dir/secrets"; } 2>/dev/null || ok=0
    mapfile -t keys < <(sorted_keys PAYLOAD_PROCESS)
    { for key in "${keys[@]}"; do printf '%s\0%s\0' "$key" "${PAYLOAD_PROCESS[$key]}"; done >"$dir/processes"; } 2>/dev/null || ok=0
    umask 022
    [[ $xtrace != *x* ]] || set -x
    ((ok)) || die "$E_UNEXPECTED" "cannot write the env into $dir as $(who_am_i) (disk full?); nothing was switched"
}

# The version a config link points to ("" for none or an incomplete version).
link_config() {
    local target
    target=$(readlink -- "$ROOT/$1" 2>/dev/null) || return 0
    if [[ $target =~ ^configs/([0-9]{8}T[0-9]{6}-[0-9]{9})$ ]] && config_ok "${BASH_REMATCH[1]}"; then
        printf '%s' "${BASH_REMATCH[1]}"
    fi
}

# A complete version: a real directory whose VERSION holds its name.
config_ok() {
    local dir=$ROOT/configs/$1 version=
    [[ -d $dir && ! -L $dir && -f $dir/VERSION && ! -L $dir/VERSION ]] || return 1
    { IFS= read -r version || true; } 2>/dev/null <"$dir/VERSION"
    [[ $version == "$1" ]]
}

# The version a journal entry points to ("" for none).
journal_config() {
    local target
    target=$(readlink -- "$ROOT/.switch.$1" 2>/dev/null) || return 0
    [[ ! $target =~ ^configs/(.+)$ ]] || printf '%s' "${BASH_REMATCH[1]}"
}

# The version has processes (a non-empty processes file).
has_processes() { [[ -n $1 && -s $ROOT/configs/$1/processes ]]; }

# The container's user: the deploy user's uid:gid, or 10001:10001 when that is root (what
# setup reports). With --container: what that container runs as (check_container).
CT_UID=
CT_GID=
container_user_default() {
    if ((EUID == 0)); then
        CT_UID=${DEFAULT_CONTAINER_USER%%:*} CT_GID=${DEFAULT_CONTAINER_USER#*:}
    else
        CT_UID=$EUID
        CT_GID=$(id -g)
    fi
}

# The container must run, and as a user that can read what this deploy user writes.
check_container() {
    local info running user
    run_limited 30 docker inspect --type container --format '{{.State.Running}} {{.Config.User}}' -- "$CONTAINER" ||
        die "$E_UNEXPECTED" "cannot inspect container $CONTAINER: $(last_output | head -n 1) (is --container right? docker ps lists the containers); nothing was switched"
    info=$(last_output)
    running=${info%% *}
    user=${info#"$running"}
    user=${user# }
    [[ $running == true ]] ||
        die "$E_UNEXPECTED" "container $CONTAINER is not running: start it (docker start $CONTAINER) or run pulumi up; nothing was switched"
    if [[ ! $user =~ ^[0-9]+:[0-9]+$ ]]; then
        # A name, a uid alone or the image's default: ask the container.
        # shellcheck disable=SC2016 # expanded by the container's sh
        run_limited 30 docker exec "$CONTAINER" sh -c 'echo "$(id -u):$(id -g)"' ||
            die "$E_UNEXPECTED" "cannot run id in container $CONTAINER: $(last_output | head -n 1); nothing was switched"
        user=$(last_output)
        [[ $user =~ ^[0-9]+:[0-9]+$ ]] ||
            die "$E_UNEXPECTED" "container $CONTAINER: id printed $(show "$user"), not UID:GID; nothing was switched"
    fi
    CT_UID=${user%%:*} CT_GID=${user#*:}
    if ((EUID != 0 && CT_UID != EUID)); then
        die "$E_DEPENDENCIES" "container $CONTAINER runs as uid $CT_UID, but the app's env, secrets and state directories belong to the deploy user, uid $EUID, and only it can read them: run a container deploy (pulumi up runs the container as the user setup reports); nothing was switched"
    fi
}

# configs/ itself: 0700, the container's user's (it must traverse it).
ensure_configs_dir() {
    local dir=$ROOT/configs
    if [[ -L $dir || (-e $dir && ! -d $dir) ]]; then
        die "$E_UNEXPECTED" "$dir is not a directory (a symlink or a file): remove it; touchdeploy creates it"
    fi
    if [[ ! -d $dir ]]; then
        mkdir -m 700 -- "$dir" 2>/dev/null || die "$E_UNEXPECTED" "cannot create $dir as $(who_am_i)"
    fi
    if ((EUID == 0)); then
        chown -- "$CT_UID:$CT_GID" "$dir" 2>/dev/null || die "$E_UNEXPECTED" "cannot chown $dir to $CT_UID:$CT_GID"
    fi
}

OLD_CONFIG=
NEW_CONFIG=
CONFIG_MADE=
TMP_CONFIG=

# The config this release makes live: the payload's, as a new version when it differs from the
# live one; without --payload, the live one.
plan_config() {
    local tmp version
    NEW_CONFIG=$OLD_CONFIG
    [[ -n $PAYLOAD ]] || return 0
    ensure_configs_dir
    tmp=$ROOT/configs/.tmp-$$
    rm -rf -- "$tmp" 2>/dev/null || true
    mkdir -m 700 -- "$tmp" 2>/dev/null ||
        die "$E_UNEXPECTED" "cannot create $tmp as $(who_am_i) (disk full?); nothing was switched"
    TMP_CONFIG=$tmp
    write_config_files "$tmp"
    if [[ -n $OLD_CONFIG ]] && same_config "$tmp" "$ROOT/configs/$OLD_CONFIG"; then
        rm -rf -- "$tmp"
        TMP_CONFIG=
        return 0
    fi
    now
    version="$(TZ=UTC printf '%(%Y%m%dT%H%M%S)T' "$NOW_S")-${NOW: -9}"
    { printf '%s' "$version" >"$tmp/VERSION"; } 2>/dev/null ||
        die "$E_UNEXPECTED" "cannot write $tmp/VERSION (disk full?); nothing was switched"
    chmod 600 -- "$tmp/VERSION"
    if ((EUID == 0)); then
        chown -R -- "$CT_UID:$CT_GID" "$tmp" 2>/dev/null ||
            die "$E_UNEXPECTED" "cannot chown $tmp to the container's user $CT_UID:$CT_GID"
    fi
    mv -T -- "$tmp" "$ROOT/configs/$version"
    TMP_CONFIG=
    NEW_CONFIG=$version
    CONFIG_MADE=$version
}

same_config() {
    local f
    for f in env secrets processes; do
        cmp -s -- "$1/$f" "$2/$f" 2>/dev/null || return 1
    done
}

payload_summary() {
    printf '%d env, %d secret, %d process' "${#PAYLOAD_ENV[@]}" "${#PAYLOAD_SECRET[@]}" "${#PAYLOAD_PROCESS[@]}"
}

# What the new env is, for the step lines: "env 20261130T071300-123456789 (3 env, 1 secret,
# 1 process)" or "env unchanged".
config_shown() {
    if [[ $NEW_CONFIG == "$OLD_CONFIG" || -z $PAYLOAD ]]; then
        printf 'env %s' "${NEW_CONFIG:-none}"
    else
        printf 'env %s (%s)' "$NEW_CONFIG" "$(payload_summary)"
    fi
}

# A config version no link and no journal entry points to: never live, or no longer reachable.
config_unreferenced() {
    local name target
    for name in config previous-config .switch.config .switch.previous-config .config.new \
        .previous-config.new; do
        target=$(readlink -- "$ROOT/$name" 2>/dev/null) || continue
        [[ $target != "configs/$1" ]] || return 1
    done
    return 0
}

# prune: versions nothing points to (they hold secrets nobody can reach any more).
prune_configs() {
    local dir name removed=0
    [[ -d $ROOT/configs ]] || return 0
    for dir in "$ROOT"/configs/* "$ROOT"/configs/.tmp-*; do
        [[ -e $dir || -L $dir ]] || continue
        name=${dir##*/}
        [[ $name == .tmp-* ]] || config_unreferenced "$name" || continue
        if remove_tree "$dir"; then removed=$((removed + 1)); else PRUNE_PROBLEMS+=("could not remove configs/$name ($(last_output | head -n 1))"); fi
    done
    CONFIGS_REMOVED=$removed
}

# ---------------------------------------------------------------------------------------------
# The release command and the processes run in the app's container (docker exec), through the
# runtime image's tools (runtime/touchdeploy_tool.py), as the container's user. Killing
# `docker exec` does not stop what it started in the container: after a deadline or a signal,
# `touchdeploy-run --stop` does (SIGTERM to the command's process group, SIGKILL 5 s later).

readonly COMMAND_PIDFILE=/tmp/touchdeploy/command.pid
COMMAND_RUNNING=0
PROCS_TOUCHED=0
SYNC_WHY=

# Like run_limited, but the output is streamed to stdout as it comes, each line indented under
# the step line (and kept in $RUN_DIR/out). A closed stdout does not stop the command.
run_streamed() {
    local secs=$1 rc
    shift
    # shellcheck disable=SC2016 # run by that bash, with the command as arguments
    timeout -k 5 "$secs" bash -c 'set -o pipefail; out=$1; shift
        "$@" 2>&1 </dev/null | {
            trap "" PIPE
            while IFS= read -r line || [[ -n $line ]]; do
                printf "    %s\n" "$line" 2>/dev/null || :
                printf "%s\n" "$line" >>"$out"
            done
        }' touchdeploy "${RUN_DIR:-/dev/null}/${RUN_DIR:+out}" "$@" </dev/null 8<&- 9>&- &
    CHILD=$!
    [[ -z $RUN_DIR ]] || : >"$RUN_DIR/out"
    while :; do
        rc=0
        wait "$CHILD" || rc=$?
        if ((rc > 128)) && kill -0 "$CHILD" 2>/dev/null; then continue; fi
        break
    done
    CHILD=
    return "$rc"
}

# The command as one line for a step line.
command_shown() {
    if [[ $1 == *[[:cntrl:]]* ]]; then show "$1"; else printf '%s' "$1"; fi
}

stop_command() {
    COMMAND_RUNNING=0
    timeout -k 2 15 docker exec "$CONTAINER" touchdeploy-run --stop "$COMMAND_PIDFILE" --timeout 5 \
        </dev/null >/dev/null 2>&1 8<&- 9>&- || true
}

# Once, before the switch: nothing live changes, whatever it does or however it ends.
step_command() {
    [[ -n $RELEASE_COMMAND ]] || return 0
    local dir=$CONTAINER_ROOT/releases/$COMMIT${SUBDIR:+/$SUBDIR} config=$CONTAINER_ROOT/config rc=0 t0 why
    [[ -z $NEW_CONFIG ]] || config=$CONTAINER_ROOT/configs/$NEW_CONFIG
    say "command  $(command_shown "$RELEASE_COMMAND") (in $CONTAINER, releases/$(short "$COMMIT")${SUBDIR:+/$SUBDIR}, $(config_shown))"
    now
    t0=$NOW
    COMMAND_RUNNING=1
    run_streamed "$RELEASE_COMMAND_TIMEOUT" docker exec -w "$dir" "$CONTAINER" touchdeploy-run \
        --config "$config" --pidfile "$COMMAND_PIDFILE" -- /bin/sh -c "$RELEASE_COMMAND" || rc=$?
    if ((rc == 0)); then
        COMMAND_RUNNING=0
        say "command  done in $(elapsed "$t0")"
        # It may have taken long: what the server answers now decides how to reload.
        first_probe
        return 0
    fi
    stop_command
    why="exit status $rc"
    ((rc != 124 && rc != 137)) || why="timed out after ${RELEASE_COMMAND_TIMEOUT}s (--release-command-timeout)"
    say "command  failed ($why) in $(elapsed "$t0")"
    die "$E_COMMAND" "the release command failed ($why) in container $CONTAINER: nothing was switched, $(release_shown "$OLD_CURRENT" "the live release") and its env still serve; fix the command or the commit (its output is above) and deploy again"
}

# The process names of a config version, space-separated.
process_names() {
    local field fields=() i names=()
    [[ -n $1 && -f $ROOT/configs/$1/processes ]] || return 0
    while IFS= read -r -d '' field; do fields+=("$field"); done <"$ROOT/configs/$1/processes"
    for ((i = 0; i < ${#fields[@]}; i += 2)); do names+=("${fields[i]}"); done
    printf '%s' "${names[*]}"
}

# Has supervisord in the container run the live config's processes on the live release (the
# tool reads what config and current point to): removed ones stop, new ones start, the others
# restart (SIGTERM, --process-stop-timeout, SIGKILL), each checked to stay up for its startsecs.
# $1: what for, in the step line. Sets SYNC_WHY on failure.
sync_processes() {
    local rc=0 t0 names
    names=$(process_names "$(link_config config)")
    say "restart  processes ${names:-(none)}${1:+ ($1)}: SIGTERM, up to ${PROCESS_STOP_TIMEOUT}s, SIGKILL; then each must stay up"
    now
    t0=$NOW
    run_streamed "$((PROCESS_STOP_TIMEOUT + 60))" docker exec "$CONTAINER" touchdeploy-processes sync \
        --stop-timeout "$PROCESS_STOP_TIMEOUT" --deadline 30 || rc=$?
    if ((rc == 0)); then
        say "restart  done in $(elapsed "$t0")"
        return 0
    fi
    SYNC_WHY=$(last_output | sed -n 's/^error: //p' | tail -n 1)
    [[ -n $SYNC_WHY ]] || SYNC_WHY="touchdeploy-processes exited with status $rc"
    ((rc != 124 && rc != 137)) || SYNC_WHY="the restart did not finish within $((PROCESS_STOP_TIMEOUT + 60))s"
    say "restart  failed in $(elapsed "$t0")"
    return 1
}

# After the health check: the processes on the new release and env, then the release stands.
# A process that does not stay up switches everything back (web, env and processes).
step_restart() {
    if [[ -n $CONTAINER ]] &&
        { has_processes "$NEW_CONFIG" || has_processes "$OLD_CONFIG" || [[ -e $ROOT/.switch.processes ]]; }; then
        # Until they run what is live, the next run restarts them too (even after a SIGKILL).
        : >"$ROOT/.switch.processes" 2>/dev/null || true
        PROCS_TOUCHED=1
        if ! sync_processes "on releases/$(short "$COMMIT"), $(config_shown)"; then
            history_add failed "$COMMIT"
            if [[ $PHASE != switched ]]; then
                die "$E_UNEXPECTED" "the processes do not run on releases/$(short "$COMMIT") ($SYNC_WHY); nothing was switched; see the container's log, fix and deploy again"
            fi
            fail "$E_ROLLED_BACK" "$SYNC_WHY"
        fi
        boundary restart:done
        commit_switch
        rm -f -- "$ROOT/.switch.processes" 2>/dev/null || true
        return 0
    fi
    commit_switch
}

# ---------------------------------------------------------------------------------------------
# release / rollback: check everything, switch, touch once, wait until healthy, else switch back.

OLD_CURRENT=
OLD_PREVIOUS=
NEW_PREVIOUS=
SWITCH_LINKS=1
DONE_EARLY=0
VERB=deploy

# rollback: the release to switch to.
TARGET_CONFIG=

step_target() {
    local live previous live_config
    VERB="roll back to"
    if ((RECOVERED)) && [[ -z $TO ]]; then
        # The interrupted deploy was switched back: that is the rollback asked for.
        COMMIT=$(link_sha current)
        [[ -n $COMMIT ]] || die "$E_NOTHING" "the interrupted deploy was switched back, and nothing was live before it under $ROOT"
        say "rollback the interrupted deploy${RECOVERED_FROM:+ of $(short "$RECOVERED_FROM")} was switched back: $(short "$COMMIT") is current again"
        if [[ -n $HEALTH_URL ]]; then
            step health "waiting for $(short "$COMMIT") on $HEALTH_SHOWN (up to ${HEALTH_TIMEOUT}s)"
            set_deadline "$HEALTH_TIMEOUT"
            wait_served "$COMMIT" "$(link_config config)" ||
                die "$E_URGENT" "URGENT: $(short "$COMMIT") is current again but not healthy ($WHY): check the container (docker logs) now"
            step_done healthy
        fi
        PHASE=committed
        DONE_EARLY=1
        return 0
    fi
    live=$(link_sha current)
    previous=$(link_sha previous)
    live_config=$(link_config config)
    if [[ -n $TO ]]; then
        release_ok "$TO" ||
            die "$E_MISSING" "release $(short "$TO") is not under $ROOT/releases (pruned or never deployed): deploy it instead"
        # A release named by hand goes live with the live env.
        COMMIT=$TO
        TARGET_CONFIG=$live_config
    else
        # previous and previous-config: what was live, with its env, before the last switch.
        [[ -n $live || -n $previous ]] || die "$E_NOTHING" "nothing is live under $ROOT: nothing to roll back"
        [[ -n $previous ]] || die "$E_NOTHING" "nothing to roll back to: $ROOT has no previous release"
        TARGET_CONFIG=$(link_config previous-config)
        [[ $previous != "$live" || $TARGET_CONFIG != "$live_config" ]] ||
            die "$E_NOTHING" "nothing to roll back to: previous is the live release $(short "$live"); name one with --to SHA"
        COMMIT=$previous
    fi
    if [[ $COMMIT == "$live" && $TARGET_CONFIG == "$live_config" ]]; then
        say "already live: $(short "$COMMIT"); nothing to do"
        DONE_EARLY=1
    fi
}

# Everything that can fail, before anything live changes.
step_check() {
    local rel=$ROOT/releases/$COMMIT app real_rel='' real_ini=
    release_ok "$COMMIT" ||
        die "$E_MISSING" "release $(short "$COMMIT") is not fetched under $ROOT/releases: run fetch first"
    app="$rel${SUBDIR:+/$SUBDIR}"
    if [[ ${SUB_ROW[0]} != rollback || -n $SUBDIR ]]; then
        # The app and its uwsgi.ini must be in the release (a symlink may point within it).
        { read -r real_rel && read -r real_ini; } < <(realpath -e -- "$rel" "$app/uwsgi.ini" 2>/dev/null) || true
        [[ -n $real_ini && -f $real_ini && $real_ini == "$real_rel"/* ]] ||
            die "$E_USAGE" "commit $(short "$COMMIT") has no ${SUBDIR:+$SUBDIR/}uwsgi.ini${real_ini:+ inside the release (it points to $real_ini)}: check --subdir (the app's directory in the repository); nothing was switched"
    fi
    check_links
    ensure_trigger
    OLD_CURRENT=$(link_sha current)
    OLD_PREVIOUS=$(link_sha previous)
    OLD_CONFIG=$(link_config config)
    if [[ -z $OLD_CURRENT && -L $ROOT/current && -n $OLD_PREVIOUS ]]; then
        warn "current points to a missing or incomplete release ($(readlink -- "$ROOT/current")): if this fails, switching back goes to previous ($(short "$OLD_PREVIOUS"))"
    fi
    container_user_default
    [[ -z $CONTAINER ]] || check_container
    if [[ ${SUB_ROW[0]} == rollback ]]; then
        NEW_CONFIG=$TARGET_CONFIG
    else
        plan_config
    fi
    if [[ -z $CONTAINER ]] && { has_processes "$NEW_CONFIG" || has_processes "$OLD_CONFIG"; }; then
        local names=() all
        read -r -a names <<<"$(process_names "$OLD_CONFIG") $(process_names "$NEW_CONFIG")"
        all=$(printf '%s\n' "${names[@]}" | LC_ALL=C sort -u)
        die "$E_USAGE" "the app has processes (${all//$'\n'/ }): give --container NAME, they restart with each release; nothing was switched"
    fi
    first_probe
    if ((GUARD)); then
        dependency_guard
    fi
    if [[ $OLD_CURRENT == "$COMMIT" && $NEW_CONFIG == "$OLD_CONFIG" ]]; then
        if [[ -e $ROOT/.switch.processes && -n $CONTAINER ]]; then
            say "check    the processes may not run $(short "$COMMIT") with the live env (an interrupted run): it is reloaded, checked, and they restart"
        elif [[ -z $HEALTH_URL ]] || serves "$COMMIT" "$NEW_CONFIG"; then
            say "already live: $(short "$COMMIT")${HEALTH_URL:+ is served by $HEALTH_SHOWN}; nothing to do"
            DONE_EARLY=1
            return 0
        else
            say "check    current is $(short "$COMMIT") already, but $HEALTH_SHOWN does not serve it (HTTP $HTTP_STATUS, revision $(short "${HTTP_REVISION:-none}")${NEW_CONFIG:+, env ${HTTP_CONFIG:-none}}): it is reloaded and checked"
        fi
    fi
    prepare_switch
}

# The new links and the journal, made aside (no marker yet): the switch itself is renames only,
# and switching back needs no new inode or block (it works on a full disk).
prepare_switch() {
    local what code=1 config=1
    remove_aside_links
    remove_journal_entries
    # previous (and previous-config) become what was live, when something valid was.
    NEW_PREVIOUS=${OLD_CURRENT:-$OLD_PREVIOUS}
    [[ $OLD_CURRENT != "$COMMIT" ]] || code=0
    [[ $NEW_CONFIG != "$OLD_CONFIG" ]] || config=0
    if ((!code && !config)); then
        NEW_PREVIOUS=$OLD_PREVIOUS
        SWITCH_LINKS=0
        return 0
    fi
    SWITCH_LINKS=1
    MADE_LINKS=1
    what="the new current"
    if ((!code)); then
        : # the same release, with another env
    elif [[ $OLD_PREVIOUS == "$COMMIT" ]]; then
        copy_link previous .current.new
    else
        ln -s -- "releases/$COMMIT" "$ROOT/.current.new" 2>/dev/null
    fi || switch_not_prepared "$what"
    what="the new config link"
    if ((config)); then
        if [[ -n $NEW_CONFIG ]]; then
            ln -s -- "configs/$NEW_CONFIG" "$ROOT/.config.new" 2>/dev/null
        else
            ln -s none "$ROOT/.config.new" 2>/dev/null
        fi || switch_not_prepared "$what"
    fi
    what="the journal"
    if [[ -n $OLD_CURRENT ]]; then
        copy_link current .previous.new && copy_link current .switch.current && copy_or_none config .previous-config.new
    elif [[ -n $OLD_PREVIOUS && $OLD_PREVIOUS != "$COMMIT" ]]; then
        # current is dangling: a failure switches back to previous, a success keeps previous.
        copy_link previous .switch.current
    elif [[ -L $ROOT/current ]]; then
        # Dangling, and previous is what we go to: back to the dangling link (nothing live).
        copy_link current .switch.current
    else
        ln -s none "$ROOT/.switch.current" 2>/dev/null
    fi || switch_not_prepared "$what"
    copy_or_none previous .switch.previous || switch_not_prepared "$what"
    copy_or_none config .switch.config || switch_not_prepared "$what"
    copy_or_none previous-config .switch.previous-config || switch_not_prepared "$what"
}

# $2 a copy of the link $1, or a link to "none" when there is no $1.
copy_or_none() {
    if [[ -L $ROOT/$1 ]]; then
        copy_link "$1" "$2"
    else
        ln -s none "$ROOT/$2" 2>/dev/null
    fi
}

switch_not_prepared() {
    die "$E_UNEXPECTED" "cannot make $1 in $ROOT as $(who_am_i) (disk full, out of inodes?); nothing was switched"
}

step_switch() {
    ((SWITCH_LINKS)) || return 0
    local what
    if [[ -L $ROOT/.current.new ]]; then
        what="current -> releases/$(short "$COMMIT")${OLD_CURRENT:+ (was $(short "$OLD_CURRENT"))}"
    else
        what="current stays releases/$(short "$COMMIT")"
    fi
    [[ ! -L $ROOT/.config.new ]] || what+=", config -> configs/${NEW_CONFIG:-none}${OLD_CONFIG:+ (was $OLD_CONFIG)}"
    step switch "$what"
    # The journal: from here on, any failure or signal switches back, now or in the next run.
    copy_link .switch.current .switch || switch_not_prepared "the journal"
    PHASE=switched
    switch_link previous-config
    switch_link previous
    boundary switch:links
    switch_link config
    boundary switch:config
    switch_link current
    step_done
}

# Renames the link made aside (.NAME.new) over NAME; one to "none" removes NAME.
switch_link() {
    [[ -L $ROOT/.$1.new ]] || return 0
    if [[ $(readlink -- "$ROOT/.$1.new") == none ]]; then
        rm -f -- "$ROOT/$1" "$ROOT/.$1.new"
    else
        replace_link ".$1.new" "$1"
    fi
}

step_reload() {
    if ((!RUNNING)); then
        reload_starting_server
    elif ((PROMPT)); then
        touch_trigger
    else
        touch_when_settled "$SETTLE_NS" "$HEALTH_TIMEOUT"
    fi
}

# A server that did not answer before the switch is starting (a new container): wait for it.
# If it comes up on the new release no reload is needed; if on the old one, it is touched once
# it has answered for SETTLE_NS.
reload_starting_server() {
    local deadline
    step start "the server is not answering yet: waiting for it to start (up to ${HEALTH_TIMEOUT}s)"
    now
    deadline=$((NOW + HEALTH_TIMEOUT * 1000000000))
    while :; do
        observe 2
        if [[ $HTTP_STATUS != 000 && $HTTP_REVISION == "$COMMIT" && $HTTP_CONFIG == "$NEW_CONFIG" ]]; then
            step_done "it started on releases/$(short "$COMMIT"), no reload needed:"
            TRIGGER_NS=$NOW
            return 0
        fi
        if ((UP_SINCE && NOW - UP_SINCE >= SETTLE_NS)); then
            step_done "up on $(short "${HTTP_REVISION:-unknown}")"
            touch_trigger
            return 0
        fi
        if ((NOW >= deadline)); then
            step_done "still not answering"
            touch_trigger
            return 0
        fi
        sleep 0.1
    done
}

step_health() {
    [[ -n $HEALTH_URL ]] || return 0
    step health "waiting for $(short "$COMMIT")${NEW_CONFIG:+ with env $NEW_CONFIG} on $HEALTH_SHOWN (up to ${HEALTH_TIMEOUT}s)"
    set_deadline "$HEALTH_TIMEOUT"
    if wait_served "$COMMIT" "$NEW_CONFIG"; then
        out 'healthy %s after the reload\n' "$(elapsed "$TRIGGER_NS")"
        STEP_OPEN=0
        return 0
    fi
    close_step "unhealthy: $WHY"
    local why=$WHY
    history_add failed "$COMMIT"
    if [[ -n $RUNTIME_FAILURE ]]; then
        :
    elif [[ $HTTP_STATUS == 200 && -n $HTTP_REVISION && $HTTP_REVISION != "$COMMIT" ]]; then
        why+="; the server never reloaded: does its container mount $ROOT and watch $RELOAD_FILE (TOUCHDEPLOY_RELOAD_FILE), or did the new release fail to start (the container's log: touchdeploy-generations: ... FAILED)?"
    elif [[ $HTTP_STATUS == 200 && $HTTP_REVISION == "$COMMIT" && $HTTP_CONFIG != "$NEW_CONFIG" ]]; then
        why+="; the server does not serve env $NEW_CONFIG: does its image apply touchdeploy's env (the runtime image of this version sends X-Touchdeploy-Config)?"
    fi
    if [[ $PHASE != switched ]]; then
        die "$E_URGENT" "URGENT: could not $VERB $(short "$COMMIT"): it failed its health check ($why), and there is no other release to switch back to: nothing healthy is serving; fix it and deploy again, or run 'touchdeploy.sh rollback --to SHA'"
    fi
    undo_switch "it failed its health check ($why)" health
}

# The release passed its health check (or there is none to pass) and its processes run: it
# stands.
commit_switch() {
    rm -f -- "$ROOT/.switch"
    PHASE=committed
    remove_journal_entries
    history_add live "$COMMIT"
}

# Switches back from the journal, reloads, waits for the release live before, and exits: 6 when
# it serves again, 7 when it does not or there was none. $2: why (health, signal or failure).
# Further signals shorten the wait.
undo_switch() {
    local reason=$1 kind=$2 back back_config limit advice what
    PHASE=undoing
    trap - ERR
    set +e
    trap 'undo_signal' INT TERM HUP
    back=$(journal_sha current)
    release_ok "$back" || back=
    # The env that went with it (a journal from before config links: the live one, unswitched).
    if [[ -L $ROOT/.switch.config ]]; then
        back_config=$(journal_config config)
    else
        back_config=$(link_config config)
    fi
    boundary undo:start
    what="back: current -> $(release_shown "$back" "nothing (no release was live)")"
    [[ $back_config == "$(link_config config)" ]] || what+=", config -> configs/${back_config:-none}"
    step switch "$what"
    if ! restore_links; then
        die "$E_URGENT" "URGENT: could not $VERB $(short "$COMMIT") ($reason) AND could not switch back ($(who_am_i) cannot write in $ROOT): run 'touchdeploy.sh rollback' as soon as that is fixed"
    fi
    step_done
    boundary undo:links
    limit=$HEALTH_TIMEOUT
    [[ $kind != signal ]] || limit=$((HEALTH_TIMEOUT < 10 ? HEALTH_TIMEOUT : 10))
    case $kind in
    health) advice="fix the commit (see the container's log) and deploy again" ;;
    signal) advice="deploy again when ready" ;;
    *) advice="fix what failed and deploy again" ;;
    esac
    # Reload what is current again when the server may have loaded the failed release.
    local touched_back=1
    if [[ -n $back ]]; then
        if ((TOUCHED)); then
            touch_when_settled "$SETTLE_NS" "$limit" || touched_back=0
        elif ((!RUNNING)) && [[ -n $HEALTH_URL ]]; then
            probe 1
            if [[ $HTTP_STATUS != 000 && $HTTP_REVISION != "$back" ]]; then
                touch_when_settled "$SETTLE_NS" "$limit" || touched_back=0
            fi
        fi
    fi
    if ((!touched_back)); then
        clear_journal
        die "$E_URGENT" "URGENT: could not $VERB $(short "$COMMIT") ($reason) AND could not touch $ROOT/$RELOAD_FILE to reload $(short "$back"): current is $(short "$back") again, but the server may still run the failed release: restart the container now"
    fi
    boundary undo:reload
    clear_journal
    if [[ -z $back ]]; then
        die "$E_URGENT" "URGENT: could not $VERB $(short "$COMMIT"): $reason, and there is no other release to switch back to: nothing healthy is serving; fix it and deploy again, or run 'touchdeploy.sh rollback --to SHA'"
    fi
    if [[ -z $HEALTH_URL ]]; then
        undo_processes
        die "$E_ROLLED_BACK" "could not $VERB $(short "$COMMIT"): $reason; switched back: commit $(short "$back") is current again (not checked: no --health-url)$PROCS_BACK; $advice"
    fi
    step health "waiting for $(short "$back") on $HEALTH_SHOWN (up to ${limit}s)"
    set_deadline "$limit"
    if wait_served "$back" "$back_config"; then
        out 'healthy %s after the reload\n' "$(elapsed "$TRIGGER_NS")"
        STEP_OPEN=0
        undo_processes
        die "$E_ROLLED_BACK" "could not $VERB $(short "$COMMIT"): $reason; switched back: commit $(short "$back") is serving again$PROCS_BACK; $advice"
    fi
    local why=$WHY
    undo_processes
    die "$E_URGENT" "URGENT: could not $VERB $(short "$COMMIT") ($reason) AND switching back to $(short "$back") did not become healthy ($why)$PROCS_BACK: the app is down; check the container (docker logs) now"
}

# Switching back after the processes were restarted: restart them on what is live again.
PROCS_BACK=
undo_processes() {
    ((PROCS_TOUCHED)) || return 0
    if sync_processes "back"; then
        rm -f -- "$ROOT/.switch.processes" 2>/dev/null || true
        PROCS_BACK=", its processes restarted"
    else
        PROCS_BACK=", but its processes did not restart ($SYNC_WHY; the next release restarts them)"
    fi
}

# A signal while switching back: finish switching back, but wait at most 5 s more for health.
undo_signal() {
    kill_child
    now
    local cap=$((NOW + 5000000000))
    ((DEADLINE_NS == 0 || DEADLINE_NS > cap)) && DEADLINE_NS=$cap
    return 0
}

# ---------------------------------------------------------------------------------------------
# prune: keep the --keep releases live most recently (by the history, not by file times), the
# --keep fetched most recently and never tried (a release about to be made live by another
# run), and always current and previous. A failed release goes first. Problems are warnings.

step_prune() {
    local live=$COMMIT previous=$NEW_PREVIOUS name removed=() problems=() t event sha
    local -A live_at=() fetched_at=() tried=() keep=()
    # current and previous are what this run made them: no readlink needed.
    step prune "keeping the newest $KEEP releases"
    local names=()
    for name in "$ROOT"/releases/*; do
        name=${name##*/}
        [[ $name =~ ^[0-9a-f]{40}$ ]] || continue
        if [[ -L $ROOT/releases/$name ]]; then
            problems+=("releases/$name is a symlink, not a release: left alone")
            continue
        fi
        names+=("$name")
    done
    if ((${#names[@]} > KEEP)); then
        if [[ -f $ROOT/.history ]]; then
            while read -r t event sha; do
                [[ $t =~ ^[0-9]+$ && $sha =~ ^[0-9a-f]{40}$ ]] || continue
                case $event in
                live) live_at[$sha]=$t tried[$sha]=1 ;;
                failed) tried[$sha]=1 ;;
                fetched) fetched_at[$sha]=$t ;;
                esac
            done <"$ROOT/.history"
        fi
        # Releases the history does not know (made before it existed): their directory's time.
        for name in "${names[@]}"; do
            if [[ -z ${live_at[$name]+x} && -z ${fetched_at[$name]+x} && -z ${tried[$name]+x} ]]; then
                t=$(stat -c %Y -- "$ROOT/releases/$name" 2>/dev/null) || t=0
                live_at[$name]=${t}000000000 tried[$name]=1
            fi
        done
        [[ -z $live ]] || keep[$live]=1
        [[ -z $previous ]] || keep[$previous]=1
        keep_newest live_at 1
        keep_newest fetched_at 0
        for name in "${names[@]}"; do
            [[ -z ${keep[$name]+x} ]] || continue
            if remove_tree "$ROOT/releases/$name"; then
                removed+=("$(short "$name")")
            else
                problems+=("could not remove releases/$(short "$name") ($(last_output | head -n 1)): remove it by hand")
            fi
        done
    fi
    prune_cache "${#removed[@]}"
    ((${#removed[@]} == 0)) || compact_history
    PRUNE_PROBLEMS=()
    CONFIGS_REMOVED=0
    prune_configs
    problems+=("${PRUNE_PROBLEMS[@]}")
    step_done "removed ${#removed[@]}${removed[*]:+ (${removed[*]})}$( ((CONFIGS_REMOVED == 0)) || printf ' and %d unused env version(s)' "$CONFIGS_REMOVED")"
    for name in "${problems[@]}"; do warn "prune: $name"; done
}

# Marks in keep[] the KEEP releases of names[] with the latest time in the array named $1,
# among those tried ($2 = 1) or never tried ($2 = 0); a tie goes to the greater name.
keep_newest() {
    local -n times=$1
    local want=$2 n best name is_tried
    local -A taken=()
    for ((n = 0; n < KEEP; n++)); do
        best=
        for name in "${names[@]}"; do
            is_tried=0
            [[ -z ${tried[$name]+x} ]] || is_tried=1
            ((is_tried == want)) || continue
            [[ -z ${taken[$name]+x} ]] || continue
            if [[ -z $best ]] || ((${times[$name]:-0} > ${times[$best]:-0})); then
                best=$name
            elif ((${times[$name]:-0} == ${times[$best]:-0})) && [[ $name > $best ]]; then
                best=$name
            fi
        done
        [[ -n $best ]] || break
        taken[$best]=1
        keep[$best]=1
    done
}

# Refs of commits whose release is gone (or never extracted) would keep their objects forever.
# Read from the ref files and packed-refs: no git process when there is nothing to delete.
prune_cache() {
    local ref sha line deletions=()
    for ref in "$ROOT"/repo.git/refs/touchdeploy/commits/*; do
        sha=${ref##*/}
        if [[ $sha =~ ^[0-9a-f]{40}$ && ! -d $ROOT/releases/$sha ]]; then
            deletions+=("delete refs/touchdeploy/commits/$sha")
        fi
    done
    if [[ -f $ROOT/repo.git/packed-refs ]]; then
        while read -r _ line; do
            [[ $line == refs/touchdeploy/commits/* ]] || continue
            sha=${line##*/}
            if [[ $sha =~ ^[0-9a-f]{40}$ && ! -d $ROOT/releases/$sha ]]; then
                deletions+=("delete $line")
            fi
        done <"$ROOT/repo.git/packed-refs"
    fi
    if ((${#deletions[@]})); then
        printf '%s\n' "${deletions[@]}" | git_local update-ref --stdin 2>/dev/null || true
    fi
    if (($1 > 0 || ${#deletions[@]} > 0)); then
        run_limited 300 git -C "$ROOT/repo.git" -c gc.autoDetach=false gc --auto --quiet || true
    fi
}

# Keeps the history's last event of each kind for releases still on disk, and the triggers.
compact_history() {
    [[ -f $ROOT/.history ]] || return 0
    local tmp="$ROOT/.history.tmp-$$" t event sha key
    local -A last=()
    local order=()
    while read -r t event sha; do
        if [[ $event == trigger ]] || [[ -d $ROOT/releases/$sha ]]; then
            key="$event $sha"
            [[ -n ${last[$key]+x} ]] || order+=("$key")
            last[$key]=$t
        fi
    done <"$ROOT/.history"
    {
        for key in "${order[@]}"; do printf '%s %s\n' "${last[$key]}" "$key"; done | sort -n >"$tmp" &&
            mv -f -- "$tmp" "$ROOT/.history"
    } 2>/dev/null || rm -f -- "$tmp" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
# destroy: what `pulumi destroy` runs. shared/ and state/ are the operator's and the app's.

# The containers (running or not) that the program labelled with this root (containerArgs:
# touchdeploy.root), in USING; NOT_CHECKED says why there is no answer. A container still there
# when destroy runs means the root is not this resource's alone any more: a host renamed (or
# moved to another stack) with the same root, whose new container exists before the old host's
# destroy runs (the engine deletes replaced resources last).
containers_using_root() {
    USING='' NOT_CHECKED=''
    if ! command -v docker >/dev/null 2>&1; then
        return 0
    fi
    if run_limited 30 docker ps -a --filter "label=touchdeploy.root=$ROOT" --format '{{.Names}}'; then
        USING=$(last_output | tr -s '\n' ' ')
        USING=${USING% }
    else
        NOT_CHECKED="Docker did not answer ($(last_output | head -n 1)): not checked whether a container still uses the root"
    fi
}

step_destroy() {
    local name removed=() problems=() triggers=() t event sha entry
    step destroy "removing what touchdeploy made under $ROOT"
    containers_using_root
    if [[ -n $USING ]]; then
        step_done "removed nothing: container(s) $USING still use $ROOT (label touchdeploy.root); a host renamed with the same root keeps its files. Once no container uses the root, run destroy again to clean it"
        return 0
    fi
    triggers=("$RELOAD_FILE")
    if [[ -f $ROOT/.history ]]; then
        while read -r t event sha; do
            [[ $event == trigger ]] && reload_file_ok "$sha" && triggers+=("$sha")
        done <"$ROOT/.history"
    fi
    for entry in "$ROOT"/* "$ROOT"/.[!.]* "$ROOT"/..?*; do
        [[ -e $entry || -L $entry ]] || continue
        name=${entry##*/}
        case $name in shared | state) continue ;; esac
        if is_reserved "$name" || [[ " ${triggers[*]} " == *" $name "* ]]; then
            if remove_tree "$entry"; then
                removed+=("$name")
            else
                problems+=("$name ($(last_output | head -n 1))")
            fi
        fi
    done
    if ((${#problems[@]})); then
        die "$E_UNEXPECTED" "could not remove ${problems[*]} under $ROOT as $(who_am_i): remove them by hand (owned by another user?) and run destroy again"
    fi
    # shared/ and state/ are kept with what they hold; empty, they hold nothing of anyone's.
    local kept=()
    for name in shared state; do
        [[ -d $ROOT/$name && ! -L $ROOT/$name ]] && rmdir -- "$ROOT/$name" 2>/dev/null && removed+=("$name/")
        [[ ! -e $ROOT/$name ]] || kept+=("$name/")
    done
    rm -f -- "$ROOT/.lock" "$ROOT"/.lock.* 2>/dev/null || true
    if rmdir -- "$ROOT" 2>/dev/null; then
        step_done "removed ${removed[*]:-nothing} and the root (it was empty then)${NOT_CHECKED:+ ($NOT_CHECKED)}"
    else
        step_done "removed ${removed[*]:-nothing}; kept ${kept[*]:-the root: it holds other files}${NOT_CHECKED:+ ($NOT_CHECKED)}"
    fi
}

# ---------------------------------------------------------------------------------------------
# Subcommands.

ALREADY_FETCHED=0

cmd_status() {
    local live pending
    [[ -d $ROOT ]] || die "$E_NOTHING" "nothing is live under $ROOT (no such directory; is --root right?)"
    if [[ -L $ROOT/.switch ]]; then
        pending=$(readlink -- "$ROOT/current" 2>/dev/null) || pending=
        live=$(journal_sha current)
        release_ok "$live" || live=
        warn "a run was killed after switching current to ${pending:-nothing} and before it passed its health check: the next setup, fetch, release, deploy or rollback switches back to ${live:-nothing}"
    else
        live=$(link_sha current)
    fi
    [[ -n $live ]] || die "$E_NOTHING" "nothing is live under $ROOT (no current release): deploy a commit first"
    printf '%s\n' "$live"
}

report() {
    local t0=$1
    ((DONE_EARLY)) && [[ ${SUB_ROW[0]} != setup && ${SUB_ROW[0]} != fetch ]] && return 0
    case ${SUB_ROW[0]} in
    setup)
        say "setup    $ROOT ready (releases/, shared/, repo.git, $RELOAD_FILE${STATE_DIRS[*]:+, state/: ${STATE_DIRS[*]}})"
        # The container's user (the program runs the container as it): a line of its own.
        container_user_default
        say "user $CT_UID:$CT_GID"
        ;;
    fetch) ((ALREADY_FETCHED)) || say "fetched  $(short "$COMMIT") in $(elapsed "$t0")" ;;
    release | deploy) say "deployed $(short "$COMMIT") in $(elapsed "$t0")" ;;
    rollback) say "rolled back to $(short "$COMMIT") in $(elapsed "$t0")" ;;
    esac
}

# Removes from the environment what would change what git, tar and the shell do: a GIT_DIR
# exported by the caller would redirect every git command, TAR_OPTIONS would change extraction.
scrub_environment() {
    local name
    for name in $(compgen -e); do
        case $name in
        GIT_* | TAR_OPTIONS | TAPE | POSIXLY_CORRECT | CDPATH | GLOBIGNORE | SSH_ASKPASS | CURL_HOME)
            unset "$name"
            ;;
        esac
    done
}

main() {
    # Nothing below may read the script text that bash -s is still reading from stdin; fd 8
    # keeps it for --payload, whose records follow the script (bash -s has read exactly up to
    # the script's last line when main runs).
    exec 8<&0 </dev/null
    umask 022
    MAIN_PID=$BASHPID
    scrub_environment
    export LC_ALL=C GIT_TERMINAL_PROMPT=0 GIT_ALLOW_PROTOCOL=file:git:http:https:ssh
    trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR
    trap on_exit EXIT
    trap 'on_signal INT' INT
    trap 'on_signal TERM' TERM
    trap 'on_signal HUP' HUP
    # A dropped connection must not kill a deploy half-way: our writes fail instead (ignored).
    # Trapped, not ignored: an ignored SIGPIPE would be inherited by git, tar and curl.
    trap ':' PIPE
    local sub=${1-} t0 step
    index_tables
    now
    t0=$NOW
    case $sub in
    -h | --help | help)
        # Into a pager or head, the pipe may close early: not a failure.
        { usage || true; } 2>/dev/null
        exit 0
        ;;
    '')
        { usage >&2 || true; } 2>/dev/null
        exit "$E_USAGE"
        ;;
    check)
        # The same parsing and validation as the real subcommand, and nothing else: the
        # program's own validation is tested against this (test/unit/hostRules.test.ts).
        shift
        sub=${1-}
        find_subcommand "$sub" ||
            die "$E_USAGE" "check: unknown subcommand $(show "$sub") ($(subcommand_names))"
        shift
        CHECK_ONLY=1
        parse_args "$sub" "$@"
        validate_options
        [[ -z $PAYLOAD ]] || read_payload
        exec 8<&-
        say "check    $sub: every option is valid${PAYLOAD:+, and the payload ($(payload_summary))}"
        exit 0
        ;;
    esac
    find_subcommand "$sub" || die "$E_USAGE" "unknown subcommand $(show "$sub") ($(subcommand_names))"
    shift
    parse_args "$sub" "$@"
    validate_options
    [[ -z $PAYLOAD ]] || read_payload
    exec 8<&-
    require_tools
    if [[ ${SUB_ROW[0]} == status ]]; then
        cmd_status
        exit 0
    fi
    RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/touchdeploy.XXXXXX" 2>/dev/null) || RUN_DIR=
    if [[ ${TOUCHDEPLOY_TRACE-} == 1 ]]; then
        PS4='+ touchdeploy:${LINENO}: '
        set -x
    fi
    for step in ${SUB_ROW[4]}; do
        ((!DONE_EARLY)) || break
        STEP_NAME=$step
        boundary "$step"
        "step_$step"
    done
    STEP_NAME=end
    boundary end
    report "$t0"
}

subcommand_names() {
    local r joined=''
    for r in "${SUBCOMMANDS[@]}"; do
        row "$r"
        joined+="${joined:+, }${ROW[0]}"
    done
    printf '%s' "$joined"
}

main "$@"
