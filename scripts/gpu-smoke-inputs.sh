#!/usr/bin/env bash
# Make what scripts/gpu-smoke.sh needs on a GPU machine that has CUDA's compiler, CMake and
# Python but no network and no Docker, in .cache/gpu-smoke/ (carry it there; about 45 MiB):
#   llama.cpp-src.tar.xz   the llama.cpp tree of .cache/sources/llama.cpp-src.tar.gz without
#                          what a build of llama-server and llama-bench does not read
#                          (models/, docs/, tests/, benches/, media/, the web UI sources)
#   llama.cpp-src.commit   its commit
#   smoke-model.gguf       a Llama-architecture model with random weights (512 wide, 8 layers,
#                          27 M parameters, Q8_0, about 29 MiB): big enough that the GPU's
#                          tokens/s mean something, small enough to carry
#   wheels/                ansible-core and nvidia-ml-py (pure-Python wheels, importable from
#                          the .whl files): gpu_facts and inference_probe run as they do under Ansible
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$GPUFLEET_ROOT"

OUT=$GPUFLEET_CACHE/gpu-smoke
PIP=${VENV:-$GPUFLEET_ROOT/.venv}/bin/pip
mkdir -p "$OUT/wheels"

scripts/fetch-demo-inputs.sh source
if [ ! -s "$OUT/llama.cpp-src.tar.xz" ]; then
  work=$(mktemp -d "$GPUFLEET_CACHE/gpu-smoke.XXXXXX")
  tar -xzf "$GPUFLEET_CACHE/sources/llama.cpp-src.tar.gz" -C "$work"
  top=$(ls "$work")
  rm -rf "${work:?}/$top"/{models,docs,tests,benches,media,tools/ui,examples/*/assets}
  tar -C "$work" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cJf "$OUT/llama.cpp-src.tar.xz.tmp" "$top"
  mv "$OUT/llama.cpp-src.tar.xz.tmp" "$OUT/llama.cpp-src.tar.xz"
  rm -rf "$work"
fi
cp "$GPUFLEET_CACHE/sources/llama.cpp-src.commit" "$OUT/llama.cpp-src.commit"

for requirement in "$(grep -E '^ansible-core==' requirements/controller.txt)" \
                   "$(grep -E '^nvidia-ml-py==' requirements/dev.txt)"; do
  "$PIP" download --quiet --disable-pip-version-check --no-deps --only-binary :all: -d "$OUT/wheels" "$requirement"
done

if [ ! -s "$OUT/smoke-model.gguf" ]; then
  venv=$GPUFLEET_CACHE/gguf-venv
  [ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "$(grep -E '^gguf==' requirements/gpu-smoke.txt)" "$(grep -E '^numpy==' requirements/gpu-smoke.txt)"; }
  "$venv/bin/python" scripts/make-check-model.py --smoke "$OUT/smoke-model.gguf"
fi
du -sh "$OUT"
log "ready: $OUT"
