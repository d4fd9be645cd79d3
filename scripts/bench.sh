#!/usr/bin/env bash
# Prints lead-push and token-refresh figures against moto and the provider simulators on loopback
# (release build), then the fault soak's count of leads landed exactly once, duplicated,
# dead-lettered and lost (docs/exactly-once.md). Figures, not pass/fail: they depend on the machine.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
"$ROOT/scripts/bootstrap.sh"
use_venv
cargo build -q --release -p relay-tests --bin bench --bin soak
start_moto || die "moto_server did not start"
RUST_LOG=error "$ROOT/target/release/bench"
echo
RUST_LOG=error "$ROOT/target/release/soak"
