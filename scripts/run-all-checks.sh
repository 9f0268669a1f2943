#!/usr/bin/env bash
# `make test`: set up what is missing, run every check, print a summary.
# Every check runs even when an earlier one failed, so that one run shows
# everything that is wrong; the exit status is non-zero if anything failed.
set -uo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$GPUFLEET_ROOT" || exit 1

RESULTS=$GPUFLEET_CACHE/results
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
: >"$RESULTS/stages.tsv"

stage() {
  local name=$1; shift
  local start rc
  start=$(date +%s)
  echo "===== $name: $*"
  "$@"
  rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - start ))" >>"$RESULTS/stages.tsv"
  return "$rc"
}

t0=$(date +%s)
if stage setup make --no-print-directory venv docker images inputs; then
  # Building the engine images keeps both cores busy for a long while, and most checks and
  # scenarios mostly wait (on the network, dpkg, systemd): the images are built meanwhile,
  # and only the scenarios that serve them wait for them.
  stage engine-images make --no-print-directory engine-images >"$RESULTS/engine-images.log" 2>&1 &
  engine_images=$!
  stage yamllint make --no-print-directory yamllint
  stage ansible-lint make --no-print-directory ansible-lint
  stage changelog make --no-print-directory changelog-lint
  stage sanity make --no-print-directory sanity
  stage unit make --no-print-directory unit
  stage check-cuda make --no-print-directory check-cuda
  early=() late=()
  for s in $(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -n1 basename | sort); do
    if uses_engine_images "$s"; then late+=("$s"); else early+=("$s"); fi
  done
  stage molecule scripts/molecule-scenarios.sh "${early[@]}"
  if wait "$engine_images"; then
    cat "$RESULTS/engine-images.log"
    stage molecule-engines scripts/molecule-scenarios.sh "${late[@]}"
  else
    cat "$RESULTS/engine-images.log"
    echo "engine images failed: the scenarios that serve them (${late[*]}) were not run"
  fi
fi
echo "===== summary ($(( $(date +%s) - t0 )) s)"
"${VENV:-$GPUFLEET_ROOT/.venv}/bin/python" "$GPUFLEET_ROOT/scripts/summary.py" "$RESULTS"
