#!/usr/bin/env bash
# `make image`: builds the operator's image from the Dockerfile on a machine with no Docker daemon and
# no image registry, tags it as deploy/ names it, and saves it as an OCI archive in the binary cache.
#
# - Builder: buildah (Debian's package; daemonless). `npm ci` in the build reaches the npm registry as
#   the host does (host network, chroot isolation: no network namespace or runtime needed to build).
# - Base: the Dockerfile's default (node:<.nvmrc>-trixie-slim) when buildah already holds it, or with
#   IMAGE_BASE=official (pulled from Docker Hub); otherwise one made here by hack/image/base.sh from
#   Debian's packages and the npm registry's Node.js, passed as --build-arg NODE_IMAGE=... . No pull is
#   tried unasked: on a machine without a registry it could only fail. The Dockerfile is unchanged.
# - Cache: keyed on a hash of everything the image is made of (the Dockerfile, .dockerignore, the
#   package files, tsconfig.json, src/ as .dockerignore selects it, the base's recipe and the Node.js
#   version); a second run with nothing changed prints the archive and exits.
# Prints the archive's path on the last line of stdout; progress goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
cache=${PFO_CACHE_DIR:-$HOME/.cache/portforward-operator}
tag=${IMAGE_TAG:-ghcr.io/portforward-dev/portforward-operator:0.1.0}
node_version=$(tr -d ' \nv' <.nvmrc)
say() { echo "image: $*" >&2; }

need() {
  command -v "$1" >/dev/null && return 0
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    say "installing $2 (Debian) for $1"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $2 >/dev/null) ||
      { say "apt-get install $2 failed"; exit 1; }
  else
    say "$1 is needed: install $2 (apt-get install $2), then run again"; exit 1
  fi
}
need buildah buildah

# Everything that goes into the image, in a stable order. src/ is taken as .dockerignore takes it
# (no tests, no testing/ folders), so editing a test does not rebuild the image.
inputs() {
  printf '%s\n' Dockerfile .dockerignore .nvmrc package.json package-lock.json tsconfig.json \
    hack/image/build.sh hack/image/base.sh
  git ls-files -co --exclude-standard src | grep -v -e '\.test\.ts$' -e '/testing/' | LC_ALL=C sort
}
key=$( (inputs | while read -r f; do printf '%s\n' "$f"; sha256sum <"$f"; done; echo "$tag") | sha256sum | cut -c1-16)
dir="$cache/image/$key"
archive="$dir/portforward-operator.oci.tar"
if [[ -s $archive ]]; then
  say "up to date: $tag ($(du -h "$archive" | cut -f1)), inputs unchanged (key $key)"
  echo "$archive"
  exit 0
fi

base_mode=${IMAGE_BASE:-auto}
official="node:$node_version-trixie-slim"
build_args=()
if [[ $base_mode == official ]] || { [[ $base_mode == auto ]] && buildah inspect --type image "docker.io/library/$official" >/dev/null 2>&1; }; then
  say "base: $official (the official image)"
else
  [[ $base_mode == auto ]] && say "base: $official is not in buildah's storage (IMAGE_BASE=official pulls it); making it from Debian's packages and the npm registry"
  base=$("$root/hack/image/base.sh")
  build_args+=(--build-arg "NODE_IMAGE=$base")
  say "base: $base"
fi

# npm in the build reaches the registry as the host's npm does: the host's registry and CA file (a
# machine behind a TLS-inspecting proxy trusts its CA) are mounted for the RUN steps only, as npm's
# global configuration; nothing of them stays in the image.
host_npm=$(mktemp -d)
trap 'rm -rf "$host_npm"' EXIT
cafile=$(npm config get cafile 2>/dev/null || true)
[[ $cafile == null || $cafile == undefined || ! -f $cafile ]] && cafile=${NODE_EXTRA_CA_CERTS:-}
printf 'registry=%s\n' "$(npm config get registry 2>/dev/null || echo https://registry.npmjs.org/)" >"$host_npm/npmrc"
volumes=(--volume "$host_npm/npmrc:/usr/local/etc/npmrc:ro")
if [[ -n $cafile && -f $cafile ]]; then
  echo 'cafile=/run/host-npm-ca.crt' >>"$host_npm/npmrc"
  volumes+=(--volume "$cafile:/run/host-npm-ca.crt:ro")
fi

started=$(date +%s)
say "building $tag with buildah (log: $dir.log)"
mkdir -p "$cache/image"
if ! buildah bud --isolation chroot --network host --layers=false -q -f Dockerfile -t "$tag" \
  "${build_args[@]}" "${volumes[@]}" . >"$dir.log" 2>&1; then
  tail -20 "$dir.log" >&2
  say "buildah bud failed; the whole log is $dir.log"
  exit 1
fi
tmp=$(mktemp -d "$cache/image/.tmp-XXXXXX")
trap 'rm -rf "$tmp" "$host_npm"' EXIT
buildah push -q "$tag" "oci-archive:$tmp/portforward-operator.oci.tar:$tag" >>"$dir.log" 2>&1
buildah inspect --format '{{.FromImageID}}' "$tag" >"$tmp/image-id" 2>/dev/null || true
rm -rf "$dir" && mv "$tmp" "$dir"
trap - EXIT
# Older builds of this image (other keys) are dropped: one archive is enough to keep.
find "$cache/image" -mindepth 1 -maxdepth 1 -type d -name '????????????????' ! -name "$key" -exec rm -rf {} +
say "built $tag in $(($(date +%s) - started)) s: $archive ($(du -h "$archive" | cut -f1))"
echo "$archive"
