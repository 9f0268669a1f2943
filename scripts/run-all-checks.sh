#!/usr/bin/env bash
# `make test`: set up what is missing, run every check, print a summary.
# Every check runs even when an earlier one failed, so that one run shows
# everything that is wrong; the exit status is non-zero if anything failed.
#
# On 2 cores the engine image builds keep both cores busy for most of the run, while the molecule
# scenarios mostly wait (on dpkg, systemd, apt, health checks). So, once set up:
# - the engine images build in the background: llama.cpp cpu then vulkan, and beside them the vLLM CPU image
#   (mostly disk work);
# - `make check-cuda` compiles beside everything, at a low priority, for sm_121 (GB10; `make check-cuda` adds sm_90);
# - two lanes take the scenarios from one queue, longest first: a scenario that serves an engine image
#   is taken once that image is built (or is marked not run when its build failed). When prioritize_builds can
#   boost the builds, both lanes wait for the CPU image and the lint, sanity and unit checks run beside them;
#   otherwise one lane takes scenarios at once and the other first runs those checks.
# Each scenario's output goes to .cache/results/molecule-<name>.log; the end of a failed one is printed at the end.
set -uo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$GPUFLEET_ROOT" || exit 1

RESULTS=$GPUFLEET_CACHE/results
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
: >"$RESULTS/stages.tsv"
QUEUE=$RESULTS/queue

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

# ready, failed or pending: whether the engine images a scenario serves are built.
images_state() {
  local image rc state=ready
  for image in $(images_of "$1"); do
    rc=$(cat "$RESULTS/image-$image.rc" 2>/dev/null)
    if [ -z "$rc" ]; then state=pending
    elif [ "$rc" != 0 ]; then echo "failed ($image image)"; return; fi
  done
  echo "$state"
}

