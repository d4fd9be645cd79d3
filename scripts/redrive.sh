#!/usr/bin/env bash
# Sends dead-lettered leads back to the lead queue once their cause is fixed (docs/runbook.md, DLQ).
#   make redrive STACK=leadrelay-prod              queue URLs from the stack's outputs (aws CLI)
#   make redrive DLQ_URL=... LEAD_QUEUE_URL=...    or given directly
#   METHOD=copy                                    fallback for an SQS without the move task (moto)
#   MAX=N (copy: at most N messages)  RATE=N (move task: messages per second)
# Uses the usual AWS credentials and region (AWS_PROFILE, AWS_REGION, ...); against moto set
# AWS_ENDPOINT_URL. The tool itself: tests/src/bin/redrive.rs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

output() { # output STACK KEY
  aws cloudformation describe-stacks --stack-name "$1" \
    --query "Stacks[0].Outputs[?OutputKey=='$2'].OutputValue" --output text
}
if [[ -n "${STACK:-}" ]]; then
  command -v aws >/dev/null || die "STACK= needs the aws CLI; or give DLQ_URL and LEAD_QUEUE_URL"
  DLQ_URL="$(output "$STACK" LeadDeadLetterQueueUrl)"
  LEAD_QUEUE_URL="$(output "$STACK" LeadQueueUrl)"
fi
[[ -n "${DLQ_URL:-}" && -n "${LEAD_QUEUE_URL:-}" ]] \
  || die "set STACK, or DLQ_URL and LEAD_QUEUE_URL (the stack outputs LeadDeadLetterQueueUrl, LeadQueueUrl)"

args=(--dlq-url "$DLQ_URL" --queue-url "$LEAD_QUEUE_URL" --method "${METHOD:-move-task}")
[[ -n "${MAX:-}" ]] && args+=(--max "$MAX")
[[ -n "${RATE:-}" ]] && args+=(--rate "$RATE")
log "redriving $DLQ_URL -> $LEAD_QUEUE_URL (${METHOD:-move-task})"
cargo build -q -p relay-tests --bin redrive
exec "$ROOT/target/debug/redrive" "${args[@]}"
