#!/usr/bin/env bash
# What only a GPU can show, in one run of about 8 minutes on a machine with an NVIDIA GPU,
# CUDA's compiler, CMake and Python 3, and neither Docker nor network (the device machine):
#   1. the machine: driver, toolkit, CMake, Python, kernel
#   2. gpu_facts against the real NVML (the module run as Ansible runs it, from the
#      ansible-core and nvidia-ml-py wheels)
#   3. the flags llamacpp_build_plan and llamacpp_cmake_flags compute from those facts
#   4. a native build of llama-server and llama-bench with exactly those flags, laid out
#      as the image lays it out (programs and every libggml-*.so side by side)
#   5. the image check of the llamacpp_image role on that layout, run from another directory
#   6. llama-server serving the smoke model with every layer on the GPU, probed by
#      inference_probe (health, 401 without the key, chat, streamed chat), and what it runs
#      on read from its log as verify reads it
#   7. decode and prompt tokens/s on the GPU against the same binary with -ngl 0
# Inputs: scripts/gpu-smoke-inputs.sh makes them in .cache/gpu-smoke/ (carry that path).
# Output: $OUT (the device tool's), else .cache/gpu-smoke/out: record.md for docs/hardware/
# (see its README) and the raw files. Every step runs even when an earlier one failed.
# GPU_SMOKE_PREBUILT=DIR skips step 4 and takes llama-server, llama-bench and the libraries
# from DIR (to try the script on a machine without CUDA, with the programs of an image).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
IN=${GPU_SMOKE_INPUTS:-$ROOT/.cache/gpu-smoke}
OUT=${OUT:-$IN/out}
WORK=${GPU_SMOKE_WORK:-/tmp/gpufleet-gpu-smoke}
JOBS=${GPU_SMOKE_JOBS:-$(nproc)}
PY=${PYTHON:-python3}
REC=$OUT/record.md
mkdir -p "$OUT" "$WORK"
PYTHONPATH="$(find "$IN/wheels" -name '*.whl' -printf '%p:')$ROOT/collections"
export PYTHONPATH

started=$(date +%s)
say() { printf '%s\n' "$*" >>"$REC"; }
# step TITLE CMD...: the command and its output in the record, with its exit code and time.
step() {
  local title=$1 t0 rc; shift
  t0=$(date +%s)
  { echo; echo "### $title"; echo; echo '```'; echo "\$ $*"; } >>"$REC"
  "$@" >>"$REC" 2>&1
  rc=$?
  { echo "(exit $rc, $(( $(date +%s) - t0 )) s)"; echo '```'; } >>"$REC"
  echo "[gpu-smoke] $title: exit $rc ($(( $(date +%s) - t0 )) s)"
  return $rc
}

: >"$REC"
say "# GPU smoke run, $(date -u +%Y-%m-%d) ($(date -u +%H:%M) UTC)"
say ""
say "Commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown) of gpufleet.inference, scripts/gpu-smoke.sh."

say "" && say "## 1. The machine"
step "nvidia-smi" nvidia-smi
step "toolchain" sh -c 'nvcc --version | tail -n 2; cmake --version | head -n 1; '"$PY"' --version; uname -r; grep PRETTY_NAME /etc/os-release'
nvidia-smi -q -x >"$OUT/nvidia-smi-q.xml" 2>&1

say "" && say "## 2. gpu_facts on the real NVML"
echo '{"ANSIBLE_MODULE_ARGS": {}}' >"$WORK/no-args.json"
step "gpu_facts" sh -c "$PY plugins/modules/gpu_facts.py $WORK/no-args.json | tee $OUT/gpu_facts.json | $PY -m json.tool"

say "" && say "## 3. The build the collection computes for these facts"
step "llamacpp_build_plan + llamacpp_cmake_flags" "$PY" - "$OUT" <<'PY'
import json, sys
from ansible_collections.gpufleet.inference.plugins.filter.llamacpp import llamacpp_build_plan, llamacpp_cmake_flags
out = sys.argv[1]
facts = json.load(open(out + "/gpu_facts.json"))["ansible_facts"]["gpufleet_gpu"]
plan = llamacpp_build_plan(facts, backend="auto")
flags = llamacpp_cmake_flags(plan["backend"], cuda_architectures=plan["cuda_architectures"], hip_targets=plan["hip_targets"])
print(json.dumps(plan, indent=1))
print("\n".join(flags))
json.dump(plan, open(out + "/plan.json", "w"))
open(out + "/cmake-flags.txt", "w").write("\n".join(flags) + "\n")
PY

