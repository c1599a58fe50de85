#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks for building and testing tscni. Idempotent and quick when
# everything is there: npm ci only when the lockfile changed, apt-get only for missing packages.
# usage: scripts/deps.sh [--npm-only|--apt-only]
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  gcc libc6-dev                              # the netlink module (scripts/native.sh)
  iproute2 nftables iptables conntrack procps iputils-ping iperf3 jq hyperfine
  containernetworking-plugins                # reference plugins: side-by-side runs, portmap in the chain test
  golang-go golang-github-appc-cni-dev       # the libcni test client in e2e/
  busybox-static qemu-system-x86 linux-image-amd64 user-mode-linux   # guests for live IPIP (e2e/lib/guest.ts)
  containerd runc podman                     # runtime e2e: ctr run --cni, podman's CNI backend
  etcd-server etcd-client openssl            # cluster mode without Kubernetes (e2e/etcd.e2e.ts; certificates for its TLS case)
  bird2                                      # BGP routing (e2e/bgp.e2e.ts: a BIRD per simulated node and the leaf)
)

want_npm=1 want_apt=1
case "${1:-}" in
  --npm-only) want_apt=0 ;;
  --apt-only) want_npm=0 ;;
  '') ;;
  *) echo "usage: $0 [--npm-only|--apt-only]" >&2; exit 2 ;;
esac

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "deps: need root to run: $*" >&2; exit 1
  fi
}

if [ "$want_apt" = 1 ]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "deps: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q </dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
  fi
fi

if [ "$want_npm" = 1 ]; then
  # node_modules is current when it was installed from this very lockfile
  stamp=node_modules/.tscni-deps-stamp
  sum=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sum" ]; then
    echo "deps: npm ci"
    npm ci --no-audit --no-fund </dev/null
    echo "$sum" >"$stamp"
  fi
fi
