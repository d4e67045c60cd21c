#!/usr/bin/env bash
# Makes the pinned Node.js LTS (the version in .nvmrc, the project's one place for it) available to
# make's recipes. Prints the folder to put first on PATH, or nothing when the `node` on PATH is of the
# pinned major or newer (a machine with a new enough Node uses its own).
#
# The binary comes from the npm registry as the `node-<os>-<arch>` package of exactly that version
# (`npm pack`: integrity-checked against the registry's metadata, no install scripts run), unpacked
# once into the cache beside the control-plane binaries ($PFO_CACHE_DIR, default
# ~/.cache/portforward-operator). npm itself is the one on PATH; it runs on whichever node is first.
# Written by hand because nothing maintained does this without a download of its own.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
want=$(tr -d ' \nv' <"$root/.nvmrc")
want_major=${want%%.*}

have=$(node -p 'process.versions.node' 2>/dev/null || true)
if [[ -n $have && ${have%%.*} -ge $want_major ]]; then exit 0; fi

case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) echo "ensure-node: no node-<os> package for $(uname -s); install Node.js $want_major yourself" >&2; exit 1 ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "ensure-node: no node-$os-<arch> package for $(uname -m); install Node.js $want_major yourself" >&2; exit 1 ;;
esac

cache=${PFO_CACHE_DIR:-$HOME/.cache/portforward-operator}
dir="$cache/node/v$want-$os-$arch"
if [[ ! -x $dir/bin/node ]]; then
  if ! command -v npm >/dev/null; then
    echo "ensure-node: Node.js $want_major or newer is needed (found ${have:-none}), and there is no npm to fetch it with: install Node.js $want_major" >&2
    exit 1
  fi
  echo "ensure-node: fetching node-$os-$arch@$want from the npm registry into $dir" >&2
  tmp=$(mktemp -d "$cache/.node-XXXXXX" 2>/dev/null || { mkdir -p "$cache" && mktemp -d "$cache/.node-XXXXXX"; })
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack "node-$os-$arch@$want" --silent --no-audit --no-fund >/dev/null)
  mkdir -p "$tmp/unpacked"
  tar xzf "$tmp"/node-"$os"-"$arch"-"$want".tgz -C "$tmp/unpacked" --strip-components=1
  got=$("$tmp/unpacked/bin/node" -p 'process.versions.node')
  if [[ $got != "$want" ]]; then
    echo "ensure-node: the node-$os-$arch@$want package holds Node.js $got" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$dir")"
  rm -rf "$dir"
  mv "$tmp/unpacked" "$dir"
fi
echo "using Node.js v$want from $dir (the node on PATH is ${have:+v}${have:-missing}; this project needs $want_major or newer)" >&2
echo "$dir/bin"
