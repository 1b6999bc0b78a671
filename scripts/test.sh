#!/usr/bin/env bash
# The whole test suite: installs what the tests need, checks the dependencies (advisories,
# licences, bans, sources: scripts/supply-chain.sh), then lints, builds and tests everything.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi
need=()
want() { [[ " ${need[*]} " == *" $1 "* ]] || need+=("$1"); }
command -v prometheus >/dev/null || want prometheus
command -v promtool >/dev/null || want prometheus
command -v victoria-metrics >/dev/null || want victoria-metrics
command -v kubectl >/dev/null || want kubernetes-client
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}"
  # Wait for another apt or dpkg run (unattended upgrades, a parallel job) instead of failing.
  apt=($SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
  "${apt[@]}" update -qq
  "${apt[@]}" install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

./scripts/supply-chain.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked
