#!/usr/bin/env bash
# Build, on the test host, apt repositories laid out like AMD's (https://repo.radeon.com):
#   rocm/rocm.gpg.key                                     the signing key
#   rocm/apt/<rocm>/dists/<suite>/main/binary-amd64/       ROCm
#   graphics/<rocm>/ubuntu/dists/<suite>/main/binary-amd64/ AMD's graphics repository (ROCm 7.x)
#   amdgpu/<amdgpu>/ubuntu/dists/<suite>/main/binary-amd64/ the kernel driver
# each with pool/main/<letter>/<source>/, a Release with Origin repo.radeon.com
# (what AMD's apt pin matches), InRelease and Release.gpg signed with a key
# generated here. The key's fingerprint is written to ROOT/fingerprint.
#
# The packages are stand-ins with AMD's names and version scheme; they only
# install what the role then checks: rocm-core puts /opt/rocm-<version> and the
# /opt/rocm link in place, rocminfo is a script that fails the way the real one
# does on a host without a GPU, rocm-hip-runtime and amdgpu-dkms are empty.
#
# Usage: make-repo.sh ROOT ROCM_VERSION AMDGPU_VERSION SUITE
set -euo pipefail
root=$1 rocm=$2 amdgpu=$3 suite=$4
arch=amd64
export GNUPGHOME=$root/.gnupg

[ -f "$root/.done" ] && exit 0
rm -rf "$root"
mkdir -p "$GNUPGHOME" "$root/rocm"
chmod 700 "$GNUPGHOME"

gpg --batch --quiet --passphrase '' --quick-gen-key 'gpufleet test ROCm repository <rocm@gpufleet.invalid>' rsa3072 sign never
gpg --armor --export >"$root/rocm/rocm.gpg.key"
gpg --with-colons --fingerprint | awk -F: '$1 == "fpr" { print $10; exit }' >"$root/fingerprint"

case $suite in
  noble) release=24.04 ;;
  jammy) release=22.04 ;;
  *) release=$suite ;;
esac
# AMD's scheme: <component version>.<ROCm as 5 digits>-<build>~<Ubuntu release>.
IFS=. read -r major minor patch <<<"$rocm"
rocm_digits=$(printf '%d%02d%02d' "$major" "$minor" "${patch:-0}")
build=93

package() {  # repo-dir name version architecture depends [file-source file-dest]...
  local repo=$1 name=$2 version=$3 parch=$4 depends=$5 dir pool
  shift 5
  dir=$(mktemp -d)
  mkdir -p "$dir/DEBIAN"
  {
    echo "Package: $name"
    echo "Version: $version"
    echo "Architecture: $parch"
    echo "Maintainer: gpufleet tests <rocm@gpufleet.invalid>"
    [ -n "$depends" ] && echo "Depends: $depends"
    echo "Description: stand-in for AMD's $name package (gpufleet.inference tests)"
  } >"$dir/DEBIAN/control"
  while [ $# -ge 2 ]; do
    if [ -L "$1" ]; then
      mkdir -p "$(dirname "$dir$2")" && cp -P "$1" "$dir$2"
    else
      install -D -m 0755 "$1" "$dir$2"
    fi
    shift 2
  done
  pool=$repo/pool/main/${name:0:1}/$name
  mkdir -p "$pool"
  dpkg-deb --root-owner-group --build "$dir" "$pool/${name}_${version#*:}_${parch}.deb" >/dev/null
  rm -rf "$dir"
}

index() {  # repo-dir label
  local repo=$1 label=$2
  mkdir -p "$repo/dists/$suite/main/binary-$arch" "$repo/pool"
  (
    cd "$repo"
    apt-ftparchive packages pool >"dists/$suite/main/binary-$arch/Packages"
    gzip -9kf "dists/$suite/main/binary-$arch/Packages"
    apt-ftparchive \
      -o APT::FTPArchive::Release::Origin=repo.radeon.com -o APT::FTPArchive::Release::Label="$label" \
      -o APT::FTPArchive::Release::Suite="$suite" -o APT::FTPArchive::Release::Codename="$suite" \
      -o APT::FTPArchive::Release::Architectures="$arch" -o APT::FTPArchive::Release::Components=main \
      release "dists/$suite" >"dists/$suite/Release"
    gpg --batch --yes --clearsign -o "dists/$suite/InRelease" "dists/$suite/Release"
    gpg --batch --yes -abs -o "dists/$suite/Release.gpg" "dists/$suite/Release"
  )
}

work=$(mktemp -d)
printf '%s-%s\n' "$rocm" "$build" >"$work/version"
ln -s "rocm-$rocm" "$work/rocm-link"
cat >"$work/rocminfo" <<'ROCMINFO'
#!/bin/sh
# Stand-in for AMD's rocminfo (gpufleet.inference tests): the test host has no GPU,
# so it fails the way rocminfo does without the amdgpu kernel driver.
if [ ! -e /dev/kfd ]; then
  echo "ROCk module is NOT loaded, possibly no GPU devices"
  exit 1
fi
echo "stand-in rocminfo: /dev/kfd exists, but this stand-in lists no agents" >&2
exit 1
ROCMINFO

repo=$root/rocm/apt/$rocm
package "$repo" rocm-core "$rocm.$rocm_digits-$build~$release" "$arch" "" \
  "$work/version" "/opt/rocm-$rocm/.info/version" "$work/rocm-link" /opt/rocm
package "$repo" rocminfo "1.0.0.$rocm_digits-$build~$release" "$arch" "rocm-core" \
  "$work/rocminfo" "/opt/rocm-$rocm/bin/rocminfo"
package "$repo" rocm-hip-runtime "$rocm.$rocm_digits-$build~$release" "$arch" "rocm-core, rocminfo"
index "$repo" "ROCm $rocm"

# The graphics repository carries nothing the role installs; apt only has to trust it.
index "$root/graphics/$rocm/ubuntu" "AMD graphics $rocm"

repo=$root/amdgpu/$amdgpu/ubuntu
amdgpu_digits=$(IFS=.; read -r a b c <<<"$amdgpu"; printf '%d%02d%02d00' "$a" "$b" "${c:-0}")
package "$repo" amdgpu-dkms "1:6.16.13.$amdgpu_digits-2341068.$release" all ""
index "$repo" "amdgpu $amdgpu"

rm -rf "$work"
touch "$root/.done"
