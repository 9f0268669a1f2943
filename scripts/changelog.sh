#!/usr/bin/env bash
# CHANGELOG.rst from changelogs/changelog.yaml and the fragments not released yet, as the release of
# galaxy.yml's version would write it. The release runs on a copy, so the fragments stay where they are.
#
#   scripts/changelog.sh           write CHANGELOG.rst
#   scripts/changelog.sh --check   change nothing; fail when CHANGELOG.rst is not what the fragments give
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

VENV=${VENV:-$GPUFLEET_ROOT/.venv}
check=false
[ "${1:-}" = --check ] && check=true

version=$(awk '$1 == "version:" { print $2 }' "$GPUFLEET_ROOT/galaxy.yml")
[ -n "$version" ] || die "no version in galaxy.yml"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
copy=$work/ansible_collections/gpufleet/inference
mkdir -p "$copy"
# What git tracks (plus new files not ignored) of what the changelog reads: the fragments and the
# plugins whose short descriptions it lists.
(cd "$GPUFLEET_ROOT" && git ls-files -co --exclude-standard -z -- galaxy.yml changelogs meta plugins roles \
  | xargs -0 -I{} cp --parents -P {} "$copy"/)

# --cummulative-release: every plugin added up to this version, not only those of the last release.
(cd "$copy" && PATH=$VENV/bin:$PATH ANSIBLE_COLLECTIONS_PATH=$work antsibull-changelog release --version "$version" \
  --cummulative-release >"$work/release.log" 2>&1) || { cat "$work/release.log" >&2; die "antsibull-changelog release failed"; }

if $check; then
  if ! cmp -s "$copy/CHANGELOG.rst" "$GPUFLEET_ROOT/CHANGELOG.rst"; then
    log "CHANGELOG.rst is stale: it is not what changelogs/ gives for $version (run make changelog):"
    diff -u "$GPUFLEET_ROOT/CHANGELOG.rst" "$copy/CHANGELOG.rst" | head -n 20 >&2 || true
    exit 1
  fi
else
  cp "$copy/CHANGELOG.rst" "$GPUFLEET_ROOT/CHANGELOG.rst"
  log "wrote CHANGELOG.rst ($version)"
fi
