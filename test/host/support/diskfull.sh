#!/usr/bin/env bash
# Runs inside a private mount namespace (unshare -m): a small tmpfs becomes the app root, the
# host script deploys two commits, the disk is filled, then a rollback and a fetch run. Prints
# what happened as KEY=VALUE lines for test/host/hostFailures.test.ts. It uses the old names
# (init, prepare), which every version accepts, so the test can also run an older script.
#   diskfull.sh SCRIPT ROOT REPO SHA_A SHA_B SHA_BIG SUBDIR
set -u
script=$1 root=$2 repo=$3 a=$4 b=$5 big=$6 subdir=$7
mkdir -p "$root"
mount -t tmpfs -o size=3m,mode=755 tmpfs "$root" || exit 90
td() { bash "$script" "$@"; }
td init --root "$root" >/dev/null || exit 91
td deploy --root "$root" --repo "$repo" --commit "$a" --subdir "$subdir" >/dev/null || exit 92
td deploy --root "$root" --repo "$repo" --commit "$b" --subdir "$subdir" >/dev/null || exit 93
head -c 10000000 /dev/zero >"$root/shared/fill" 2>/dev/null
echo "FREE_BEFORE=$(df --output=avail -B1 "$root" | tail -1 | tr -d ' ')"
td rollback --root "$root" >"$root/../rollback.out" 2>"$root/../rollback.err"
echo "ROLLBACK_EXIT=$?"
echo "CURRENT=$(readlink "$root/current")"
echo "PREVIOUS=$(readlink "$root/previous")"
echo "ROLLBACK_ERR=$(tr '\n' '|' <"$root/../rollback.err")"
td prepare --root "$root" --repo "$repo" --commit "$big" >/dev/null 2>"$root/../fetch.err"
echo "FETCH_EXIT=$?"
echo "FETCH_ERR=$(tr '\n' '|' <"$root/../fetch.err")"
echo "DEBRIS=$(find "$root/repo.git/objects" "$root/releases" -name 'tmp_*' -o -name '*.temp' -o -name '.tmp-*' | tr '\n' ' ')"
echo "FREE_AFTER=$(df --output=avail -B1 "$root" | tail -1 | tr -d ' ')"
umount "$root"
