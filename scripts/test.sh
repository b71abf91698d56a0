#!/usr/bin/env bash
# The README's test command: installs what the test suite needs on a Debian machine, then runs
# every test (unit, end-to-end on real Docker/uWSGI/sshd/git, and the Automation API test).
#
# End-to-end tests need root (they start dockerd and sshd and create a deploy user). Without
# their prerequisites they report themselves skipped, unless TOUCHDEPLOY_E2E=required (CI),
# where a missing prerequisite fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the end-to-end tests and the benchmark use.
DEBIAN_PACKAGES=(docker.io openssh-server openssh-client debootstrap git curl ca-certificates
  shellcheck wrk docker-registry iproute2 util-linux passwd tar)

log() { printf 'touchdeploy-test: %s\n' "$*"; }

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing Debian packages: ${missing[*]}"
    started=$SECONDS
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    log "installed in $((SECONDS - started))s"
  else
    log "not installed: ${missing[*]} (run as root on Debian to install them; end-to-end tests will say what they miss)"
  fi
fi

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund
fi

log "running the test suite (npm test)"
exec npm test
