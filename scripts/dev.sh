#!/usr/bin/env bash
# The README's first command: sets up and runs the dev stack, i.e. this repository's
# examples/hello-wsgi in a long-lived container on http://localhost:8000, deployed from the head
# of the local `main` branch. Run it again after committing a change: only the release
# commands are replaced, the container keeps running.
#
# Needs: Docker (a running daemon), the Pulumi CLI, Node.js 20+, bash, git, curl, flock.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'touchdeploy-dev: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'touchdeploy-dev: %s\n' "$*"; }

command -v docker >/dev/null || die "docker is not installed (https://docs.docker.com/engine/install/)"
docker info >/dev/null 2>&1 || die "the Docker daemon is not running or not reachable (try: docker info)"
command -v pulumi >/dev/null ||
  die "the Pulumi CLI is not installed: curl -fsSL https://get.pulumi.com | sh (then open a new shell)"
for tool in git curl flock; do
  command -v "$tool" >/dev/null || die "$tool is not installed (the release commands run it on this host)"
done
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
# The dev stack holds no secret; an empty passphrase keeps the local backend non-interactive.
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-}"

pulumi stack select dev 2>/dev/null || pulumi stack init dev
pulumi up --yes --stack dev "$@"

url=$(pulumi stack output --stack dev --json hosts | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(Object.values(JSON.parse(s))[0].url))')
log "serving at $url:"
curl -fsS "$url"
