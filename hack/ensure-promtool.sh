#!/usr/bin/env bash
# Prints the path of a promtool for the monitoring tests (promtool check rules, promtool test rules).
# The one on PATH when there is one; else the promtool of Debian's `prometheus` package, taken out of the
# .deb (`apt-get download` + `dpkg-deb -x`: no root, no install, and so no Prometheus server started by
# the package's service) into the binary cache beside the control plane ($PFO_CACHE_DIR, default
# ~/.cache/portforward-operator), keyed on the package's version. Written by hand: a few lines of apt.
set -euo pipefail
if command -v promtool >/dev/null; then command -v promtool; exit 0; fi
cache=${PFO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/portforward-operator}
if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
  echo "ensure-promtool: no promtool on PATH and no apt-get to fetch Debian's: install Prometheus' promtool" >&2
  exit 1
fi
version=$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}')
if [[ -z $version || $version == "(none)" ]]; then
  echo "ensure-promtool: apt knows no prometheus package (run apt-get update), and promtool is not on PATH" >&2
  exit 1
fi
dir="$cache/bin/promtool-${version//[^A-Za-z0-9.+-]/_}"
if [[ ! -x $dir/promtool ]]; then
  mkdir -p "$cache/bin"
  tmp=$(mktemp -d "$cache/bin/.promtool-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "ensure-promtool: taking promtool out of Debian's prometheus $version into $dir" >&2
  (cd "$tmp" && apt-get download -qq "prometheus=$version" >/dev/null)
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
  mkdir -p "$tmp/out" && cp "$tmp/root/usr/bin/promtool" "$tmp/out/promtool"
  mv "$tmp/out" "$dir" 2>/dev/null || [[ -x $dir/promtool ]]
fi
echo "$dir/promtool"