# Takes the first queued scenario whose images are built (or failed) off the queue and prints it;
# prints "wait" when every queued scenario waits for an image, nothing when the queue is empty.
# While the CPU image builds with the engine's cgroup boosted (prioritize_builds), a scenario without engine images
# would get a sliver of the CPU and hold its lane when the CPU image is ready: none is started then.
take() {
  local s state rest=() early=""
  [ -z "$ENGINE_CGROUP_WEIGHT" ] || [ -e "$RESULTS/image-cpu.rc" ] || early=1
  exec {lock}>"$QUEUE.lock"
  flock "$lock"
  local taken=""
  while read -r s; do
    [ -n "$s" ] || continue
    if [ -z "$taken" ] && { [ -z "$early" ] || uses_engine_images "$s"; }; then
      state=$(images_state "$s")
      if [ "$state" != pending ]; then taken=$s; continue; fi
    fi
    rest+=("$s")
  done <"$QUEUE"
  printf '%s\n' "${rest[@]}" >"$QUEUE"
  exec {lock}>&-
  if [ -n "$taken" ]; then echo "$taken"; elif [ ${#rest[@]} -gt 0 ]; then echo wait; fi
}

# lane N: runs scenarios off the queue until it is empty.
lane() {
  local n=$1 s state start rc failed_scenarios=()
  while s=$(take) && [ -n "$s" ]; do
    if [ "$s" = wait ]; then sleep 10; continue; fi
    state=$(images_state "$s")
    if [ "$state" != ready ]; then
      echo "notrun $state" >"$RESULTS/molecule-$s.status"
      echo "===== [lane $n] $s: not run, $state"
      continue
    fi
    echo "===== [lane $n] $s: started at $(( $(date +%s) - t0 )) s"
    start=$(date +%s)
    scripts/molecule-scenarios.sh "$s" >"$RESULTS/molecule-$s.log" 2>&1
    rc=$?
    echo "===== [lane $n] $s: $([ "$rc" = 0 ] && echo passed || echo FAILED) ($(( $(date +%s) - start )) s)"
    [ "$rc" = 0 ] || failed_scenarios+=("$s")
  done
  printf '%s\n' "${failed_scenarios[@]}" >"$RESULTS/lane-$n.failed"
}

# failed_tasks LOG: what failed in a scenario's log, since its end is the destroy step: each Ansible task that failed
# (its TASK line and what it printed, up to 40 lines), the tasks idempotence found changed, and the tests that failed.
failed_tasks() {
  # Without colours, and without the frame molecule draws on a terminal.
  sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^ *│ \{0,1\}//' "$1" |
    awk '/^(TASK|PLAY) \[/ { task = $0; n = 0 }
         /^(fatal|failed): \[/ { print task; n = 40 }
         /Idempotence test failed/ { n = 20 }
         /^(FAILED|ERROR) [^ ]*::/ && n == 0 { print }
         n > 0 { print; n--; if (n == 0) print "  [...]" }'
}

# The engine image builds are the critical path: the longest scenarios wait for them. Every container on this engine
# (a build step, a test host, an engine container inside a test host) gets the same CPU share by default, so while a
# few scenarios run a build gets a fraction of the cores: a build step's container gets four times that share.
# And the engine's containers share one cgroup, which weighs as much as one busy process outside it (pytest, the
# sanity tests, each ansible-playbook of a scenario): measured on 2 cores beside the unit tests and two scenarios, the
# CPU image's compile got 8 of 59 CPU-seconds; with the engine's cgroup at 16 times its weight, 50 of 59. So the
# engine's cgroup gets 16 times its weight until the CPU image is built (three of the four longest scenarios wait for
# it, and the Vulkan image is built after it), then 4 times while the other images build (the scenarios then running
# must not stall behind the Vulkan image, which only the last scenario serves), and its own weight back when they end
# (cgroup v1 cpu.shares or v2 cpu.weight, when this user may write it). Runs until the PIDs given have ended.
ENGINE_CGROUP_WEIGHT="" ENGINE_CGROUP_DEFAULT=""
for f in /sys/fs/cgroup/cpu/docker/cpu.shares:1024 /sys/fs/cgroup/cpu,cpuacct/docker/cpu.shares:1024 \
         /sys/fs/cgroup/docker/cpu.weight:100; do
  if [ -w "${f%:*}" ]; then ENGINE_CGROUP_WEIGHT=${f%:*} ENGINE_CGROUP_DEFAULT=${f##*:}; break; fi
done

prioritize_builds() {
  local id command weight="" boost set=""
  local -A boosted=()
  if [ -n "$ENGINE_CGROUP_WEIGHT" ]; then
    weight=$(cat "$ENGINE_CGROUP_WEIGHT")
    # A run stopped before it gave the weight back left a boost: the default is given back then.
    case $weight in $(( ENGINE_CGROUP_DEFAULT * 16 ))|$(( ENGINE_CGROUP_DEFAULT * 4 ))) weight=$ENGINE_CGROUP_DEFAULT ;; esac
    trap 'echo "$weight" >"$ENGINE_CGROUP_WEIGHT" 2>/dev/null' EXIT
    trap 'exit 1' INT TERM
  fi
  while kill -0 "$@" 2>/dev/null; do
    if [ -n "$weight" ]; then
      if [ -e "$RESULTS/image-cpu.rc" ]; then boost=$(( weight * 4 )); else boost=$(( weight * 16 )); fi
      [ "$boost" = "$set" ] || { echo "$boost" >"$ENGINE_CGROUP_WEIGHT" 2>/dev/null; set=$boost; }
    fi
    while read -r id command; do
      # Build steps run "/bin/sh -c ..."; test hosts run /sbin/init. Each container is updated once.
      case $command in
        *"/bin/sh -c "*)
          [ -n "${boosted[$id]:-}" ] || { docker update --cpu-shares 4096 "$id" >/dev/null 2>&1 && boosted[$id]=1; } ;;
      esac
    done < <(docker ps --no-trunc --format '{{.ID}} {{.Command}}' 2>/dev/null)
    sleep 5
  done
}

t0=$(date +%s)
if stage setup make --no-print-directory venv docker images inputs; then
  # The llama.cpp images compile (both cores); the vLLM image mostly unpacks wheels and writes layers (the disk):
  # it builds beside them, so that the scenarios serving it (the longest) can start with the CPU image.
  (
    for image in cpu vulkan; do
      stage "engine-image-$image" scripts/build-engine-images.sh "$image" >>"$RESULTS/engine-images.log" 2>&1
      echo $? >"$RESULTS/image-${image}.rc"
    done
  ) &
  engine_images=$!
  (
    stage engine-image-vllm-cpu scripts/build-engine-images.sh vllm-cpu >"$RESULTS/engine-images-vllm.log" 2>&1
    echo $? >"$RESULTS/image-vllm-cpu.rc"
  ) &
  vllm_image=$!
  prioritize_builds "$engine_images" "$vllm_image" &
  # Longest first (their minutes on 2 cores beside another scenario), so that the two lanes end close together.
  # llamacpp_vulkan comes last: lavapipe runs Vulkan on the CPU, a few minutes alone, but beside another scenario it
  # took about a minute a request (three for the first) and 1138 s in all; its image is the last one built anyway.
  order=(inference_stack fleet vllm_stack nvidia_host strix_host preflight docker_engine_repo vllm_image docker_engine
         llamacpp_vulkan)
  for s in $(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -n1 basename | sort); do
    [[ " ${order[*]} " == *" $s "* ]] || order+=("$s")
  done
  for s in "${order[@]}"; do [ -f "molecule/$s/molecule.yml" ] && echo "$s"; done >"$QUEUE"
  stage check-cuda scripts/check-cuda.sh 121 >"$RESULTS/check-cuda-stage.log" 2>&1 &
  check_cuda=$!
  # The checks that need no engine run beside the two lanes, which wait for the CPU image when the builds are boosted:
  # so that both lanes take the longest scenarios as soon as it is built.
  (
    stage yamllint make --no-print-directory yamllint
    stage ansible-lint make --no-print-directory ansible-lint
    stage changelog make --no-print-directory changelog-lint
    stage docs make --no-print-directory docs-lint
    stage sanity make --no-print-directory sanity
    # Some unit tests wait on local servers and playbooks with timeouts of seconds: not while the host gets a sixth
    # of the CPU (the boost before the CPU image is built).
    while [ -n "$ENGINE_CGROUP_WEIGHT" ] && [ ! -e "$RESULTS/image-cpu.rc" ]; do sleep 10; done
    stage unit make --no-print-directory unit
  ) &
  checks=$!
  lane 2 &
  lane2=$!
  [ -n "$ENGINE_CGROUP_WEIGHT" ] || wait "$checks"
  lane 1
  wait "$checks" "$lane2"
  wait "$check_cuda"
  cat "$RESULTS/check-cuda-stage.log"
  wait "$engine_images" "$vllm_image"
  tail -n 20 "$RESULTS/engine-images.log" "$RESULTS/engine-images-vllm.log"
  cat "$RESULTS"/lane-*.failed 2>/dev/null | while read -r s; do
    [ -n "$s" ] || continue
    echo "===== molecule $s: the tasks that failed (the whole output: .cache/results/molecule-$s.log)"
    failed_tasks "$RESULTS/molecule-$s.log"
    echo "===== the end of molecule $s"
    tail -n 60 "$RESULTS/molecule-$s.log"
  done
fi
echo "===== summary ($(( $(date +%s) - t0 )) s)"
"${VENV:-$GPUFLEET_ROOT/.venv}/bin/python" "$GPUFLEET_ROOT/scripts/summary.py" "$RESULTS"
