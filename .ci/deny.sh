#!/usr/bin/env bash
# Dependency policy with cargo-deny (`deny.toml`): licences, banned or duplicated
# crates, and sources (crates.io only). Security advisories need the RustSec database,
# a git repository on GitHub that CI cannot reach, so they are checked only when a
# copy is at hand:
#   - `ADVISORY_DB=<path>`: a clone of github.com/rustsec/advisory-db (or a bare
#     mirror of it), used as is, without fetching;
#   - else a database fetched earlier into `$CARGO_HOME/advisory-dbs` (by this script
#     or `cargo deny fetch db` on a machine with network): updated when GitHub
#     answers, used as it is when not;
#   - else one line says that advisories were not checked.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DENY_VERSION=0.20.2

if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
  cargo install --locked --quiet cargo-deny --version "$CARGO_DENY_VERSION"
fi

# Without the inclusion graphs, the duplicate warnings take a line or two each
# instead of thousands; `cargo deny check bans` shows who pulls each version in.
cargo deny check --hide-inclusion-graph licenses bans sources

cargo_home="${CARGO_HOME:-$HOME/.cargo}"
if [ -n "${ADVISORY_DB:-}" ]; then
  # cargo-deny reads a database only at the place it derives from its URL under
  # `db-path`; ask it where, then put a clone of the given copy there.
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  sed "s#^\[advisories\]\$#[advisories]\ndb-path = \"$tmp\"#" deny.toml >"$tmp/deny.toml"
  where="$(cargo deny --offline --config "$tmp/deny.toml" --log-level debug check advisories 2>&1 |
    sed -n "s/.*Opening advisory database at '\(.*\)'.*/\1/p" | head -n 1)" || true
  if [ -z "$where" ]; then
    echo "advisories: cannot tell where cargo-deny $CARGO_DENY_VERSION reads its database" >&2
    exit 1
  fi
  git clone --quiet "$ADVISORY_DB" "$where"
  echo "advisories: RustSec database from $ADVISORY_DB ($(git -C "$where" log -1 --format=%cs))"
  cargo deny --offline --config "$tmp/deny.toml" check advisories
elif compgen -G "$cargo_home/advisory-dbs/advisory-db-*/.git" >/dev/null; then
  if timeout 30 git ls-remote --quiet https://github.com/rustsec/advisory-db HEAD >/dev/null 2>&1; then
    cargo deny check advisories
  else
    copy="$(compgen -G "$cargo_home/advisory-dbs/advisory-db-*" | head -n 1)"
    echo "advisories: GitHub unreachable; using the RustSec database fetched on $(git -C "$copy" log -1 --format=%cs)"
    cargo deny --offline check advisories
  fi
elif timeout 30 git ls-remote --quiet https://github.com/rustsec/advisory-db HEAD >/dev/null 2>&1; then
  cargo deny check advisories
else
  echo "advisories: not checked: the RustSec database (github.com/rustsec/advisory-db) cannot be fetched offline; set ADVISORY_DB to a clone of it to check them"
fi
