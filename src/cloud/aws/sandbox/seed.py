#!/usr/bin/env python3
"""Seed a moto server started by `launcher.py` with drctl's two-region stack: the simulator's
built-in world (`src/cloud/sim/world.rs`, `BUILTIN_WORLD`) with the same names and ids, so the
shipped runbooks' defaults work unchanged on both backends. Prints the ids as one JSON document.

    python3 seed.py --endpoint http://127.0.0.1:5123

Progress goes to stderr; stdout carries only the JSON document.
"""

import argparse
import base64
import hashlib
import json
import os
import sys
import time
import urllib.request
import uuid

import boto3

ACCOUNT = "123456789012"
PRIMARY = "us-east-1"
STANDBY = "us-west-2"
# The simulator's ids (Route 53 cannot be asked for them; the launcher re-keys moto's objects).
ZONE_ID = "Z0DRCTLEXAMPLE"
PRIMARY_CHECK = "hc-primary"
SECONDARY_CHECK = "hc-secondary"
ARC_PRIMARY_CHECK = "hc-arc-primary"
ARC_SECONDARY_CHECK = "hc-arc-secondary"
ARC_PANEL = "arn:aws:route53-recovery-control::123456789012:controlpanel/0123456789abcdef0123456789abcdef"
ARC_ROUTING_CONTROLS = [
  ("primary-cell", f"{ARC_PANEL}/routingcontrol/primarycell00001", "On", ARC_PRIMARY_CHECK),
  ("standby-cell", f"{ARC_PANEL}/routingcontrol/standbycell00001", "Off", ARC_SECONDARY_CHECK),
]


# How long the seeded replica keeps publishing a current ReplicaLag.
LAG_HOURS = 24


def rekey(endpoint: str, spec: dict) -> None:
  post(endpoint, "rekey", spec)


def post(endpoint: str, route: str, spec: dict) -> None:
  """POST a JSON document to one of the sandbox's own routes."""
  request = urllib.request.Request(
    f"{endpoint}/drctl-sandbox/{route}",
    data=json.dumps(spec).encode(),
    headers={"Content-Type": "application/json"},
    method="POST",
  )
  with urllib.request.urlopen(request, timeout=30) as response:
    response.read()


