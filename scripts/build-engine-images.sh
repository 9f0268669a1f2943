#!/usr/bin/env bash
# Build the engine images the molecule scenarios serve, once, on this machine's engine,
# through the collection's own roles (tests/images/llamacpp.yml), and save each to
# .cache/images/ for the test hosts to `docker load`:
#   llamacpp-<backend>.tar / .ref   for each backend named (default: cpu vulkan)
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
[ ${#backends[@]} -gt 0 ] || backends=(cpu vulkan)

for backend in "${backends[@]}"; do
  ref_file=$IMAGES_DIR/llamacpp-$backend.ref
  start=$(date +%s)
  log "llama.cpp $backend image (a first build takes 10-20 minutes on 2 cores)"
  "${VENV:-$GPUFLEET_ROOT/.venv}/bin/ansible-playbook" -i localhost, tests/images/llamacpp.yml \
    -e "backend=$backend" -e "ref_file=$ref_file" >"$GPUFLEET_CACHE/llamacpp-$backend.log" 2>&1 \
    || { tail -n 40 "$GPUFLEET_CACHE/llamacpp-$backend.log"; die "llama.cpp $backend image failed (log: $GPUFLEET_CACHE/llamacpp-$backend.log)"; }
  ref=$(cat "$ref_file")
  # The tarball is rewritten only when the image changed.
  if [ "$(cat "$IMAGES_DIR/llamacpp-$backend.tar.ref" 2>/dev/null)" != "$ref" ] || [ ! -s "$IMAGES_DIR/llamacpp-$backend.tar" ]; then
    docker save -o "$IMAGES_DIR/llamacpp-$backend.tar.tmp" "$ref"
    mv "$IMAGES_DIR/llamacpp-$backend.tar.tmp" "$IMAGES_DIR/llamacpp-$backend.tar"
    echo "$ref" >"$IMAGES_DIR/llamacpp-$backend.tar.ref"
  fi
  log "ready: $ref ($(( $(date +%s) - start )) s)"
done
