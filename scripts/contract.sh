#!/usr/bin/env bash
# The contract test: schemathesis generates requests from infra/openapi.yaml and sends them to
# the real connections-api and oauth-callback handlers, served by tests/src/bin/contract-gateway.rs
# (a small API Gateway v2 stand-in with the JWT authorizer) on moto and the provider simulators.
# Passes when no answer is a server error, every answer (status and body) is documented, and no
# request that the document calls valid is refused. See docs/testing.md, "Contract test".
#   scripts/contract.sh                 the bounded, seeded run make test does
#   CONTRACT_EXAMPLES=200 CONTRACT_SEED=7 scripts/contract.sh   a longer or other run
# Starts and stops its own moto_server and gateway; logs in .local/ (contract-gateway.log, moto.log).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
"$ROOT/scripts/bootstrap.sh"
use_venv

# No closing line of an earlier run may stand in for this one's.
rm -f "$LOCAL_DIR/contract.log"
EXAMPLES="${CONTRACT_EXAMPLES:-100}"
SEED="${CONTRACT_SEED:-20261206}"

# The binary itself, not `cargo run`: a rebuild or a build lock must not eat the start timeout.
GATEWAY_BIN="$(cargo build -p relay-tests --bin contract-gateway --message-format=json-render-diagnostics |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "contract-gateway":
        print(m["executable"])')"
[[ -x "$GATEWAY_BIN" ]] || die "contract-gateway did not build"
start_moto || die "moto_server did not start"
PORT="$(free_port)"
start_bg contract-gateway "$LOCAL_DIR/contract-gateway.log" "$GATEWAY_BIN" --listen "127.0.0.1:$PORT"
GATEWAY_PID=$BG_PID
# Without a token the authorizer answers 401: the gateway is up once anything answers.
wait_http "http://127.0.0.1:$PORT/connections" 60 "$GATEWAY_PID" 401 || die "contract-gateway did not start"

# A Business tenant may connect every provider, so a refusal is never the plan's. One worker:
# with two, hypothesis (6.170) raced on its own lambda-source cache once ("AST constructor
# recursion depth mismatch"), an error of the tool, not of the service.
# Run from .local/: schemathesis keeps a cache of crashes (.schemathesis/) in its working directory.
rc=0
cd "$LOCAL_DIR"
SCHEMATHESIS_TELEMETRY=false "$VENV/bin/schemathesis" run "$ROOT/infra/openapi.yaml" \
  --url "http://127.0.0.1:$PORT" \
  --header "Authorization: Bearer test.contract-tenant.business" \
  --checks not_a_server_error,status_code_conformance,response_schema_conformance,positive_data_acceptance \
  --phases examples,coverage,fuzzing \
  --max-examples "$EXAMPLES" --seed "$SEED" --generation-database none \
  --workers 1 --no-color \
  --report junit --report-junit-path "$LOCAL_DIR/contract-junit.xml" 2>&1 | tee "$LOCAL_DIR/contract.log" || rc=$?

# One closing line from schemathesis' summary, which make test repeats at its end.
python3 - "$LOCAL_DIR/contract.log" "$rc" <<'PY' | tee -a "$LOCAL_DIR/contract.log"
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
tested = re.search(r"Tested: (\d+)", text)
cases = re.search(r"(\d+) generated", text)
failures = re.search(r"(\d+) failures?\b", text.split("SUMMARY")[-1])
print("contract: {} operations, {} cases generated, failures: {}{}".format(
    tested.group(1) if tested else "?", cases.group(1) if cases else "?",
    failures.group(1) if failures else ("0" if sys.argv[2] == "0" else "?"),
    "" if sys.argv[2] == "0" else " (exit {})".format(sys.argv[2])))
PY
exit "$rc"