def log(message: str) -> None:
  sys.stderr.write(f"seed: {message}\n")


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--endpoint", required=True)
  args = parser.parse_args()
  os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
  os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

  def client(service: str, region: str):
    return boto3.client(service, region_name=region, endpoint_url=args.endpoint)

  out: dict = {"account": ACCOUNT, "primary_region": PRIMARY, "standby_region": STANDBY}

  # --- RDS: app-db and its cross-region replica -------------------------------------------
  rds_east, rds_west = client("rds", PRIMARY), client("rds", STANDBY)
  rds_east.create_db_instance(
    DBInstanceIdentifier="app-db",
    DBInstanceClass="db.r6g.large",
    Engine="postgres",
    MasterUsername="drctl",
    MasterUserPassword="drctl-password",
    AllocatedStorage=100,
    BackupRetentionPeriod=7,
  )
  source_arn = f"arn:aws:rds:{PRIMARY}:{ACCOUNT}:db:app-db"
  rds_west.create_db_instance_read_replica(
    DBInstanceIdentifier="app-db-replica",
    SourceDBInstanceIdentifier=source_arn,
    DBInstanceClass="db.r6g.large",
  )
  # CloudWatch: ReplicaLag of the replica (4 s), published before the replica becomes
  # `available` (the launcher publishes a first datapoint then only for a replica that has none).
  # RDS publishes ReplicaLag every minute, and drctl treats a datapoint older than two periods
  # as unknown lag. moto publishes nothing by itself, so the seed puts one datapoint a minute
  # from three minutes ago to LAG_HOURS ahead: a sandbox session reads a current 4 s lag
  # throughout (CloudWatch's GetMetricStatistics only returns datapoints before its EndTime).
  post(args.endpoint, "metrics", {
    "region": STANDBY,
    "namespace": "AWS/RDS",
    "metric": "ReplicaLag",
    "dimensions": {"DBInstanceIdentifier": "app-db-replica"},
    "points": [[seconds_ago, 4.0] for seconds_ago in range(180, -LAG_HOURS * 3600, -60)],
  })
  older = rds_east.create_db_snapshot(
    DBInstanceIdentifier="app-db", DBSnapshotIdentifier="app-db-manual-2026-11-21"
  )
  newer = rds_east.create_db_snapshot(
    DBInstanceIdentifier="app-db", DBSnapshotIdentifier="app-db-manual-2026-11-22"
  )
  # The DR plan's cross-region copy of the newest snapshot, in the standby region.
  copy = rds_west.copy_db_snapshot(
    SourceDBSnapshotIdentifier=newer["DBSnapshot"]["DBSnapshotArn"],
    TargetDBSnapshotIdentifier="app-db-copy-2026-11-22",
    SourceRegion=PRIMARY,
  )
  snapshots = rds_east.describe_db_snapshots(DBInstanceIdentifier="app-db")["DBSnapshots"]
  out["rds"] = {
    "instance": "app-db",
    "instance_arn": source_arn,
    "replica": "app-db-replica",
    "snapshots": [
      {"id": s["DBSnapshotIdentifier"], "type": s.get("SnapshotType")} for s in snapshots
    ],
    "manual_snapshot": newer["DBSnapshot"]["DBSnapshotIdentifier"],
    "older_manual_snapshot": older["DBSnapshot"]["DBSnapshotIdentifier"],
    "standby_copy": copy["DBSnapshot"]["DBSnapshotIdentifier"],
  }
  out["rds"]["replica_lag_seconds"] = 4
  # The replica is `creating` for a moment, as on AWS (launcher.py): runs start once it is
  # available.
  for _ in range(100):
    status = rds_west.describe_db_instances(DBInstanceIdentifier="app-db-replica")[
      "DBInstances"
    ][0]["DBInstanceStatus"]
    if status == "available":
      break
    time.sleep(0.1)
  log(f"rds: app-db, app-db-replica, {len(snapshots)} snapshots, 1 copy in {STANDBY}")

  # --- Aurora global database app-global --------------------------------------------------
  try:
    rds_east.create_global_cluster(
      GlobalClusterIdentifier="app-global", Engine="aurora-postgresql"
    )
    primary_cluster = rds_east.create_db_cluster(
      DBClusterIdentifier="app-aurora-use1",
      Engine="aurora-postgresql",
      MasterUsername="drctl",
      MasterUserPassword="drctl-password",
      GlobalClusterIdentifier="app-global",
    )["DBCluster"]
    secondary_cluster = rds_west.create_db_cluster(
      DBClusterIdentifier="app-aurora-usw2",
      Engine="aurora-postgresql",
      GlobalClusterIdentifier="app-global",
    )["DBCluster"]
    # The secondary's RPO lag (AuroraGlobalDBRPOLag, milliseconds, published in its own
    # region), a minute apart like the replica's ReplicaLag above.
    post(args.endpoint, "metrics", {
      "region": STANDBY,
      "namespace": "AWS/RDS",
      "metric": "AuroraGlobalDBRPOLag",
      "dimensions": {"DBClusterIdentifier": "app-aurora-usw2"},
      "points": [[seconds_ago, 800.0] for seconds_ago in range(180, -LAG_HOURS * 3600, -60)],
      "unit": "Milliseconds",
    })
    out["global_cluster"] = {
      "id": "app-global",
      "primary_cluster_arn": primary_cluster["DBClusterArn"],
      "secondary_cluster_arn": secondary_cluster["DBClusterArn"],
    }
    log("rds: global cluster app-global")
  except Exception as error:  # noqa: BLE001 - optional: report and carry on
    log(f"rds: no global cluster ({error})")
    out["global_cluster"] = None

  # --- ELBv2: the ALB target group in front of each region's api service -------------------
  # As in the built-in world: `app-primary-tg` (us-east-1) and `app-standby-tg` (us-west-2), ip
  # targets on port 80 (awsvpc tasks). The ECS services below name them in `loadBalancers`, and
  # the launcher registers their running tasks as targets.
  target_groups = {}
  for region, name in ((PRIMARY, "app-primary-tg"), (STANDBY, "app-standby-tg")):
    vpc_id = client("ec2", region).describe_vpcs()["Vpcs"][0]["VpcId"]
    group = client("elbv2", region).create_target_group(
      Name=name,
      Protocol="HTTP",
      Port=80,
      VpcId=vpc_id,
      TargetType="ip",
      HealthCheckPath="/health",
      HealthCheckIntervalSeconds=10,
      HealthyThresholdCount=3,
      UnhealthyThresholdCount=2,
    )["TargetGroups"][0]
    target_groups[region] = {"name": name, "arn": group["TargetGroupArn"]}
  out["elbv2"] = target_groups
  log("elbv2: target groups app-primary-tg, app-standby-tg")

  # --- CloudWatch: the team's alarms, in the standby region -------------------------------
  # As in the built-in world: `app-primary-unhealthy` watches the primary's Route 53 health
  # check (AWS/Route53 HealthCheckStatus, whose metrics CloudWatch keeps in us-east-1; the
  # sandbox's alarm lives in the standby region with the world's), `app-standby-unhealthy` the
  # standby target group's healthy hosts. Both are in ALARM when the world starts (the game day's
  # primary check fails, the standby runs no task), as the simulator evaluates them. moto does
  # not evaluate alarms: they keep that state until a SetAlarmState changes it.
  cloudwatch = client("cloudwatch", STANDBY)
  alarms = [
    ("app-primary-unhealthy", "AWS/Route53", "HealthCheckStatus",
     [{"Name": "HealthCheckId", "Value": PRIMARY_CHECK}], "LessThanThreshold", 1.0,
     "Threshold Crossed: 3 out of the last 3 datapoints were breaching (health check hc-primary is unhealthy); 3 needed for ALARM"),
    ("app-standby-unhealthy", "AWS/ApplicationELB", "HealthyHostCount",
     [{"Name": "TargetGroup", "Value": "targetgroup/app-standby-tg"}], "LessThanThreshold", 3.0,
     "Threshold Crossed: 3 out of the last 3 datapoints were breaching (target group app-standby-tg has fewer than 3 healthy targets); 3 needed for ALARM"),
  ]
  for name, namespace, metric, dimensions, comparison, threshold, reason in alarms:
    cloudwatch.put_metric_alarm(
      AlarmName=name,
      Namespace=namespace,
      MetricName=metric,
      Dimensions=dimensions,
      Statistic="Minimum",
      Period=60,
      EvaluationPeriods=3,
      Threshold=threshold,
      ComparisonOperator=comparison,
      TreatMissingData="breaching",
    )
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason=reason)
  out["cloudwatch"] = {"region": STANDBY, "alarms": [alarm[0] for alarm in alarms]}
  log("cloudwatch: alarms app-primary-unhealthy, app-standby-unhealthy (ALARM)")

  # --- ECS: api in both regions -----------------------------------------------------------
  ecs = {}
  for region, cluster, desired in ((PRIMARY, "app-primary", 3), (STANDBY, "app-standby", 0)):
    ecs_client = client("ecs", region)
    ecs_client.create_cluster(clusterName=cluster)
    task_definition = ecs_client.register_task_definition(
      family="api",
      requiresCompatibilities=["FARGATE"],
      networkMode="awsvpc",
      cpu="512",
      memory="1024",
      containerDefinitions=[
        {
          "name": "api",
          "image": "public.ecr.aws/nginx/nginx:latest",
          "essential": True,
          "portMappings": [{"containerPort": 80}],
        }
      ],
    )["taskDefinition"]
    ecs_client.create_service(
      cluster=cluster,
      serviceName="api",
      taskDefinition=task_definition["taskDefinitionArn"],
      desiredCount=desired,
      launchType="FARGATE",
      loadBalancers=[
        {
          "targetGroupArn": target_groups[region]["arn"],
          "containerName": "api",
          "containerPort": 80,
        }
      ],
      deploymentConfiguration={
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
      },
    )
    ecs[region] = {"cluster": cluster, "service": "api", "desired_count": desired}
  out["ecs"] = ecs
  log("ecs: app-primary/api (3), app-standby/api (0)")

  # --- Route 53: example.com failover records and health checks ---------------------------
  route53 = client("route53", PRIMARY)
  zone = route53.create_hosted_zone(Name="example.com.", CallerReference=str(uuid.uuid4()))
  zone_id = zone["HostedZone"]["Id"].rsplit("/", 1)[-1]

  def health_check(fqdn: str, inverted: bool) -> str:
    return route53.create_health_check(
      CallerReference=str(uuid.uuid4()),
      HealthCheckConfig={
        "Type": "HTTPS",
        "FullyQualifiedDomainName": fqdn,
        "Port": 443,
        "ResourcePath": "/health",
        "RequestInterval": 30,
        "FailureThreshold": 3,
        "Inverted": inverted,
      },
    )["HealthCheck"]["Id"]

  # Game day, as in the built-in world: the primary's check is inverted, as a drill does, so
  # Route 53 sees the primary down while it still serves.
  primary_check = health_check("api-use1.example.com", True)
  secondary_check = health_check("api-usw2.example.com", False)

  def record(set_id: str, role: str, value: str, check: str) -> dict:
    return {
      "Action": "UPSERT",
      "ResourceRecordSet": {
        "Name": "api.example.com.",
        "Type": "CNAME",
        "SetIdentifier": set_id,
        "Failover": role,
        "TTL": 60,
        "ResourceRecords": [{"Value": value}],
        "HealthCheckId": check,
      },
    }

  route53.change_resource_record_sets(
    HostedZoneId=zone_id,
    ChangeBatch={
      "Comment": "drctl seed",
      "Changes": [
        record("primary", "PRIMARY", "api-use1.example.com", primary_check),
        record("secondary", "SECONDARY", "api-usw2.example.com", secondary_check),
      ],
    },
  )
  # ARC, as in the built-in world: app.example.com's failover records are guarded by the health
  # checks the routing controls drive (`hc-arc-*`; the launcher answers GetHealthCheckStatus for
  # them from their control's state, see `arc_cluster` there), primary cell On, standby Off.
  arc_primary_check = health_check("api-use1.example.com", False)
  arc_secondary_check = health_check("api-usw2.example.com", False)
  route53.change_resource_record_sets(
    HostedZoneId=zone_id,
    ChangeBatch={
      "Comment": "drctl seed (ARC)",
      "Changes": [
        {**change, "ResourceRecordSet": {**change["ResourceRecordSet"], "Name": "app.example.com."}}
        for change in (
          record("primary", "PRIMARY", "api-use1.example.com", arc_primary_check),
          record("secondary", "SECONDARY", "api-usw2.example.com", arc_secondary_check),
        )
      ],
    },
  )
  rekey(
    args.endpoint,
    {
      "hosted_zones": {zone_id: ZONE_ID},
      "health_checks": {
        primary_check: PRIMARY_CHECK,
        secondary_check: SECONDARY_CHECK,
        arc_primary_check: ARC_PRIMARY_CHECK,
        arc_secondary_check: ARC_SECONDARY_CHECK,
      },
    },
  )
  for name, arn, state, check in ARC_ROUTING_CONTROLS:
    post(args.endpoint, "arc", {"arn": arn, "name": name, "state": state, "health_check_id": check})
  zone_id, primary_check, secondary_check = ZONE_ID, PRIMARY_CHECK, SECONDARY_CHECK
  out["route53"] = {
    "zone_id": zone_id,
    "zone_name": "example.com.",
    "record": "api.example.com.",
    "primary_health_check": primary_check,
    "secondary_health_check": secondary_check,
    "arc_primary_health_check": ARC_PRIMARY_CHECK,
    "arc_secondary_health_check": ARC_SECONDARY_CHECK,
  }
  log(f"route53: zone {zone_id}, health checks {primary_check} {secondary_check}")

  # --- S3: backups in both regions --------------------------------------------------------
  buckets = {PRIMARY: "app-backups-use1", STANDBY: "app-backups-usw2"}
  objects = []
  for region, bucket in buckets.items():
    s3 = client("s3", region)
    if region == "us-east-1":
      s3.create_bucket(Bucket=bucket)
    else:
      s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
  # Replication use1 -> usw2, as in the built-in world (the launcher reports the objects of the
  # source COMPLETED and their copies REPLICA).
  for region, bucket in buckets.items():
    client("s3", region).put_bucket_versioning(
      Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
    )
  client("s3", PRIMARY).put_bucket_replication(
    Bucket=buckets[PRIMARY],
    ReplicationConfiguration={
      "Role": f"arn:aws:iam::{ACCOUNT}:role/drctl-replication",
      "Rules": [
        {
          "ID": "backups",
          "Priority": 1,
          "Status": "Enabled",
          "Filter": {"Prefix": "postgres/"},
          "DeleteMarkerReplication": {"Status": "Disabled"},
          "Destination": {"Bucket": f"arn:aws:s3:::{buckets[STANDBY]}"},
        }
      ],
    },
  )
  s3 = client("s3", PRIMARY)
  for key in ("postgres/app-db-2026-11-21T03-00.dump", "postgres/app-db-2026-11-22T03-00.dump"):
    body = f"PGDMP drctl seed {key}\n".encode() * 64
    checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
    # moto records a checksum only when the algorithm header comes along with the value
    # (AWS needs just the value); sending both works on both.
    s3.put_object(
      Bucket=buckets[PRIMARY],
      Key=key,
      Body=body,
      ChecksumAlgorithm="SHA256",
      ChecksumSHA256=checksum,
    )
    objects.append({"key": key, "size": len(body), "checksum_sha256": checksum})
  # The newest dump's replica in the standby region.
  client("s3", STANDBY).put_object(
    Bucket=buckets[STANDBY],
    Key=objects[-1]["key"],
    Body=body,
    ChecksumAlgorithm="SHA256",
    ChecksumSHA256=objects[-1]["checksum_sha256"],
  )
  # The rule's S3 Replication metrics (S3 Replication Time Control turns them on):
  # ReplicationLatency, seconds, published in the destination bucket's region with the
  # SourceBucket, DestinationBucket and RuleId dimensions, a minute apart like ReplicaLag above.
  post(args.endpoint, "metrics", {
    "region": STANDBY,
    "namespace": "AWS/S3",
    "metric": "ReplicationLatency",
    "dimensions": {
      "SourceBucket": buckets[PRIMARY],
      "DestinationBucket": buckets[STANDBY],
      "RuleId": "backups",
    },
    "points": [[seconds_ago, 30.0] for seconds_ago in range(180, -LAG_HOURS * 3600, -60)],
    "unit": "Seconds",
  })
  out["s3"] = {"buckets": buckets, "objects": objects, "replication_rule": "backups"}
  log(f"s3: {len(objects)} objects in {buckets[PRIMARY]}")

  json.dump(out, sys.stdout, indent=2, sort_keys=True)
  sys.stdout.write("\n")


if __name__ == "__main__":
  main()
