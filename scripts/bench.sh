#!/usr/bin/env bash
# Prints lead-push and token-refresh figures against moto and the provider simulators on loopback
# (release build), then the fault soak's count of leads landed exactly once, duplicated,
# dead-lettered and lost (docs/exactly-once.md). Figures, not pass/fail: they depend on the machine.
#
# `bench.sh load [loadbench flags]` (`make loadbench`, LOADBENCH_ARGS="--scale 0.2" for a quick
# run) runs the load bench instead: lead-push workers at Lambda's concurrency against HubSpot's
# rate limit, one noisy tenant and five quiet ones (docs/benchmarks.md#load-bench). It takes
# minutes, so `make bench` only names it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
"$ROOT/scripts/bootstrap.sh"
use_venv
if [[ "${1:-}" == "load" ]]; then
  shift
  cargo build -q --release -p relay-tests --bin loadbench
  start_moto || die "moto_server did not start"
  start_moto_sqs || die "moto_server for SQS did not start"
  RUST_LOG=error "$ROOT/target/release/loadbench" "$@"
  exit 0
fi
cargo build -q --release -p relay-tests --bin bench --bin soak
start_moto || die "moto_server did not start"
RUST_LOG=error "$ROOT/target/release/bench"
echo
RUST_LOG=error "$ROOT/target/release/soak"
echo
echo "load bench (noisy and quiet tenants at HubSpot's limit, several minutes): make loadbench"