say "" && say "## 4. Native build with exactly those flags, in the image's layout"
rm -rf "$WORK/app" && mkdir -p "$WORK/app/bin"
if [ -n "${GPU_SMOKE_PREBUILT:-}" ]; then
  say "Not built: the programs and libraries of $GPU_SMOKE_PREBUILT (GPU_SMOKE_PREBUILT)."
  cp -P "$GPU_SMOKE_PREBUILT"/llama-server "$GPU_SMOKE_PREBUILT"/llama-bench "$GPU_SMOKE_PREBUILT"/*.so* "$WORK/app/bin/"
else
  rm -rf "$WORK/src" "$WORK/build" && mkdir -p "$WORK/src"
  tar -xJf "$IN/llama.cpp-src.tar.xz" -C "$WORK/src" --strip-components=1
  mapfile -t FLAGS <"$OUT/cmake-flags.txt"
  step "configure" cmake -S "$WORK/src" -B "$WORK/build" "${FLAGS[@]}" \
    -DLLAMA_BUILD_NUMBER=0 "-DLLAMA_BUILD_COMMIT=$(cat "$IN/llama.cpp-src.commit")"
  step "build llama-server and llama-bench ($JOBS jobs)" \
    cmake --build "$WORK/build" --config Release -j "$JOBS" --target llama-server llama-bench
  find "$WORK/build" -name '*.so*' -exec cp -P {} "$WORK/app/bin/" \;
  cp "$WORK/build/bin/llama-server" "$WORK/build/bin/llama-bench" "$WORK/app/bin/" 2>/dev/null
fi
step "layout" ls "$WORK/app/bin"
export PATH=$WORK/app/bin:$PATH LD_LIBRARY_PATH=$WORK/app/bin

say "" && say "## 5. The image check, from another directory"
step "check" sh -c "cd / && { echo '=== devices'; llama-server --list-devices 2>&1; echo \"=== devices rc=\$?\"; \
  echo '=== bench'; llama-bench -m $ROOT/roles/llamacpp_image/files/check-model.gguf -p 16 -n 4 -r 1 -ngl 99 -o json \
  >$WORK/bench.json 2>$WORK/bench.log; rc=\$?; cat $WORK/bench.log; echo \"=== bench rc=\$rc\"; echo '=== bench json'; \
  cat $WORK/bench.json; } | tee $OUT/check-output.txt"
step "llamacpp_check_report" "$PY" -c "
import json
from ansible_collections.gpufleet.inference.plugins.filter.llamacpp import llamacpp_check_report
backend = json.load(open('$OUT/plan.json'))['backend']
print(json.dumps(llamacpp_check_report(open('$OUT/check-output.txt').read(), backend), indent=1))"

say "" && say "## 6. Serving the smoke model with every layer on the GPU"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/api.key"
chmod 600 "$WORK/api.key"
(cd / && exec llama-server -m "$IN/smoke-model.gguf" --alias smoke --host 127.0.0.1 --port 18080 --ctx-size 4096 \
   --n-gpu-layers 99 --api-key-file "$WORK/api.key" --log-verbosity 4 >"$OUT/server.log" 2>&1) &
server=$!
"$PY" - "$WORK/probe.json" "$WORK/api.key" <<'PY'
import json, sys
json.dump({"ANSIBLE_MODULE_ARGS": {"base_url": "http://127.0.0.1:18080", "api_key": open(sys.argv[2]).read().strip(),
                                   "model": "smoke", "health_timeout": 180, "max_tokens": 64}}, open(sys.argv[1], "w"))
PY
step "inference_probe" sh -c "$PY plugins/modules/inference_probe.py $WORK/probe.json | tee $OUT/probe.json | $PY -m json.tool"
step "what the server runs on (verify's reading of its log)" "$PY" -c "
import json
from ansible_collections.gpufleet.inference.plugins.module_utils import _llamacpp_log
parsed = _llamacpp_log.parse(open('$OUT/server.log').read())
print(json.dumps(dict(_llamacpp_log.summary(parsed), **parsed), indent=1))"
kill "$server" 2>/dev/null; wait "$server" 2>/dev/null

say "" && say "## 7. Tokens/s on the GPU and with -ngl 0 (same binary, same model)"
for ngl in 99 0; do
  step "llama-bench -ngl $ngl" sh -c "cd / && llama-bench -m $IN/smoke-model.gguf -p 512 -n 128 -r 3 -ngl $ngl -o json 2>/dev/null | tee $OUT/bench-ngl$ngl.json"
done
step "GPU / -ngl 0" "$PY" - "$OUT/bench-ngl99.json" "$OUT/bench-ngl0.json" <<'PY'
import json, sys
gpu, cpu = (json.load(open(p)) for p in sys.argv[1:3])
def ts(rows, kind):
    return next(r["avg_ts"] for r in rows if (r["n_gen"] > 0) == (kind == "decode"))
for kind in ("prompt", "decode"):
    print("%s: GPU %.1f tok/s, -ngl 0 %.1f tok/s, ratio %.2f" % (kind, ts(gpu, kind), ts(cpu, kind), ts(gpu, kind) / ts(cpu, kind)))
print("gpu_info:", gpu[0].get("gpu_info"), "| backends:", gpu[0].get("backends"))
PY
say "" && say "Whole run: $(( $(date +%s) - started )) s."
echo "[gpu-smoke] record: $REC"
