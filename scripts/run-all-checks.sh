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
  # and only the scenarios that serve them wait for them. The CPU images (llama.cpp, vLLM)
  # come first, so that the scenarios serving them run while the Vulkan image builds.
  (
    stage engine-images-cpu scripts/build-engine-images.sh cpu vllm-cpu >"$RESULTS/engine-images.log" 2>&1
    echo $? >"$RESULTS/engine-images-cpu.rc"
    stage engine-images-vulkan scripts/build-engine-images.sh vulkan >>"$RESULTS/engine-images.log" 2>&1
  ) &
  engine_images=$!
  stage yamllint make --no-print-directory yamllint
  stage ansible-lint make --no-print-directory ansible-lint
  stage changelog make --no-print-directory changelog-lint
  stage docs make --no-print-directory docs-lint
  stage sanity make --no-print-directory sanity
  stage unit make --no-print-directory unit
  # The CUDA compile needs no engine and no Docker: it runs beside the scenarios that need no engine
  # image (they mostly wait on dpkg and systemd), its output kept in check-cuda-stage.log.
  stage check-cuda make --no-print-directory check-cuda >"$RESULTS/check-cuda-stage.log" 2>&1 &
  check_cuda=$!
  early=() late_cpu=() late_vulkan=()
  for s in $(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -n1 basename | sort); do
    if ! uses_engine_images "$s"; then early+=("$s")
    elif grep -q '/images/llamacpp-vulkan' "molecule/$s/converge.yml"; then late_vulkan+=("$s")
    else late_cpu+=("$s"); fi
  done
  stage molecule scripts/molecule-scenarios.sh "${early[@]}"
  wait "$check_cuda"
  cat "$RESULTS/check-cuda-stage.log"
  while [ ! -s "$RESULTS/engine-images-cpu.rc" ]; do sleep 5; done
  if [ "$(cat "$RESULTS/engine-images-cpu.rc")" = 0 ]; then
    # The fleet scenario (four hosts) mostly waits on its hosts' engines and health checks: it runs
    # beside the other scenarios that serve the CPU images, its output kept in molecule-fleet.log.
    alongside=() late_rest=()
    for s in "${late_cpu[@]}"; do
      if [ "$s" = fleet ]; then alongside+=("$s"); else late_rest+=("$s"); fi
    done
    fleet_pid=
    if [ ${#alongside[@]} -gt 0 ]; then
      stage molecule-fleet scripts/molecule-scenarios.sh "${alongside[@]}" >"$RESULTS/molecule-fleet.log" 2>&1 &
      fleet_pid=$!
    fi
    if [ ${#late_rest[@]} -gt 0 ]; then
      stage molecule-engines scripts/molecule-scenarios.sh "${late_rest[@]}"
    fi
    if [ -n "$fleet_pid" ]; then
      wait "$fleet_pid"
      cat "$RESULTS/molecule-fleet.log"
    fi
  else
    echo "CPU engine images failed: the scenarios that serve them (${late_cpu[*]}) were not run"
  fi
  if wait "$engine_images"; then
    cat "$RESULTS/engine-images.log"
    stage molecule-vulkan scripts/molecule-scenarios.sh "${late_vulkan[@]}"
  else
    cat "$RESULTS/engine-images.log"
    echo "engine images failed: the scenarios that serve the Vulkan image (${late_vulkan[*]}) were not run"
  fi
fi
echo "===== summary ($(( $(date +%s) - t0 )) s)"
"${VENV:-$GPUFLEET_ROOT/.venv}/bin/python" "$GPUFLEET_ROOT/scripts/summary.py" "$RESULTS"
