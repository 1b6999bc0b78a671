#!/usr/bin/env bash
# Supply-chain check: every crate in Cargo.lock against the RustSec advisory database
# (vulnerable, unsound, unmaintained or yanked), the licence allow-list, banned crates and
# allowed sources, with cargo-deny and the rules in deny.toml. Fails on any finding.
#
# It never reaches the advisory database's own host: it reads the snapshot beside the clone,
# ../shared/advisory-db (PROMHPA_ADVISORY_DB overrides the path). cargo-deny wants the database
# as a git repository, so a throw-away one is made from the snapshot.
set -euo pipefail
cd "$(dirname "$0")/.."

DENY_VERSION=0.20.2
db_source=${PROMHPA_ADVISORY_DB:-../shared/advisory-db}

if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $DENY_VERSION" ]; then
  echo "==> installing cargo-deny $DENY_VERSION"
  cargo install cargo-deny --version "$DENY_VERSION" --locked
fi

if [ ! -d "$db_source/crates" ]; then
  echo "no RustSec advisory database at $db_source (set PROMHPA_ADVISORY_DB)" >&2
  exit 1
fi
echo "==> advisory database: $(cat "$db_source/SNAPSHOT" 2>/dev/null || echo "$db_source")"

# deny.toml's db-path; cargo-deny looks for the default database in a directory named after
# its URL (https://github.com/rustsec/advisory-db), which is this name.
PROMHPA_ADVISORY_DBS=$(mktemp -d)
export PROMHPA_ADVISORY_DBS
trap 'rm -rf "$PROMHPA_ADVISORY_DBS"' EXIT
repo="$PROMHPA_ADVISORY_DBS/advisory-db-3157b0e258782691"
cp -R "$db_source" "$repo"
chmod -R u+w "$repo"
git -C "$repo" -c init.defaultBranch=main init -q
git -C "$repo" add -A
git -C "$repo" -c user.name=promhpa -c user.email=promhpa@invalid -c commit.gpgsign=false \
  commit -q -m "RustSec advisory database snapshot"

echo "==> cargo deny check"
cargo fetch --locked >/dev/null
cargo deny --offline --locked check --show-stats advisories licenses bans sources
