#!/usr/bin/env bash
# Build, on the test host, two apt repositories laid out like NVIDIA's, each
# signed with its own key generated here and published like NVIDIA's key file:
#
#   ROOT/cuda/compute/cuda/repos/<distro>/<arch>/       like https://developer.download.nvidia.com
#       flat: the .debs, Packages(.gz), Release, InRelease, Release.gpg, 3bf863cc.pub
#   ROOT/toolkit/libnvidia-container/stable/deb/<arch>/ like https://nvidia.github.io
#       flat, the same files; the key at ROOT/toolkit/libnvidia-container/gpgkey
#
# The packages are stand-ins with NVIDIA's names and version schemes. They only
# install the files the roles then check (see ../README.md): no kernel module,
# no libraries. Each repository also carries a newer release than the one the
# roles pin (driver branch 590, toolkit 1.19.2), so that the pins are what keeps
# the host on 580 and 1.19.1; the toolkit repository also has versions before
# the role's floor (1.18.2, 1.19.0), which the role must refuse although apt
# could install them.
#
# Usage: make-repos.sh ROOT
set -euo pipefail
root=$1
[ -f "$root/.done" ] && exit 0

# shellcheck source=/dev/null
distro=$(. /etc/os-release && echo "${ID}${VERSION_ID//./}")
deb_arch=$(dpkg --print-architecture)
case $(uname -m) in
  aarch64) cuda_arch=sbsa ;;
  *) cuda_arch=$(uname -m) ;;
esac
cuda=$root/cuda/compute/cuda/repos/$distro/$cuda_arch
toolkit=$root/toolkit/libnvidia-container/stable/deb/$deb_arch

rm -rf "$root"
mkdir -p "$cuda" "$toolkit"

newkey() {  # name -> GNUPGHOME with a fresh signing key; fingerprint in ROOT/<name>.fingerprint
  export GNUPGHOME=$root/.gnupg-$1
  mkdir -p "$GNUPGHOME"
  chmod 700 "$GNUPGHOME"
  gpg --batch --quiet --passphrase '' --quick-gen-key "gpufleet test $1 repository <$1@gpufleet.invalid>" rsa3072 sign never
  gpg --with-colons --fingerprint | awk -F: '$1 == "fpr" { print $10; exit }' >"$root/$1.fingerprint"
}

# package DIR NAME VERSION DEPENDS [FILE-SOURCE FILE-DEST MODE]...
package() {
  local dir=$1 name=$2 version=$3 depends=$4 stage
  shift 4
  stage=$(mktemp -d)
  mkdir -p "$stage/DEBIAN"
  {
    echo "Package: $name"
    echo "Version: $version"
    echo "Architecture: $deb_arch"
    echo "Maintainer: gpufleet tests <repo@gpufleet.invalid>"
    [ -n "$depends" ] && echo "Depends: $depends"
    echo "Description: stand-in for NVIDIA's $name package (gpufleet.inference tests)"
  } >"$stage/DEBIAN/control"
  mkdir -p "$stage/usr/share/doc/$name"
  echo "Stand-in for $name $version, built by molecule/nvidia_host/files/make-repos.sh." >"$stage/usr/share/doc/$name/README.gpufleet"
  while [ $# -ge 3 ]; do
    install -D -m "$3" "$1" "$stage$2"
    shift 3
  done
  dpkg-deb --root-owner-group --build "$stage" "$dir/${name}_${version}_${deb_arch}.deb" >/dev/null
  rm -rf "$stage"
}

publish() {  # DIR ORIGIN LABEL: flat repository metadata, signed with the current GNUPGHOME
  (
    cd "$1"
    apt-ftparchive packages . >Packages
    gzip -9kf Packages
    apt-ftparchive -o APT::FTPArchive::Release::Origin="$2" -o APT::FTPArchive::Release::Label="$3" \
      -o APT::FTPArchive::Release::Architectures="$deb_arch" release . >Release
    gpg --batch --yes --clearsign -o InRelease Release
    gpg --batch --yes -abs -o Release.gpg Release
  )
}

files=$(mktemp -d)

# --- CUDA repository: driver branch 580 (pinned) and 590 (newer) ---------------
newkey cuda
gpg --armor --export >"$cuda/3bf863cc.pub"

cat >"$files/nvidia-smi" <<'SMI'
#!/bin/sh
# Stand-in: what nvidia-smi says on a host whose NVIDIA kernel module is not loaded.
echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."
exit 9
SMI

for version in 580.95.05-1 590.44.01-1; do
  upstream=${version%-*}
  package "$cuda" nvidia-kernel-open-dkms "$version" ""
  package "$cuda" nvidia-driver-cuda "$version" ""
  package "$cuda" libcuda1 "$version" ""
  package "$cuda" nvidia-smi "$version" "" "$files/nvidia-smi" /usr/bin/nvidia-smi 0755
  package "$cuda" nvidia-open "$version" \
    "nvidia-kernel-open-dkms (= $version), nvidia-driver-cuda (= $version), libcuda1 (= $version), nvidia-smi (= $version)"
  branch=${upstream%%.*}
  cat >"$files/pinning" <<PIN
# Stand-in for NVIDIA's nvidia-driver-pinning-$branch: keep the driver on branch $branch.
Package: nvidia-open nvidia-kernel-open-dkms nvidia-driver-cuda libcuda1 nvidia-smi
Pin: version $branch.*
Pin-Priority: 1000
PIN
  package "$cuda" "nvidia-driver-pinning-$branch" "$version" "" \
    "$files/pinning" "/etc/apt/preferences.d/nvidia-driver-pinning-$branch" 0644
done
publish "$cuda" "NVIDIA" "NVIDIA CUDA"

# --- Toolkit repository: 1.18.2, 1.19.0 (vulnerable), 1.19.1 (pinned), 1.19.2 (newer)
newkey toolkit
gpg --armor --export >"$root/toolkit/libnvidia-container/gpgkey"

# nvidia-ctk: the subcommands the role uses, with the real one's behaviour.
cat >"$files/nvidia-ctk" <<'CTK'
#!/usr/bin/python3
"""Stand-in for nvidia-ctk (gpufleet.inference tests): --version, runtime configure, cdi generate."""
import argparse
import json
import os
import sys

VERSION = "@VERSION@"


def configure(args):
    config = {}
    if os.path.exists(args.config) and os.path.getsize(args.config) > 0:
        with open(args.config) as handle:
            config = json.load(handle)
    # Like nvidia-ctk: add (or replace) the nvidia runtime, keep every other key.
    config.setdefault("runtimes", {})["nvidia"] = {"args": [], "path": "nvidia-container-runtime"}
    if args.set_as_default:
        config["default-runtime"] = "nvidia"
    text = json.dumps(config, indent=4) + "\n"
    if args.dry_run:
        sys.stdout.write(text)
        return 0
    os.makedirs(os.path.dirname(os.path.abspath(args.config)), exist_ok=True)
    with open(args.config, "w") as handle:
        handle.write(text)
    print("INFO Wrote updated config to %s" % args.config, file=sys.stderr)
    return 0


def generate(args):
    if not os.path.exists("/proc/driver/nvidia/version"):
        print("ERROR failed to generate CDI spec: failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND", file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as handle:
        handle.write("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices: []\n")
    return 0


parser = argparse.ArgumentParser(prog="nvidia-ctk")
parser.add_argument("--version", action="store_true")
commands = parser.add_subparsers(dest="command")
runtime = commands.add_parser("runtime").add_subparsers(dest="action")
conf = runtime.add_parser("configure")
conf.add_argument("--runtime", default="docker", choices=["docker"])
conf.add_argument("--config", default="/etc/docker/daemon.json")
conf.add_argument("--set-as-default", action="store_true")
conf.add_argument("--dry-run", action="store_true")
cdi = commands.add_parser("cdi").add_subparsers(dest="action")
gen = cdi.add_parser("generate")
gen.add_argument("--output", default="/dev/stdout")
args = parser.parse_args()
if args.version:
    print("NVIDIA Container Toolkit CLI version %s\ncommit: gpufleet-stand-in" % VERSION)
    sys.exit(0)
if args.command == "runtime" and args.action == "configure":
    sys.exit(configure(args))
if args.command == "cdi" and args.action == "generate":
    sys.exit(generate(args))
parser.print_usage(sys.stderr)
sys.exit(2)
CTK

cat >"$files/nvidia-container-runtime" <<'RUNTIME'
#!/bin/sh
# Stand-in: the NVIDIA runtime without a GPU to inject is runc.
exec runc "$@"
RUNTIME

cat >"$files/nvidia-cdi-refresh.service" <<'UNIT'
[Unit]
Description=Refresh the NVIDIA CDI specification (gpufleet stand-in)
# Like the real unit: nothing to generate without the NVIDIA kernel module.
ConditionPathExists=/proc/driver/nvidia/version

[Service]
Type=oneshot
ExecStart=/usr/bin/nvidia-ctk cdi generate --output=/var/run/cdi/nvidia.yaml

[Install]
WantedBy=multi-user.target
UNIT

cat >"$files/nvidia-cdi-refresh.path" <<'UNIT'
[Unit]
Description=Trigger CDI refresh on NVIDIA driver or toolkit changes (gpufleet stand-in)

[Path]
PathChanged=/lib/modules/%v/modules.dep
PathChanged=/usr/bin/nvidia-ctk

[Install]
WantedBy=multi-user.target
UNIT

for version in 1.18.2-1 1.19.0-1 1.19.1-1 1.19.2-1; do
  sed "s/@VERSION@/${version%-*}/" "$files/nvidia-ctk" >"$files/nvidia-ctk-$version"
  package "$toolkit" libnvidia-container1 "$version" ""
  package "$toolkit" libnvidia-container-tools "$version" "libnvidia-container1 (>= $version)"
  units=()
  if dpkg --compare-versions "$version" ge 1.18.0; then
    units=("$files/nvidia-cdi-refresh.service" /lib/systemd/system/nvidia-cdi-refresh.service 0644
           "$files/nvidia-cdi-refresh.path" /lib/systemd/system/nvidia-cdi-refresh.path 0644)
  fi
  package "$toolkit" nvidia-container-toolkit-base "$version" "python3" \
    "$files/nvidia-ctk-$version" /usr/bin/nvidia-ctk 0755 \
    "$files/nvidia-container-runtime" /usr/bin/nvidia-container-runtime 0755 \
    "${units[@]}"
  package "$toolkit" nvidia-container-toolkit "$version" \
    "nvidia-container-toolkit-base (= $version), libnvidia-container-tools (>= $version)"
done
publish "$toolkit" "https://nvidia.github.io/libnvidia-container/stable/deb/$deb_arch" "NVIDIA CORPORATION"

rm -rf "$files"
touch "$root/.done"
