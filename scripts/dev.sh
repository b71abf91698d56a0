#!/usr/bin/env bash
# The README's first command: sets up and runs the dev stack, i.e. this repository's
# examples/hello-wsgi in a long-lived container on http://localhost:8000, deployed from the head
# of the local `main` branch. Run it again after committing a change: only the release
# commands are replaced, the container keeps running.
#
#   bash scripts/dev.sh [--stack NAME] [pulumi up options...]
#
# --stack django runs the Django example instead (Pulumi.django.yaml: examples/django-app on
# http://localhost:8001, migrated before each switch, with a worker). Its DJANGO_SECRET_KEY is no
# committed value: on the first run this script generates a random one into the stack's
# encrypted config (`pulumi config set --secret --path`, the value on stdin, never in argv).
#
# On a fresh Debian/Ubuntu machine it brings what it needs, as scripts/test.sh does:
# - Docker: Debian's docker.io (with git, curl and flock) when run as root, and starts the daemon;
# - the Pulumi CLI, when neither `pulumi` on PATH nor ~/.pulumi/bin/pulumi exists: Pulumi's
#   official installer (`curl -fsSL https://get.pulumi.com | sh`), which downloads the CLI into
#   ~/.pulumi/bin and, when `pulumi` is not on PATH, adds that directory to PATH in ~/.bashrc
#   (bash) or ~/.zshrc (zsh). An existing install is used as it is. TOUCHDEPLOY_PULUMI_VERSION
#   pins the version installed.
# Node.js 20+ must be there already. On macOS the dev stack's release commands run on this
# machine and need GNU tools (see check_gnu_tools).
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  printf 'touchdeploy-dev: error: %s\n' "$*" >&2
  exit 1
}
log() { printf 'touchdeploy-dev: %s\n' "$*"; }

# The stack: dev (hello-wsgi) unless --stack names another local one (django).
stack=dev
if [[ ${1-} == --stack ]]; then
  [[ -n ${2-} ]] || die "--stack needs a name (dev or django)"
  stack=$2
  shift 2
fi
[[ $stack =~ ^[A-Za-z0-9_.-]+$ && -f Pulumi.$stack.yaml ]] ||
  die "no stack file Pulumi.$stack.yaml here (the local stacks are dev and django)"

is_root() { [[ $(id -u) -eq 0 ]]; }

apt_install() {
  log "installing Debian packages: $*"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The host script runs here for the dev stack's local host: bash 4.4+, flock and GNU coreutils
# (stat -c, touch -d @EPOCH, mv -T, sha256sum). macOS ships bash 3.2 and BSD tools.
check_gnu_tools() {
  local missing=()
  bash -c '((BASH_VERSINFO[0] > 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] >= 4)))' ||
    missing+=("bash 4.4+ (the first bash on PATH is $(bash -c 'echo "$BASH_VERSION"'))")
  command -v flock >/dev/null || missing+=("flock")
  stat -c %a . >/dev/null 2>&1 || missing+=("GNU stat (stat -c)")
  command -v sha256sum >/dev/null || missing+=("sha256sum")
  if ((${#missing[@]} > 0)); then
    die "on macOS the dev stack's release commands run on this machine and need GNU tools; missing: ${missing[*]}. Install them with Homebrew and put GNU coreutils first on PATH:
  brew install bash coreutils flock
  export PATH=\"\$(brew --prefix coreutils)/libexec/gnubin:\$(brew --prefix)/bin:\$PATH\"
then run scripts/dev.sh again from that shell."
  fi
}

if [[ $(uname -s) == Darwin ]]; then
  check_gnu_tools
fi

# Docker, git, curl, flock: from the distribution when root on Debian/Ubuntu.
missing=()
command -v docker >/dev/null || missing+=(docker.io)
command -v git >/dev/null || missing+=(git)
command -v curl >/dev/null || missing+=(curl ca-certificates)
command -v flock >/dev/null || missing+=(util-linux)
if ((${#missing[@]} > 0)); then
  if is_root && command -v apt-get >/dev/null; then
    apt_install "${missing[@]}"
  else
    die "not installed: ${missing[*]} (run this script as root on Debian/Ubuntu to install them, or install Docker from https://docs.docker.com/engine/install/)"
  fi
fi
if ! docker info >/dev/null 2>&1; then
  is_root || die "the Docker daemon is not running or not reachable (try: docker info; sudo systemctl start docker)"
  log "starting the Docker daemon"
  if ! { command -v systemctl >/dev/null && systemctl start docker 2>/dev/null; }; then
    nohup dockerd >/var/log/touchdeploy-dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || die "the Docker daemon did not start (see /var/log/touchdeploy-dockerd.log)"
fi

# The Pulumi CLI: the one on PATH, else ~/.pulumi/bin, else Pulumi's official installer.
if ! command -v pulumi >/dev/null; then
  if [[ ! -x $HOME/.pulumi/bin/pulumi ]]; then
    log "installing the Pulumi CLI with Pulumi's official installer (curl -fsSL https://get.pulumi.com | sh): it downloads the CLI into ~/.pulumi/bin and adds that directory to PATH in ~/.bashrc or ~/.zshrc"
    if [[ -n ${TOUCHDEPLOY_PULUMI_VERSION:-} ]]; then
      curl -fsSL https://get.pulumi.com | sh -s -- --version "$TOUCHDEPLOY_PULUMI_VERSION"
    else
      curl -fsSL https://get.pulumi.com | sh
    fi
    [[ -x $HOME/.pulumi/bin/pulumi ]] || die "the Pulumi installer did not install $HOME/.pulumi/bin/pulumi"
  fi
  export PATH="$HOME/.pulumi/bin:$PATH"
  log "using the Pulumi CLI in ~/.pulumi/bin"
fi

command -v node >/dev/null || die "Node.js 20 or newer is not installed (https://nodejs.org/)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  die "Node.js 20 or newer is needed (this is $(node --version))"
git rev-parse --verify -q refs/heads/main >/dev/null ||
  die "this repository has no local 'main' branch, which the dev stack deploys (set touchdeploy:branch)"

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "installing npm packages"
  npm ci --no-audit --no-fund
fi

# Use the operator's Pulumi login if there is one, else a local state directory in the project.
if ! pulumi whoami >/dev/null 2>&1; then
  export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$PWD/.pulumi-local}"
  mkdir -p .pulumi-local
  log "no Pulumi login: keeping state in .pulumi-local/"
fi
# The local stacks' secrets are generated here for this machine only; an empty passphrase (unless
# you set one) keeps the local backend non-interactive.
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-}"

pulumi stack select "$stack" 2>/dev/null || pulumi stack init "$stack"

# A secret the stack needs and no one committed: a random value, set once, encrypted in
# Pulumi.<stack>.yaml (do not commit that file then). On stdin, so it is never in argv or `ps`.
generate_secret() {
  local key=$1
  if ! pulumi config get --stack "$stack" --path "$key" >/dev/null 2>&1; then
    log "generating a random $key into the $stack stack's encrypted config"
    node -e 'process.stdout.write(require("crypto").randomBytes(48).toString("base64url"))' |
      pulumi config set --stack "$stack" --secret --path "$key"
  fi
}
case $stack in
django) generate_secret 'touchdeploy:secretEnv.DJANGO_SECRET_KEY' ;;
esac

pulumi up --yes --stack "$stack" "$@"

url=$(pulumi stack output --stack "$stack" --json hosts | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(Object.values(JSON.parse(s))[0].url))')
log "serving at $url:"
curl -fsS "$url"
