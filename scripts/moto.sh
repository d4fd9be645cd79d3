#!/usr/bin/env bash
# Runs moto_server on a free loopback port for local work.
#   scripts/moto.sh                      start it, print the env to export, wait for Ctrl-C
#   scripts/moto.sh CMD [ARGS...]        run CMD with the AWS_* env pointing at it, then stop it
#                                        e.g. scripts/moto.sh cargo test -p shared
# Logs go to .local/moto.log. Scripts that need moto source scripts/lib.sh and call start_moto.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$ROOT/scripts/bootstrap.sh"
start_moto
if (($#)); then
  "$@"
else
  cat <<EOF
export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
EOF
  log "Ctrl-C to stop"
  wait "$MOTO_PID"
fi
