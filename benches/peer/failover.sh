#!/usr/bin/env bash
# Regional failover with the aws CLI: the script a team writes from the hand-run DR runbook
# (docs/hand-run-runbook.md), step by step, one after another. drctl's benchmark
# (benches/peer.rs) runs it against a seeded moto server, next to `drctl run regional-failover`.
#
#   TARGET_REGION=us-west-2 PUBLIC_URL=https://api.example.com/health \
#   SLACK_WEBHOOK_URL=https://hooks.slack.com/services/... ./failover.sh [--check]
#
# --check runs the read-only pre-flight (steps 1 and 2) and stops before changing anything.
# AWS_ENDPOINT_URL (moto) is passed to every call with --endpoint-url when set. Waits use the
# CLI's own waiters (`aws rds wait`, `aws ecs wait`, `aws route53 wait`), as teams do; the final
# check polls the public URL with curl every 5 s for up to 5 minutes.
set -euo pipefail

CHECK_ONLY=false
if [[ ${1:-} == --check ]]; then CHECK_ONLY=true; fi

TARGET_REGION=${TARGET_REGION:-us-west-2}
REPLICA=${REPLICA:-app-db-replica}
CLUSTER=${CLUSTER:-app-standby}
SERVICE=${SERVICE:-api}
DESIRED_COUNT=${DESIRED_COUNT:-3}
ZONE_ID=${ZONE_ID:-Z0DRCTLEXAMPLE}
PRIMARY_HEALTH_CHECK=${PRIMARY_HEALTH_CHECK:-hc-primary}
SECONDARY_HEALTH_CHECK=${SECONDARY_HEALTH_CHECK:-hc-secondary}
RECORD=${RECORD:-api.example.com}
PRIMARY_TARGET=${PRIMARY_TARGET:-api-use1.example.com}
STANDBY_TARGET=${STANDBY_TARGET:-api-usw2.example.com}
PUBLIC_URL=${PUBLIC_URL:-https://api.example.com/health}
MAX_LAG_SECONDS=${MAX_LAG_SECONDS:-300}
: "${SLACK_WEBHOOK_URL:?set SLACK_WEBHOOK_URL}"

aws() {
  command aws ${AWS_ENDPOINT_URL:+--endpoint-url "$AWS_ENDPOINT_URL"} --output text "$@"
}
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
started=$(date +%s)

# 1. Verify the outage: Route 53 sees the primary down, and so do users.
read -r healthy total < <(aws route53 get-health-check-status \
  --health-check-id "$PRIMARY_HEALTH_CHECK" --query \
  '[length(HealthCheckObservations[?starts_with(StatusReport.Status, `Success`)]), length(HealthCheckObservations)]')
# Route 53 calls an endpoint healthy when more than 18 % of its checkers do.
if (( healthy * 100 > total * 18 )); then
  log "primary health check is healthy ($healthy/$total checkers): not failing over"
  exit 1
fi
log "primary is down: $healthy/$total checkers healthy"
code=$(curl -s -o /dev/null -w '%{http_code}' "$PUBLIC_URL" || true)
if [[ $code == 200 ]]; then
  log "$PUBLIC_URL still answers 200: not failing over"
  exit 1
fi
log "$PUBLIC_URL answers $code"

# 2. The replica exists, is a replica, and its lag is within the RPO.
read -r status source < <(aws rds describe-db-instances --region "$TARGET_REGION" \
  --db-instance-identifier "$REPLICA" \
  --query 'DBInstances[0].[DBInstanceStatus,ReadReplicaSourceDBInstanceIdentifier]')
if [[ $status != available || $source == None ]]; then
  log "$REPLICA is not an available read replica (status $status, source $source)"
  exit 1
fi
lag=$(aws cloudwatch get-metric-statistics --region "$TARGET_REGION" \
  --namespace AWS/RDS --metric-name ReplicaLag \
  --dimensions "Name=DBInstanceIdentifier,Value=$REPLICA" \
  --start-time "$(date -u -d '-10 minutes' +%Y-%m-%dT%H:%M:%SZ)" \
  --end-time "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --period 60 --statistics Maximum \
  --query 'max_by(Datapoints, &Timestamp).Maximum')
if [[ $lag == None ]] || (( ${lag%.*} > MAX_LAG_SECONDS )); then
  log "replica lag ${lag}s is unknown or beyond the RPO (${MAX_LAG_SECONDS}s)"
  exit 1
fi
log "$REPLICA: $status, replica of $source, lag ${lag}s"
if $CHECK_ONLY; then
  log "pre-flight passed (--check: nothing changed)"
  exit 0
fi

# 3. Promote the replica and wait until it is a standalone instance.
aws rds promote-read-replica --region "$TARGET_REGION" --db-instance-identifier "$REPLICA" \
  --query 'DBInstance.DBInstanceStatus' >/dev/null
aws rds wait db-instance-available --region "$TARGET_REGION" --db-instance-identifier "$REPLICA"
source=$(aws rds describe-db-instances --region "$TARGET_REGION" \
  --db-instance-identifier "$REPLICA" --query 'DBInstances[0].ReadReplicaSourceDBInstanceIdentifier')
if [[ $source != None ]]; then
  log "$REPLICA is still a replica of $source"
  exit 1
fi
log "$REPLICA promoted"

# 4. Scale up the standby service and wait for its tasks.
aws ecs update-service --region "$TARGET_REGION" --cluster "$CLUSTER" --service "$SERVICE" \
  --desired-count "$DESIRED_COUNT" --query 'service.desiredCount' >/dev/null
aws ecs wait services-stable --region "$TARGET_REGION" --cluster "$CLUSTER" --services "$SERVICE"
log "$CLUSTER/$SERVICE runs $DESIRED_COUNT task(s)"

# 5. Flip DNS: the standby target becomes PRIMARY, and wait until Route 53 has it everywhere.
batch=$(cat <<JSON
{"Comment": "failover to $TARGET_REGION", "Changes": [
  {"Action": "UPSERT", "ResourceRecordSet": {"Name": "$RECORD.", "Type": "CNAME",
    "SetIdentifier": "primary", "Failover": "PRIMARY", "TTL": 60,
    "ResourceRecords": [{"Value": "$STANDBY_TARGET"}], "HealthCheckId": "$SECONDARY_HEALTH_CHECK"}},
  {"Action": "UPSERT", "ResourceRecordSet": {"Name": "$RECORD.", "Type": "CNAME",
    "SetIdentifier": "secondary", "Failover": "SECONDARY", "TTL": 60,
    "ResourceRecords": [{"Value": "$PRIMARY_TARGET"}], "HealthCheckId": "$PRIMARY_HEALTH_CHECK"}}]}
JSON
)
change=$(aws route53 change-resource-record-sets --hosted-zone-id "$ZONE_ID" \
  --change-batch "$batch" --query 'ChangeInfo.Id')
aws route53 wait resource-record-sets-changed --id "$change"
log "DNS: $RECORD -> $STANDBY_TARGET ($change INSYNC)"

# 6. Verify the secondary: the public URL answers 200.
deadline=$(( $(date +%s) + 300 ))
until [[ $(curl -s -o /dev/null -w '%{http_code}' "$PUBLIC_URL" || true) == 200 ]]; do
  if (( $(date +%s) > deadline )); then
    log "$PUBLIC_URL did not answer 200 within 5 minutes"
    exit 1
  fi
  sleep 5
done
log "$PUBLIC_URL answers 200"

# 7. Notify the team.
elapsed=$(( $(date +%s) - started ))
curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' \
  --data "{\"text\": \"Failover of $RECORD to $TARGET_REGION complete in ${elapsed}s.\"}" \
  "$SLACK_WEBHOOK_URL"
log "failover complete in ${elapsed}s"
