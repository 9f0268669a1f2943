#!/usr/bin/env bash
# Build, on the test host, an apt repository laid out like Docker's
# (https://download.docker.com/linux/debian): dists/<suite>/stable/binary-<arch>/,
# pool/stable/<arch>/, an InRelease and Release.gpg signed with a key generated
# here, and the key published at linux/debian/gpg.
#
# The packages are stand-ins with Docker's names and version scheme: docker-ce
# is Debian's docker.io repackaged under Docker's name (the real engine, its
# systemd units and maintainer scripts), docker-compose-plugin ships the real
# Compose v2 binary at the path Docker's package uses, the others are empty.
# They only need to install what the role then checks.
#
# Usage: make-repo.sh ROOT COMPOSE_BINARY
set -euo pipefail
root=$1 compose=$2
# shellcheck source=/dev/null
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
arch=$(dpkg --print-architecture)
base=$root/linux/debian
export GNUPGHOME=$root/.gnupg

[ -f "$root/.done" ] && exit 0
rm -rf "$root"
mkdir -p "$GNUPGHOME" "$base/pool/stable/$arch" "$base/dists/$suite/stable/binary-$arch"
chmod 700 "$GNUPGHOME"

gpg --batch --quiet --passphrase '' --quick-gen-key 'gpufleet test repository <repo@gpufleet.invalid>' rsa3072 sign never
gpg --armor --export >"$base/gpg"
gpg --with-colons --fingerprint | awk -F: '$1 == "fpr" { print $10; exit }' >"$root/fingerprint"
# The repository's key with a second, unrelated key in the same file: apt would trust both.
other=$(mktemp -d)
GNUPGHOME=$other gpg --batch --quiet --passphrase '' --quick-gen-key 'someone else <other@gpufleet.invalid>' ed25519 sign never
{ cat "$base/gpg"; GNUPGHOME=$other gpg --armor --export; } >"$base/gpg-with-another-key"
rm -rf "$other"

package() {  # name version depends [file-source file-dest]
  local dir
  dir=$(mktemp -d)
  mkdir -p "$dir/DEBIAN"
  cat >"$dir/DEBIAN/control" <<CONTROL
Package: $1
Version: $2
Architecture: $arch
Maintainer: gpufleet tests <repo@gpufleet.invalid>
${3:+Depends: $3}
Description: stand-in for Docker's $1 package (gpufleet.inference tests)
CONTROL
  sed -i '/^$/d' "$dir/DEBIAN/control"
  if [ $# -ge 5 ]; then
    install -D -m 0755 "$4" "$dir$5"
  fi
  dpkg-deb --root-owner-group --build "$dir" "$base/pool/stable/$arch/${1}_${2}_${arch}.deb" >/dev/null
  rm -rf "$dir"
}

v="1~debian.12~$suite"

# docker-ce: Debian's engine under Docker's name (docker.io conflicts with docker-ce).
work=$(mktemp -d)
(cd "$work" && apt-get download docker.io >/dev/null)
dpkg-deb -R "$work"/docker.io_*.deb "$work/pkg"
sed -i -e 's/^Package: .*/Package: docker-ce/' -e "s/^Version: .*/Version: 5:28.5.1-$v/" \
  -e '/^Conflicts:/d' -e '/^Replaces:/d' -e '/^Breaks:/d' "$work/pkg/DEBIAN/control"
dpkg-deb --root-owner-group --build "$work/pkg" "$base/pool/stable/$arch/docker-ce_5:28.5.1-${v}_${arch}.deb" >/dev/null
rm -rf "$work"

package docker-ce-cli "5:28.5.1-$v" ""
package containerd.io "1.7.28-1~debian.12~$suite" ""
package docker-buildx-plugin "0.29.1-$v" ""
package docker-compose-plugin "2.40.3-$v" "" "$compose" /usr/libexec/docker/cli-plugins/docker-compose

cd "$base"
apt-ftparchive packages "pool/stable/$arch" >"dists/$suite/stable/binary-$arch/Packages"
gzip -9kf "dists/$suite/stable/binary-$arch/Packages"
apt-ftparchive \
  -o APT::FTPArchive::Release::Origin=Docker -o APT::FTPArchive::Release::Label=Docker \
  -o APT::FTPArchive::Release::Suite="$suite" -o APT::FTPArchive::Release::Codename="$suite" \
  -o APT::FTPArchive::Release::Architectures="$arch" -o APT::FTPArchive::Release::Components=stable \
  release "dists/$suite" >"dists/$suite/Release"
gpg --batch --yes --clearsign -o "dists/$suite/InRelease" "dists/$suite/Release"
gpg --batch --yes -abs -o "dists/$suite/Release.gpg" "dists/$suite/Release"
touch "$root/.done"
