# shellcheck shell=bash
# Helpers shared by the scripts under scripts/. Sourced, not executed.

GPUFLEET_ROOT=${GPUFLEET_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
GPUFLEET_CACHE=${GPUFLEET_CACHE:-$GPUFLEET_ROOT/.cache}

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The Debian mirror this machine's apt already uses, so that test images reach
# the same mirror without naming one in the repository. GPUFLEET_APT_MIRROR wins.
apt_mirror() {
  if [ -n "${GPUFLEET_APT_MIRROR:-}" ]; then
    echo "$GPUFLEET_APT_MIRROR"
    return
  fi
  local uri
  uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | grep -v -- '-security' | head -n1)
  if [ -z "$uri" ]; then
    uri=$(grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
          | awk '{print $2}' | grep -v -- '-security' | head -n1)
  fi
  [ -n "$uri" ] || die "no Debian mirror found in /etc/apt; set GPUFLEET_APT_MIRROR"
  echo "$uri"
}

# sha256 of the given files' contents (and names), for "rebuild only when the inputs changed".
inputs_hash() {
  (cd "$GPUFLEET_ROOT" && sha256sum "$@") | sha256sum | cut -c1-16
}

# Label value of a local image, empty when the image is absent.
image_label() {
  docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# The engine images a molecule scenario serves (cpu, vllm-cpu, vulkan), from what its playbooks and tests load.
images_of() {
  local files=("$GPUFLEET_ROOT/molecule/$1"/*.yml "$GPUFLEET_ROOT/molecule/$1"/tests/*.py)
  grep -qsE '/images/llamacpp-cpu' "${files[@]}" && echo cpu
  grep -qsE 'vllm-(cpu|vars)' "${files[@]}" && echo vllm-cpu
  grep -qsE '/images/llamacpp-vulkan' "${files[@]}" && echo vulkan
  return 0
}

# Whether a molecule scenario serves an engine image.
uses_engine_images() { [ -n "$(images_of "$1")" ]; }

# apt refuses to run after an interrupted dpkg run (a killed install, an upgrade stopped at first
# boot): "E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the
# problem." Its test is whether /var/lib/dpkg/updates/ holds journal files (named by number);
# this finishes that run, says so, and changes nothing otherwise.
repair_dpkg() {
  local journal
  journal=$(find /var/lib/dpkg/updates -maxdepth 1 -type f -regex '.*/[0-9]+' 2>/dev/null | wc -l)
  [ "$journal" -gt 0 ] || return 0
  log "dpkg was interrupted ($journal journal file(s) in /var/lib/dpkg/updates/); running dpkg --configure -a"
  DEBIAN_FRONTEND=noninteractive dpkg --configure -a
}

# apt-get, after repairing an interrupted dpkg run.
apt_get() {
  repair_dpkg
  # make test runs checks side by side: one waits for another's apt or dpkg run instead of failing.
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"
}
