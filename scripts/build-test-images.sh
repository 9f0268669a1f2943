#!/usr/bin/env bash
# Build the images the molecule test bed needs, locally (no registry is
# reachable on the test machines):
#   gpufleet/debian:bookworm     debootstrap minbase, imported with `docker import`
#   gpufleet/test-host:bookworm  systemd as PID 1 + python3 (tests/hosts/Dockerfile)
#   gpufleet/vulkan-build:bookworm  the Vulkan build stage's base (tests/images/vulkan-build.Dockerfile)
#   gpufleet/nginx:bookworm      the reverse proxy in front of vLLM services (tests/images/nginx.Dockerfile)
# and save the base image to .cache/images/ so that test hosts can `docker load`
# it into their own (nested) engine. Each image carries a label with the hash
# of its inputs; an image whose inputs did not change is not rebuilt.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

SUITE=bookworm
BASE_IMAGE=gpufleet/debian:$SUITE
HOST_IMAGE=gpufleet/test-host:$SUITE
IMAGES_DIR=$GPUFLEET_CACHE/images
LABEL=org.gpufleet.inputs

mkdir -p "$IMAGES_DIR"

# --- base image -----------------------------------------------------------
mirror=$(apt_mirror)
base_hash=$(printf '%s %s %s\n' "$SUITE" "$mirror" "$(inputs_hash scripts/build-test-images.sh)" | sha256sum | cut -c1-16)
if [ "$(image_label "$BASE_IMAGE" "$LABEL")" != "$base_hash" ]; then
  log "building $BASE_IMAGE with debootstrap (about 30 s)"
  command -v debootstrap >/dev/null || {
    apt_get update -qq && apt_get install -y -qq debootstrap >/dev/null
  }
  rootfs=$(mktemp -d "$GPUFLEET_CACHE/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$GPUFLEET_CACHE/debootstrap.log" 2>&1 \
    || { tail -n 20 "$GPUFLEET_CACHE/debootstrap.log"; die "debootstrap failed"; }
  cat >"$rootfs/etc/apt/apt.conf.d/90gpufleet-test" <<'APT'
Acquire::Languages "none";
APT::Install-Recommends "false";
APT
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import \
    --change "LABEL $LABEL=$base_hash" --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  rm -f "$IMAGES_DIR/debian-$SUITE.tar"
fi
if [ ! -s "$IMAGES_DIR/debian-$SUITE.tar" ]; then
  docker save -o "$IMAGES_DIR/debian-$SUITE.tar" "$BASE_IMAGE"
fi

# --- systemd test host ----------------------------------------------------
host_hash=$(printf '%s %s\n' "$base_hash" "$(inputs_hash tests/hosts/Dockerfile)" | sha256sum | cut -c1-16)
if [ "$(image_label "$HOST_IMAGE" "$LABEL")" != "$host_hash" ]; then
  log "building $HOST_IMAGE"
  docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" --label "$LABEL=$host_hash" \
    -t "$HOST_IMAGE" -f "$GPUFLEET_ROOT/tests/hosts/Dockerfile" "$GPUFLEET_ROOT/tests/hosts" >/dev/null
fi
# --- Vulkan build base ----------------------------------------------------
VULKAN_IMAGE=gpufleet/vulkan-build:$SUITE
vulkan_hash=$(printf '%s %s\n' "$base_hash" "$(inputs_hash tests/images/vulkan-build.Dockerfile)" | sha256sum | cut -c1-16)
if [ "$(image_label "$VULKAN_IMAGE" "$LABEL")" != "$vulkan_hash" ]; then
  log "building $VULKAN_IMAGE"
  docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "APT_MIRROR=$mirror" --label "$LABEL=$vulkan_hash" \
    -t "$VULKAN_IMAGE" -f "$GPUFLEET_ROOT/tests/images/vulkan-build.Dockerfile" "$GPUFLEET_ROOT/tests/images" >/dev/null
  rm -f "$IMAGES_DIR/vulkan-build-$SUITE.tar"
fi
if [ ! -s "$IMAGES_DIR/vulkan-build-$SUITE.tar" ]; then
  docker save -o "$IMAGES_DIR/vulkan-build-$SUITE.tar" "$VULKAN_IMAGE"
fi

# --- reverse proxy (nginx) -------------------------------------------------
NGINX_IMAGE=gpufleet/nginx:$SUITE
nginx_hash=$(printf '%s %s\n' "$base_hash" "$(inputs_hash tests/images/nginx.Dockerfile)" | sha256sum | cut -c1-16)
if [ "$(image_label "$NGINX_IMAGE" "$LABEL")" != "$nginx_hash" ]; then
  log "building $NGINX_IMAGE"
  docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" --label "$LABEL=$nginx_hash" \
    -t "$NGINX_IMAGE" -f "$GPUFLEET_ROOT/tests/images/nginx.Dockerfile" "$GPUFLEET_ROOT/tests/images" >/dev/null
  rm -f "$IMAGES_DIR/nginx-$SUITE.tar"
fi
if [ ! -s "$IMAGES_DIR/nginx-$SUITE.tar" ]; then
  docker save -o "$IMAGES_DIR/nginx-$SUITE.tar" "$NGINX_IMAGE"
fi

log "ready: $BASE_IMAGE ($base_hash), $HOST_IMAGE ($host_hash), $VULKAN_IMAGE ($vulkan_hash), $NGINX_IMAGE ($nginx_hash), $IMAGES_DIR"
