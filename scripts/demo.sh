#!/usr/bin/env bash
# End-to-end demo on loopback, no AWS account needed:
#   moto_server (DynamoDB, KMS, SQS, Secrets Manager, EventBridge)  +  provider-sim (HubSpot, Zoho, Freshsales, Salesforce, Google
#   and Bitrix24 simulators)
#   + `cargo lambda watch` serving the four real function binaries
#   + the demo driver (relay-tests --bin demo), which provisions and then drives the flows.
# Everything started here is stopped on exit, also on failure or Ctrl-C. Logs: .local/*.log
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

FUNCTIONS=(connections-api oauth-callback lead-push token-refresh)

"$ROOT/scripts/bootstrap.sh"
use_venv

# Build everything first, so that nothing below waits on the compiler. Each function is built
# exactly as `cargo lambda watch` runs it (`cargo run --bin NAME` from the workspace root), so
# its feature resolution matches and the watch's first invocation does not rebuild anything.
log "building the demo tools and the function binaries"
cargo build -q -p relay-tests --bins
for f in "${FUNCTIONS[@]}"; do cargo build -q --bin "$f"; done

start_moto || die "moto_server did not start"

# One free port per simulator, all different.
PORTS=()
while ((${#PORTS[@]} < 6)); do
  port="$(free_port)"
  [[ " ${PORTS[*]} " == *" $port "* ]] || PORTS+=("$port")
done
SIM_PORT=${PORTS[0]} ZOHO_PORT=${PORTS[1]} FRESHSALES_PORT=${PORTS[2]}
SALESFORCE_PORT=${PORTS[3]} GOOGLE_PORT=${PORTS[4]} BITRIX_PORT=${PORTS[5]}
export FRESHSALES_DEMO_DOMAIN=doha-motors.myfreshworks.com
export FRESHSALES_DEMO_API_KEY=demo-freshsales-key
export GOOGLE_SHEETS_DEMO_SPREADSHEET=1SouqBakeryLeadRelayDemoSheet000000000000000
export BITRIX24_DEMO_PORTAL=al-waha.bitrix24.com
start_bg provider-sim "$LOCAL_DIR/provider-sim.log" \
  cargo run -q -p relay-tests --bin provider-sim -- --listen "127.0.0.1:$SIM_PORT" \
  --zoho-listen "127.0.0.1:$ZOHO_PORT" --freshsales-listen "127.0.0.1:$FRESHSALES_PORT" \
  --salesforce-listen "127.0.0.1:$SALESFORCE_PORT" --google-listen "127.0.0.1:$GOOGLE_PORT" \
  --bitrix-listen "127.0.0.1:$BITRIX_PORT"
SIM_PID=$BG_PID
wait_http "http://127.0.0.1:$SIM_PORT/health" 60 "$SIM_PID" 200 || die "provider-sim did not start"
wait_http "http://127.0.0.1:$ZOHO_PORT/health" 60 "$SIM_PID" 200 || die "the Zoho simulator did not start"
wait_http "http://127.0.0.1:$FRESHSALES_PORT/health" 60 "$SIM_PID" 200 || die "the Freshsales simulator did not start"
wait_http "http://127.0.0.1:$SALESFORCE_PORT/health" 60 "$SIM_PID" 200 || die "the Salesforce simulator did not start"
wait_http "http://127.0.0.1:$GOOGLE_PORT/health" 60 "$SIM_PID" 200 || die "the Google simulator did not start"
wait_http "http://127.0.0.1:$BITRIX_PORT/health" 60 "$SIM_PID" 200 || die "the Bitrix24 simulator did not start"
log "provider-sim ready: HubSpot at http://127.0.0.1:$SIM_PORT, Zoho (every data centre) at http://127.0.0.1:$ZOHO_PORT, Freshsales (every account host) at http://127.0.0.1:$FRESHSALES_PORT, Salesforce (every login host and instance) at http://127.0.0.1:$SALESFORCE_PORT, Google at http://127.0.0.1:$GOOGLE_PORT, Bitrix24 (OAuth servers and portals) at http://127.0.0.1:$BITRIX_PORT"

# Provision the table, KMS key and queues in moto; the driver prints KEY=VALUE lines to export.
log "provisioning DynamoDB, KMS, SQS and the EventBridge bus (a rule to a queue, for the demo to read) in moto"
provision_out="$(cargo run -q -p relay-tests --bin demo -- provision)" || die "demo provision failed"
while IFS= read -r line; do
  if [[ "$line" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; then
    export "${line?}"
    printf '    %s\n' "$line" >&2
  elif [[ -n "$line" ]]; then
    printf '    (provision) %s\n' "$line" >&2
  fi
done <<<"$provision_out"

# The OAuth apps' client credentials, one Secrets Manager secret per provider as the template
# creates them (docs/deploy.md), holding what provider-sim knows each app by (its defaults).
# The functions get only the secrets' names and read them at cold start, as on AWS.
log "putting the OAuth apps' client credentials into moto's Secrets Manager"
"$VENV/bin/python" - <<'PY' || die "could not create the app secrets in moto"
import json, os
import boto3
sm = boto3.client("secretsmanager", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
for slug, client_id, client_secret in [
    ("hubspot", "demo-client-id", "demo-client-secret"),
    ("zoho", "demo-zoho-client-id", "demo-zoho-client-secret"),
    ("salesforce", "demo-salesforce-client-id", "demo-salesforce-client-secret"),
    ("google_sheets", "demo-google-client-id", "demo-google-client-secret"),
    ("bitrix24", "demo-bitrix-client-id", "demo-bitrix-client-secret"),
]:
    value = json.dumps({"client_id": client_id, "client_secret": client_secret})
    sm.create_secret(Name=f"leadrelay-demo/{slug}-app", SecretString=value)
PY
export HUBSPOT_APP_SECRET_ID=leadrelay-demo/hubspot-app
export ZOHO_APP_SECRET_ID=leadrelay-demo/zoho-app
export SALESFORCE_APP_SECRET_ID=leadrelay-demo/salesforce-app
export GOOGLE_SHEETS_APP_SECRET_ID=leadrelay-demo/google_sheets-app
export BITRIX24_APP_SECRET_ID=leadrelay-demo/bitrix24-app

# Configuration the functions read (config::from_env); `cargo lambda watch` passes its own
# environment on to every function it starts.
export HUBSPOT_ENDPOINT_URL="http://127.0.0.1:$SIM_PORT"
export ZOHO_ENDPOINT_URL="http://127.0.0.1:$ZOHO_PORT"
export FRESHSALES_ENDPOINT_URL="http://127.0.0.1:$FRESHSALES_PORT"
export SALESFORCE_ENDPOINT_URL="http://127.0.0.1:$SALESFORCE_PORT"
export GOOGLE_SHEETS_ENDPOINT_URL="http://127.0.0.1:$GOOGLE_PORT"
export BITRIX24_ENDPOINT_URL="http://127.0.0.1:$BITRIX_PORT"
export SETUP_PAGE_URL=http://localhost:3000/settings/integrations
export OAUTH_REDIRECT_BASE_URL=http://127.0.0.1:9001
export RUST_LOG="${RUST_LOG:-info}"
export AWS_LAMBDA_LOG_FORMAT=JSON

INVOKE_PORT="$(free_port)"
# The watch hands every invocation a deadline in 1970; the runner gives each function the
# template's timeout instead, as Lambda would (why: scripts/lambda_deadline_runner.py). Set for
# the watch only: it spawns `cargo run --bin NAME`, which starts the binary through the runner.
HOST_TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
RUNNER_VAR="CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$HOST_TRIPLE")_RUNNER"
# --ignore-changes: serve the binaries built above, never rebuild on a source edit mid-demo.
start_bg "cargo lambda watch" "$LOCAL_DIR/lambda.log" \
  env "$RUNNER_VAR=$VENV/bin/python $ROOT/scripts/lambda_deadline_runner.py" \
  cargo lambda watch --ignore-changes --invoke-address 127.0.0.1 --invoke-port "$INVOKE_PORT"
WATCH_PID=$BG_PID
# Its default route is disabled, so GET / answers 404 as soon as it listens.
wait_http "http://127.0.0.1:$INVOKE_PORT/" 60 "$WATCH_PID" any || die "cargo lambda watch did not start"
export LAMBDA_INVOKE_URL="http://127.0.0.1:$INVOKE_PORT"
log "cargo lambda watch ready at $LAMBDA_INVOKE_URL (POST /2015-03-31/functions/<name>/invocations)"

log "running the demo"
rc=0
cargo run -q -p relay-tests --bin demo -- run || rc=$?
if ((rc != 0)); then
  show_log_tail "$LOCAL_DIR/lambda.log" 60
  die "demo run failed (exit $rc); logs in .local/"
fi
log "demo finished; logs in .local/ (lambda.log, provider-sim.log, moto.log)"
