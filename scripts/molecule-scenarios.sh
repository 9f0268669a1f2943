#!/usr/bin/env bash
# Run molecule scenarios (all, or those named), each through its whole sequence.
#
# A scenario that passed is recorded with a hash of everything it depends on: the
# collection's code, the test bed, the scenario itself, the pinned requirements and
# the test images. While that hash is unchanged, a later run skips it and says so
# (a second `make test` on the same machine then takes minutes, not tens of minutes).
# GPUFLEET_FORCE=1 runs every scenario regardless.
set -uo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$GPUFLEET_ROOT" || exit 1

RESULTS=$GPUFLEET_CACHE/results
PASSED=$GPUFLEET_CACHE/molecule-passed
mkdir -p "$RESULTS" "$PASSED"

inputs_of() {
  {
    git ls-files -co --exclude-standard -- plugins roles playbooks galaxy.yml meta requirements \
      .config/molecule tests/support tests/hosts tests/images "molecule/$1" \
      scripts/lib.sh scripts/build-test-images.sh scripts/fetch-demo-inputs.sh scripts/molecule-scenarios.sh \
      scripts/build-engine-images.sh \
      | LC_ALL=C sort | xargs -d '\n' sha256sum
    for image in gpufleet/debian:bookworm gpufleet/test-host:bookworm gpufleet/vulkan-build:bookworm gpufleet/nginx:bookworm; do
      echo "$image $(image_label "$image" org.gpufleet.inputs)"
    done
    if uses_engine_images "$1"; then
      cat "$GPUFLEET_CACHE"/images/llamacpp-*.ref "$GPUFLEET_CACHE"/images/vllm-*.ref 2>/dev/null || true
    fi
  } | sha256sum | cut -d' ' -f1
}

scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  mapfile -t scenarios < <(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -n1 basename | sort)
fi

status=0
for s in "${scenarios[@]}"; do
  hash=$(inputs_of "$s")
  if [ "${GPUFLEET_FORCE:-0}" != 1 ] && [ -f "$PASSED/$s" ] && [ "$(cut -d' ' -f1 "$PASSED/$s")" = "$hash" ]; then
    log "$s: passed on $(cut -d' ' -f2- "$PASSED/$s") with the same inputs; skipped (GPUFLEET_FORCE=1 runs it)"
    echo "skipped 0 $(cut -d' ' -f2- "$PASSED/$s")" >"$RESULTS/molecule-$s.status"
    continue
  fi
  echo "== molecule test -s $s"
  start=$(date +%s)
  rm -f "$RESULTS/verify-$s.xml"
  if molecule test -s "$s"; then
    echo "passed $(( $(date +%s) - start ))" >"$RESULTS/molecule-$s.status"
    echo "$hash $(date -u +%Y-%m-%dT%H:%MZ)" >"$PASSED/$s"
  else
    echo "failed $(( $(date +%s) - start ))" >"$RESULTS/molecule-$s.status"
    rm -f "$PASSED/$s"
    status=1
  fi
done
exit "$status"
