#!/usr/bin/env python3
"""Start moto server (5.2.x) on loopback, patched to behave like AWS where drctl depends on it.

    python3 launcher.py --port 5123

drctl embeds this file (`drctl sandbox up`, `--sandbox`) and its tests run it too. Each patch
below names the AWS behaviour it mirrors. They are applied by monkeypatching moto's backend and
response classes before the server starts; nothing in site-packages is modified.

Besides the AWS APIs, the server answers the sandbox's own routes under `/drctl-sandbox/`
(sent by drctl's sandbox `Http` provider and by tests, never to AWS):

* `GET /drctl-sandbox/ping` answers `ok` once the server is up.
* `GET /drctl-sandbox/app/<host>/<path>` answers for the world's HTTP endpoints the way the
  simulator does: `api-use1.example.com` is `200 ok` while ECS `app-primary/api` (us-east-1)
  runs a task, `api-usw2.example.com` likewise for `app-standby/api` (us-west-2), and
  `api.example.com` follows Route 53's failover rule over the records of `Z0DRCTLEXAMPLE`.
  Anything else is 503.
* `POST /drctl-sandbox/capture/<host>/<path>` records a notification (Slack, PagerDuty, a
  webhook) instead of sending it; `GET /drctl-sandbox/captured` lists what was recorded.
* `POST /drctl-sandbox/faults` with `{"throttle": true}` answers every AWS API call with the
  service's throttling error until `{"throttle": false}`.
* `POST /drctl-sandbox/rekey` renames generated ids (see `rekey` below); `seed.py` uses it.
* `POST /drctl-sandbox/health?id=HC&healthy=false` (also `/drctl-test/health`) overrides
  whether the endpoint behind health check HC answers, for adapter tests.
* `GET /drctl-sandbox/global-failovers` lists every `FailoverGlobalCluster` request: its global
  cluster, target and whether it allowed data loss (a failover) or not (a switchover).
* Route 53 ARC's recovery cluster data plane (awsJson1_0, `X-Amz-Target:
  ToggleCustomerAPI.GetRoutingControlState` / `.UpdateRoutingControlState`), which moto does not
  serve, on any path: a cluster endpoint is this server's URL with a path of its own
  (`http://127.0.0.1:PORT/arc/us-east-1/v1`, one per region). `POST /drctl-sandbox/arc` with
  `{"arn", "name", "state": "On"|"Off", "health_check_id"}` declares a routing control (what the
  recovery control-config API would create; drctl never calls it). See `arc_cluster` below.
* `POST /drctl-sandbox/metrics` with `{"region", "namespace", "metric", "dimensions": {NAME:
  VALUE}, "points": [[SECONDS_AGO, VALUE], ...]}` puts CloudWatch datapoints timed relative to
  now, the way RDS publishes them: a replica whose source failed reads -1, then its
  datapoints stop (stale), then there are none.
"""

import argparse
import datetime
import json
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from urllib.parse import parse_qs

# moto's request recorder (`/moto-api/recorder/...`) appends to the file named here, read once at
# import: one file per server, so servers running side by side do not share a recording.
if "MOTO_RECORDER_FILEPATH" not in os.environ:
  os.environ["MOTO_RECORDER_FILEPATH"] = os.path.join(
    tempfile.mkdtemp(prefix="drctl-sandbox-"), "recording.jsonl"
  )

import moto
from moto.core.responses import ActionResult
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.rds import models as rds_models
from moto.cloudwatch import models as cloudwatch_models
from moto.rds.exceptions import DBInstanceAlreadyExists, DBInstanceNotFoundError, RDSClientError
from moto.rds.responses import RDSResponse
from moto.route53 import models as route53_models
from moto.route53.exceptions import Route53ClientError
from moto.route53.responses import Route53
from moto.s3.responses import S3Response
from moto.ecs import models as ecs_models
from moto.elbv2 import models as elbv2_models
from moto.s3 import models as s3_models
from werkzeug.serving import make_server

if not moto.__version__.startswith("5.2."):
    # The patches below replace methods by name; another minor version may have moved them.
    sys.stderr.write(f"warning: launcher written for moto 5.2.x, found {moto.__version__}\n")

ACCOUNT = "123456789012"
# How long a promoted replica stays `modifying`, and a Route 53 change stays `PENDING`.
PROMOTION_SECONDS = 1.5
CHANGE_PENDING_SECONDS = 1.5
# Route 53 reports one observation per checker region; AWS uses up to 16 checkers. Eight keeps
# the 18 % rule meaningful (2 of 8 healthy is healthy, 1 of 8 is not).
CHECKER_REGIONS = [
  "us-east-1", "us-west-1", "us-west-2", "eu-west-1",
  "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "sa-east-1",
]

_lock = threading.Lock()
# Every FailoverGlobalCluster request, as `{"global", "target", "allow_data_loss"}`
# (`GET /drctl-sandbox/global-failovers`).
GLOBAL_FAILOVERS: list = []
# health check id -> whether the endpoint behind it answers (default: it does).
ENDPOINT_HEALTH: dict[str, bool] = {}
# change id (without `/change/`) -> submission time (epoch seconds).
CHANGES: dict[str, float] = {}


def _utcnow() -> datetime.datetime:
  return datetime.datetime.now(datetime.timezone.utc)


# -------------------------------------------------------------------------------------------
# (a) RDS PromoteReadReplica. AWS: a promoted replica becomes a standalone instance; it is
# `modifying` for a while (minutes on AWS), then `available`, and
# `ReadReplicaSourceDBInstanceIdentifier` is gone; the source no longer lists it as a replica.
# moto flips `is_replica` but keeps the source link, and the instance stays `available`.
# -------------------------------------------------------------------------------------------
_original_promote = rds_models.RDSBackend.promote_read_replica


def _remove_from_source(backend, database) -> None:
  source_id = database.source_db_instance_identifier
  if not source_id:
    return
  try:
    source = backend.find_db_from_id(source_id)
  except RDSClientError:
    return  # the source is gone already: nothing links to the replica
  for name in (database.db_instance_identifier, database.db_instance_arn):
    if name in source.replicas:
      source.replicas.remove(name)


def promote_read_replica(self, db_kwargs):
  database_id = db_kwargs["db_instance_identifier"]
  database = self.databases.get(database_id)
  if database is None:
    raise DBInstanceNotFoundError(database_id)
  if not database.is_replica:
    # AWS refuses to promote an instance that is not a read replica.
    raise RDSClientError(
      "InvalidDBInstanceState", f"DB Instance {database_id} is not a read replica."
    )
  database = _original_promote(self, db_kwargs)
  _remove_from_source(self, database)
  database.source_db_instance_identifier = None
  database.status = "modifying"

  def settle() -> None:
    with _lock:
      if database.status == "modifying":
        database.status = "available"

  timer = threading.Timer(PROMOTION_SECONDS, settle)
  timer.daemon = True
  timer.start()
  return database


rds_models.RDSBackend.promote_read_replica = promote_read_replica


# -------------------------------------------------------------------------------------------
# (e) RDS DeleteDBInstance of a cross-region read replica. AWS deletes it and answers normally.
# moto stores a cross-region replica on its source by ARN but removes it by identifier, so the
# `list.remove` raises after the instance is already gone: HTTP 500 for a delete that happened.
# -------------------------------------------------------------------------------------------
def remove_replica(self, replica) -> None:
  for name in (replica.db_instance_identifier, replica.db_instance_arn):
    if name in self.replicas:
      self.replicas.remove(name)


rds_models.DBInstance.remove_replica = remove_replica


# -------------------------------------------------------------------------------------------
# (i) RDS CreateDBInstanceReadReplica. AWS: the new replica is `creating` ("The instance is
# being created. The instance is inaccessible while it is being created.", RDS User Guide,
# *Viewing Amazon RDS DB instance status*) while RDS snapshots the source and copies it across
# regions, then `available` once replication runs (*Working with DB instance read replicas*,
# *Creating a read replica*); CloudWatch then publishes its `ReplicaLag`. An identifier that is
# taken is refused with `DBInstanceAlreadyExists`. moto makes the replica `available` at once,
# silently replaces an instance of the same name, and publishes no metric. Here the replica is
# `creating` for REPLICA_CREATION_SECONDS, then `available` with a first `ReplicaLag` datapoint
# of 0 (nothing writes in the sandbox), unless one was put for it already (seed.py puts 4 s).
# -------------------------------------------------------------------------------------------
REPLICA_CREATION_SECONDS = 1.5
REPLICA_LAG_HOURS = 24
_original_create_replica = rds_models.RDSBackend.create_db_instance_read_replica


def _has_replica_lag(region: str, instance_id: str) -> bool:
  backend = cloudwatch_models.cloudwatch_backends[ACCOUNT][region]
  for datum in backend.metric_data:
    if datum.namespace == "AWS/RDS" and datum.name == "ReplicaLag" and any(
      dimension.value == instance_id for dimension in datum.dimensions
    ):
      return True
  return False


def create_db_instance_read_replica(self, db_kwargs):
  database_id = db_kwargs["db_instance_identifier"]
  if database_id in self.databases:
    raise DBInstanceAlreadyExists()
  replica = _original_create_replica(self, db_kwargs)
  replica.status = "creating"
  region = self.region_name

  def settle() -> None:
    with _lock:
      if replica.status != "creating":
        return
      # The datapoint first: whoever sees `available` finds the metric too.
      if not _has_replica_lag(region, database_id):
        cloudwatch_models.cloudwatch_backends[ACCOUNT][region].put_metric_data(
          namespace="AWS/RDS",
          # One a minute, as RDS publishes it, for REPLICA_LAG_HOURS (drctl reads a datapoint
          # older than two periods as unknown lag): the first a second in the past, naive UTC
          # as moto keeps it (a query ending now drops the current second, as moto truncates
          # EndTime); later ones appear as their time passes.
          metric_data=[
            {
              "MetricName": "ReplicaLag",
              "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": database_id}],
              "Timestamp": _utcnow().replace(tzinfo=None)
              + datetime.timedelta(seconds=minute * 60 - 1),
              "Value": 0.0,
              "Unit": "Seconds",
            }
            for minute in range(REPLICA_LAG_HOURS * 60)
          ],
        )
      replica.status = "available"

  timer = threading.Timer(REPLICA_CREATION_SECONDS, settle)
  timer.daemon = True
  timer.start()
  return replica


rds_models.RDSBackend.create_db_instance_read_replica = create_db_instance_read_replica


# -------------------------------------------------------------------------------------------
# (d) RDS FailoverGlobalCluster. AWS: the target secondary cluster becomes the writer, the old
# writer becomes a secondary; the global cluster is `failing-over` during the operation, then
# `available`. moto does not implement the operation (HTTP 500). Here the switch is immediate.
# -------------------------------------------------------------------------------------------
def failover_global_cluster(self):
  global_id = (self._get_param("GlobalClusterIdentifier") or "").lower()
  target = self._get_param("TargetDbClusterIdentifier") or ""
  clusters = self.global_backend.global_clusters
  if global_id not in clusters:
    raise RDSClientError(
      "GlobalClusterNotFoundFault", f"Global cluster {global_id} not found."
    )
  global_cluster = clusters[global_id]
  members = global_cluster.members
  matches = [
    member
    for member in members
    if target in (member.db_cluster_arn, member.db_cluster_identifier)
  ]
  if not matches:
    raise RDSClientError(
      "DBClusterNotFoundFault",
      f"DB cluster {target} is not a member of global cluster {global_id}.",
    )
  allow_data_loss = _truthy(self._get_param("AllowDataLoss"))
  switchover = _truthy(self._get_param("Switchover"))
  if allow_data_loss and switchover:
    raise RDSClientError(
      "InvalidParameterCombination",
      "AllowDataLoss can't be specified together with Switchover.",
    )
  with _lock:
    GLOBAL_FAILOVERS.append(
      {"global": global_id, "target": target, "allow_data_loss": allow_data_loss}
    )
  for member in members:
    member.is_writer = member is matches[0]
  global_cluster.status = "available"
  return ActionResult({"GlobalCluster": global_cluster})


RDSResponse.failover_global_cluster = failover_global_cluster


# -------------------------------------------------------------------------------------------
# (c) Route 53 ChangeResourceRecordSets / GetChange. AWS gives each change batch its own id and
# reports it `PENDING` until every Route 53 name server has it (usually well under a minute),
# then `INSYNC`; an unknown id is `NoSuchChange` (404). moto returns one fixed id, always INSYNC.
# -------------------------------------------------------------------------------------------
_original_change = Route53.change_resource_record_sets


def change_resource_record_sets(self):
  result = _original_change(self)
  change_id = "C" + uuid.uuid4().hex[:20].upper()
  with _lock:
    CHANGES[change_id] = time.time()
  info = result.result["ChangeInfo"]
  info["Id"] = f"/change/{change_id}"
  info["Status"] = "PENDING"
  return result


def _change_status(change_id: str):
  change_id = change_id.rsplit("/", 1)[-1]
  with _lock:
    submitted = CHANGES.get(change_id)
  if submitted is None:
    raise Route53ClientError("NoSuchChange", f"A change with the specified change ID does not exist.")
  status = "PENDING" if time.time() - submitted < CHANGE_PENDING_SECONDS else "INSYNC"
  submitted_at = datetime.datetime.fromtimestamp(submitted, datetime.timezone.utc)
  return {"Id": f"/change/{change_id}", "Status": status, "SubmittedAt": submitted_at}


def get_change(self):
  change_id = self._get_param("Id") or self.path.rsplit("/", 1)[-1]
  return ActionResult({"ChangeInfo": _change_status(change_id)})


Route53.change_resource_record_sets = change_resource_record_sets
Route53.get_change = get_change


# -------------------------------------------------------------------------------------------
# (b) Route 53 GetHealthCheckStatus. AWS reports one observation per checker, each the
# checker's view of the endpoint *after* `Inverted` is applied (an inverted check whose endpoint
# answers reports Failure). A disabled check is considered healthy whatever the endpoint does.
# moto always reports a single success and ignores `Inverted`/`Disabled`. Here the checkers
# observe the sandbox's own endpoints (`app_status` below: the host of the check answers while
# its ECS service runs a task), unless `/drctl-sandbox/health` overrides one check.
# -------------------------------------------------------------------------------------------
def _truthy(value) -> bool:
  # moto keeps `Inverted`/`Disabled` as sent: a bool on create, the XML text on update.
  return value is True or str(value).lower() == "true"


def _route53_backend():
  return route53_models.route53_backends[ACCOUNT]["aws"]


def _endpoint_up(health_check, depth: int = 0) -> bool:
  with _lock:
    override = ENDPOINT_HEALTH.get(health_check.id)
  if override is not None:
    return override
  host = (health_check.fqdn or "").rstrip(".").lower()
  return app_status(host, depth + 1)[0] == 200


def _check_success(health_check, depth: int = 0) -> tuple[bool, bool]:
  """(whether the checkers report success, whether the endpoint answers)."""
  if _truthy(health_check.disabled):
    return True, True
  control = _routing_control_of(health_check.id)
  if control is not None:
    # A RECOVERY_CONTROL health check: healthy while its routing control is On.
    on = control["state"] == "On"
    return on != _truthy(health_check.inverted), on
  up = _endpoint_up(health_check, depth)
  return up != _truthy(health_check.inverted), up


def get_health_check_status(self):
  health_check_id = self._get_param("HealthCheckId")
  health_check = self.backend.get_health_check(health_check_id)  # NoSuchHealthCheck if missing
  success, endpoint_up = _check_success(health_check)
  if _truthy(health_check.disabled):
    detail = "Health check is disabled; Route 53 considers it healthy"
  else:
    detail = "HTTP Status Code 200, OK" if endpoint_up else "Connection timed out"
    if _truthy(health_check.inverted):
      detail += " (inverted)"
  status = ("Success: " if success else "Failure: ") + detail
  now = _utcnow()
  observations = [
    {
      "Region": region,
      "IPAddress": f"127.0.13.{index + 1}",
      "StatusReport": {"Status": status, "CheckedTime": now},
    }
    for index, region in enumerate(CHECKER_REGIONS)
  ]
  return ActionResult({"HealthCheckObservations": observations})


Route53.get_health_check_status = get_health_check_status


# -------------------------------------------------------------------------------------------
# (g) ECS services. AWS starts the tasks of a service and, once `runningCount` reaches
# `desiredCount`, reports the PRIMARY deployment's `rolloutState` as `COMPLETED`. moto starts a
# service with `runningCount` 0 (unless MOTO_ECS_SERVICE_RUNNING is set) and `UpdateService`
# changes the service's counts but leaves the deployment's counts and rollout state stale.
# Here tasks "start" at once.
# -------------------------------------------------------------------------------------------
def _settle_service(service) -> None:
  service.running_count = service.desired_count
  service.pending_count = 0
  for deployment in service.deployments:
    if deployment.get("status") == "PRIMARY":
      deployment["desiredCount"] = service.desired_count
      deployment["runningCount"] = service.desired_count
      deployment["pendingCount"] = 0
      deployment["rolloutState"] = "COMPLETED"
      deployment["rolloutStateReason"] = f"ECS deployment {deployment['id']} completed."
      deployment["updatedAt"] = _utcnow()


_original_service_init = ecs_models.Service.__init__


def service_init(self, *args, **kwargs):
  _original_service_init(self, *args, **kwargs)
  _settle_service(self)
  _sync_targets(self)


_original_update_service = ecs_models.EC2ContainerServiceBackend.update_service


def update_service(self, *args, **kwargs):
  service = _original_update_service(self, *args, **kwargs)
  _settle_service(service)
  _sync_targets(service)
  return service


ecs_models.Service.__init__ = service_init
ecs_models.EC2ContainerServiceBackend.update_service = update_service


# -------------------------------------------------------------------------------------------
# (j) ELBv2 targets of an ECS service. AWS: a service created with `loadBalancers` registers each
# task it starts in those target groups (by the task's IP for `awsvpc` tasks); the target is
# `initial` (`Elb.RegistrationInProgress`, then `Elb.InitialHealthChecking`) until it passed the
# target group's `HealthyThresholdCount` health checks, then `healthy`. A task being stopped is
# deregistered first: its target is `draining` (`Target.DeregistrationInProgress`) for the
# deregistration delay, then no longer listed (ELB User Guide, *Target health status*; ECS
# Developer Guide, *Use load balancing to distribute Amazon ECS service traffic*). moto never
# registers a service's tasks, reports any registered target `healthy` at once and drops a
# deregistered one at once. Here the service's running tasks are targets `10.<n>.0.<i>`
# (TASK_SUBNETS) on the container port, `initial` for TARGET_HEALTHY_SECONDS after they registered and `draining` for
# TARGET_DRAIN_SECONDS after they were deregistered.
# -------------------------------------------------------------------------------------------
TARGET_HEALTHY_SECONDS = 1.0
TARGET_DRAIN_SECONDS = 1.0
# (target group arn, target id) -> {"registered": epoch seconds, "deregistered": epoch or None}
TARGET_TIMES: dict[tuple[str, str], dict] = {}


# The tasks' subnet per region (the seed's two regions; any other region gets the last one).
TASK_SUBNETS = {"us-east-1": "10.0.0", "us-west-2": "10.1.0"}


def _task_ip(region: str, index: int) -> str:
  return f"{TASK_SUBNETS.get(region, '10.255.0')}.{index + 1}"


def _sync_targets(service) -> None:
  """Make the targets of the service's target groups follow its running tasks."""
  balancers = getattr(service, "load_balancers", None) or []
  if not balancers:
    return
  region = service.region_name
  backend = elbv2_models.elbv2_backends[ACCOUNT][region]
  running = int(service.running_count or 0)
  now = time.time()
  with _lock:
    for balancer in balancers:
      arn = balancer.get("targetGroupArn")
      group = backend.target_groups.get(arn or "")
      if group is None:
        continue
      port = balancer.get("containerPort") or group.port
      wanted = {_task_ip(region, index) for index in range(running)}
      for target_id in sorted(wanted):
        times = TARGET_TIMES.get((arn, target_id))
        if times is None or times["deregistered"] is not None:
          group.targets[target_id] = {"Id": target_id, "Port": port}
          group.deregistered_targets.pop(target_id, None)
          TARGET_TIMES[(arn, target_id)] = {"registered": now, "deregistered": None}
      for target_id in list(group.targets):
        times = TARGET_TIMES.get((arn, target_id))
        if target_id not in wanted and times is not None and times["deregistered"] is None:
          times["deregistered"] = now


def _expire_drained(arn: str, group) -> None:
  now = time.time()
  with _lock:
    for target_id in list(group.targets):
      times = TARGET_TIMES.get((arn, target_id))
      if times and times["deregistered"] is not None:
        if now - times["deregistered"] >= TARGET_DRAIN_SECONDS:
          group.targets.pop(target_id, None)
          TARGET_TIMES.pop((arn, target_id), None)


_original_health_for = elbv2_models.FakeTargetGroup.health_for


def health_for(self, target, ec2_backend):
  status = _original_health_for(self, target, ec2_backend)
  with _lock:
    times = TARGET_TIMES.get((self.arn, target["Id"]))
  if times is None or status.status != "healthy":
    return status
  now = time.time()
  if times["deregistered"] is not None:
    status.status = "draining"
    status.reason = "Target.DeregistrationInProgress"
    status.description = "Target deregistration is in progress"
  elif now - times["registered"] < TARGET_HEALTHY_SECONDS:
    status.status = "initial"
    status.reason = "Elb.InitialHealthChecking"
    status.description = "Initial health checks in progress"
  return status


_original_describe_target_health = elbv2_models.ELBv2Backend.describe_target_health


def describe_target_health(self, target_group_arn, targets):
  group = self.target_groups.get(target_group_arn)
  if group is not None:
    _expire_drained(target_group_arn, group)
  return _original_describe_target_health(self, target_group_arn, targets)


elbv2_models.FakeTargetGroup.health_for = health_for
elbv2_models.ELBv2Backend.describe_target_health = describe_target_health


# -------------------------------------------------------------------------------------------
# (h) S3 replication status. AWS reports `x-amz-replication-status` on HeadObject/GetObject:
# `COMPLETED` (or PENDING/FAILED) on objects of a bucket with a replication rule, `REPLICA` on
# the copies in the destination bucket. moto stores the replication configuration but never
# reports a status. Here replication is always complete: objects in a source bucket are
# COMPLETED, objects in a bucket named as a destination are REPLICA.
# -------------------------------------------------------------------------------------------
_original_key_response_dict = s3_models.FakeKey.response_dict


def _replication_status(bucket_name: str):
  buckets = s3_models.s3_backends[ACCOUNT]["aws"].buckets
  bucket = buckets.get(bucket_name)
  if bucket is not None and getattr(bucket, "replication", None):
    return "COMPLETED"
  for other in buckets.values():
    for rule in (getattr(other, "replication", None) or {}).get("Rule", []):
      destination = str((rule.get("Destination") or {}).get("Bucket", ""))
      if destination.rsplit(":", 1)[-1] == bucket_name:
        return "REPLICA"
  return None


def key_response_dict(self):
  headers = _original_key_response_dict.fget(self)
  status = _replication_status(getattr(self, "bucket_name", ""))
  if status:
    headers["x-amz-replication-status"] = status
  return headers


s3_models.FakeKey.response_dict = property(key_response_dict)


# S3 conditional writes (`If-None-Match: *`, `If-Match`) on PutObject: moto 5.2.1 already answers
# 412 PreconditionFailed like AWS (moto/s3/responses.py `put_object`), but its check and its write
# are two steps on a threaded server, so two racing writers could both "create" an object. AWS
# decides conditional writes atomically (exactly one of N racing `If-None-Match: *` wins; the
# `s3://` state lock relies on it), so PutObject is serialized here.
_s3_put_lock = threading.Lock()
_moto_put_object = S3Response.put_object


def put_object_atomically(self):
  with _s3_put_lock:
    return _moto_put_object(self)


S3Response.put_object = put_object_atomically


# -------------------------------------------------------------------------------------------
# The world's HTTP endpoints, as the simulator's built-in world declares them.
# -------------------------------------------------------------------------------------------
# host -> the ECS service (region, cluster, service) that serves it.
SERVICE_HOSTS = {
  "api-use1.example.com": ("us-east-1", "app-primary", "api"),
  "api-usw2.example.com": ("us-west-2", "app-standby", "api"),
}
# host -> the Route 53 failover name (zone id, record name) that resolves it.
DNS_HOSTS = {
  "api.example.com": ("Z0DRCTLEXAMPLE", "api.example.com."),
  # Guarded by the ARC routing controls' health checks (seed.py).
  "app.example.com": ("Z0DRCTLEXAMPLE", "app.example.com."),
}
# Resolving through Route 53 may lead to another failover name; a loop ends here.
MAX_DEPTH = 8


def _running_tasks(region: str, cluster: str, service: str) -> int:
  backend = ecs_models.ecs_backends[ACCOUNT][region]
  found = backend.services.get(f"{cluster}:{service}")
  if found is None or found.status != "ACTIVE":
    return 0
  return int(found.running_count or 0)


def _resolve(zone_id: str, name: str, depth: int):
  """The target of Route 53's failover rule: PRIMARY's while its health check is healthy, else
  SECONDARY's. A record without a failover role answers as it is."""
  zone = _route53_backend().zones.get(zone_id)
  if zone is None:
    return None
  records = [
    record
    for record in zone.rrsets
    if record.name.rstrip(".").lower() == name.rstrip(".").lower() and record.type == "CNAME"
  ]
  by_role = {record.failover: record for record in records}
  chosen = None
  if "PRIMARY" in by_role:
    primary = by_role["PRIMARY"]
    check = _route53_backend().health_checks.get(primary.health_check_id or "")
    healthy = check is None or _check_success(check, depth)[0]
    chosen = primary if healthy or "SECONDARY" not in by_role else by_role["SECONDARY"]
  elif records:
    chosen = records[0]
  if chosen is None or not chosen.records:
    return None
  value = chosen.records[0]
  value = value.get("Value", "") if isinstance(value, dict) else str(value)
  return value.rstrip(".").lower()


def app_status(host: str, depth: int = 0) -> tuple[int, str]:
  host = host.lower()
  if depth > MAX_DEPTH:
    return 503, f"resolving {host} loops through Route 53"
  if host in SERVICE_HOSTS:
    region, cluster, service = SERVICE_HOSTS[host]
    if _running_tasks(region, cluster, service) >= 1:
      return 200, "ok"
    return 503, "service unavailable: no running tasks"
  if host in DNS_HOSTS:
    target = _resolve(*DNS_HOSTS[host], depth + 1)
    if target is None:
      return 503, f"{host} does not resolve"
    return app_status(target, depth + 1)
  return 503, f"no endpoint {host} in the sandbox"


# -------------------------------------------------------------------------------------------
# Ids. Route 53 generates hosted zone and health check ids and its API cannot choose them, so
# moto's ids differ from the simulator's world (`Z0DRCTLEXAMPLE`, `hc-primary`, `hc-secondary`)
# that the shipped runbooks name in their defaults. The server runs moto in this process, so the
# seed re-keys moto's backend objects once it has created them: same objects, the world's ids.
# -------------------------------------------------------------------------------------------
def rekey(spec: dict) -> dict:
  backend = _route53_backend()
  renamed = {"hosted_zones": {}, "health_checks": {}}
  with _lock:
    for old, new in (spec.get("hosted_zones") or {}).items():
      zone = backend.zones.pop(old.rsplit("/", 1)[-1], None)
      if zone is None:
        raise KeyError(f"no hosted zone {old}")
      zone.resource_id = new
      backend.zones[new] = zone
      renamed["hosted_zones"][old] = new
    for old, new in (spec.get("health_checks") or {}).items():
      check = backend.health_checks.pop(old, None)
      if check is None:
        raise KeyError(f"no health check {old}")
      check.id = new
      backend.health_checks[new] = check
      for zone in backend.zones.values():
        for record in zone.rrsets:
          if record.health_check_id == old:
            record.health_check_id = new
      renamed["health_checks"][old] = new
  return renamed


# -------------------------------------------------------------------------------------------
# Faults: throttling, in each protocol's own error shape, with a request id.
# -------------------------------------------------------------------------------------------
FAULTS = {"throttle": False}
CAPTURED: list[dict] = []
SANDBOX_PREFIXES = ("/drctl-sandbox/", "/drctl-test/", "/moto-api/")


def _read_body(environ) -> bytes:
  try:
    length = int(environ.get("CONTENT_LENGTH") or 0)
  except ValueError:
    length = 0
  return environ["wsgi.input"].read(length) if length > 0 else b""


def throttled(environ, start_response):
  request_id = str(uuid.uuid4())
  path = environ.get("PATH_INFO", "")
  query = parse_qs(environ.get("QUERY_STRING", ""))
  body = _read_body(environ)
  if environ.get("HTTP_X_AMZ_TARGET"):
    # awsJson (ECS): `__type` names the error.
    status = "400 Bad Request"
    headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", request_id)]
    payload = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"})
  elif path.startswith("/2013-04-01/"):
    # Route 53 (restXml).
    status = "400 Bad Request"
    headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    payload = (
      '<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
      "<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
      f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
  elif "Action" in query or b"Action=" in body:
    # awsQuery (RDS, CloudWatch).
    status = "400 Bad Request"
    headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    payload = (
      "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
      "<Message>Rate exceeded</Message></Error>"
      f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
  else:
    # S3 (restXml without a namespace).
    status = "503 Slow Down"
    headers = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id),
               ("x-amz-id-2", "drctl-sandbox")]
    payload = (
      '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
      "<Message>Please reduce your request rate.</Message>"
      f"<RequestId>{request_id}</RequestId><HostId>drctl-sandbox</HostId></Error>"
    )
  data = b"" if environ.get("REQUEST_METHOD") == "HEAD" else payload.encode()
  start_response(status, headers + [("Content-Length", str(len(data)))])
  return [data]


def _answer(start_response, status: str, body, content_type: str = "text/plain"):
  if not isinstance(body, (bytes, str)):
    body, content_type = json.dumps(body), "application/json"
  data = body.encode() if isinstance(body, str) else body
  start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
  return [data]


def capture(environ, start_response, target: str):
  body = _read_body(environ).decode("utf-8", "replace")
  headers = {
    key[5:].replace("_", "-").lower(): value
    for key, value in environ.items()
    if key.startswith("HTTP_")
  }
  if environ.get("CONTENT_TYPE"):
    headers["content-type"] = environ["CONTENT_TYPE"]
  host = target.split("/", 1)[0]
  with _lock:
    CAPTURED.append({"host": host, "path": "/" + target.split("/", 1)[-1] if "/" in target else "/",
                     "headers": headers, "body": body})
  if host == "events.pagerduty.com":
    try:
      dedup_key = json.loads(body).get("dedup_key", "")
    except (ValueError, AttributeError):
      dedup_key = ""
    return _answer(start_response, "202 Accepted",
                   {"status": "success", "message": "Event processed", "dedup_key": dedup_key})
  return _answer(start_response, "200 OK", "ok")


# -------------------------------------------------------------------------------------------
# Route 53 ARC recovery cluster (route53-recovery-cluster), served here: moto has no model of it.
# AWS: a cluster has five regional endpoints, each answering GetRoutingControlState and
# UpdateRoutingControlState for every routing control of the cluster (Route 53 ARC Developer
# Guide, "Getting and updating routing control states using the API": "try each endpoint in
# turn"; states are On or Off). A routing control is wired to Route 53 through a health check of
# type RECOVERY_CONTROL, which is healthy while the control is On ("Creating health checks for
# routing controls"). moto 5.2's health checks have no RECOVERY_CONTROL type we could rely on
# (it keeps `Type` as sent and never evaluates it), so a routing control names the moto health
# check that follows it, and GetHealthCheckStatus reads the control's state for that check
# (`_check_success` above). Every endpoint shares the one set of states, as a cluster's do.
# -------------------------------------------------------------------------------------------
ARC_TARGET = "ToggleCustomerAPI."
ROUTING_CONTROLS: dict = {}


def _routing_control_of(health_check_id: str):
  with _lock:
    for control in ROUTING_CONTROLS.values():
      if control.get("health_check_id") == health_check_id:
        return dict(control)
  return None


def _arc_error(start_response, code: str, message: str, status: str = "400 Bad Request"):
  request_id = str(uuid.uuid4())
  data = json.dumps({"__type": code, "message": message}).encode()
  start_response(status, [("Content-Type", "application/x-amz-json-1.0"),
                          ("x-amzn-RequestId", request_id), ("x-amzn-ErrorType", code),
                          ("Content-Length", str(len(data)))])
  return [data]


def arc_cluster(environ, start_response):
  # moto's request recorder sees every request moto serves; this one it does not serve, so it is
  # recorded here, the same way (the recorder restores the body it reads), and recorder checks
  # such as "a dry run makes no mutating call" see the cluster's calls too.
  from moto.moto_api import recorder
  from werkzeug.wrappers import Request
  recorder._record_request(Request(environ))
  operation = environ.get("HTTP_X_AMZ_TARGET", "")[len(ARC_TARGET):]
  try:
    request = json.loads(_read_body(environ) or b"{}")
  except ValueError as error:
    return _arc_error(start_response, "ValidationException", f"bad JSON: {error}")
  arn = request.get("RoutingControlArn", "")
  with _lock:
    control = ROUTING_CONTROLS.get(arn)
    if operation not in ("GetRoutingControlState", "UpdateRoutingControlState"):
      return _arc_error(start_response, "ValidationException", f"unknown operation {operation}")
    if control is None:
      return _arc_error(start_response, "ResourceNotFoundException",
                        f"Routing control {arn} not found", "404 Not Found")
    if operation == "UpdateRoutingControlState":
      state = request.get("RoutingControlState")
      if state not in ("On", "Off"):
        return _arc_error(start_response, "ValidationException", f"bad state {state!r}")
      control["state"] = state
      answer = {}
    else:
      answer = {"RoutingControlArn": arn, "RoutingControlState": control["state"],
                "RoutingControlName": control.get("name", "")}
  data = json.dumps(answer).encode()
  start_response("200 OK", [("Content-Type", "application/x-amz-json-1.0"),
                            ("x-amzn-RequestId", str(uuid.uuid4())),
                            ("Content-Length", str(len(data)))])
  return [data]


def declare_routing_control(spec: dict) -> dict:
  if spec.get("state") not in ("On", "Off") or not spec.get("arn"):
    raise ValueError("a routing control needs `arn` and `state` On or Off")
  control = {"arn": spec["arn"], "name": spec.get("name", ""), "state": spec["state"],
             "health_check_id": spec.get("health_check_id")}
  with _lock:
    ROUTING_CONTROLS[spec["arn"]] = control
  return control


# -------------------------------------------------------------------------------------------
# The sandbox routes and the server.
# -------------------------------------------------------------------------------------------
def control_app(app):
  def wrapped(environ, start_response):
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "GET")
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith(ARC_TARGET):
      return arc_cluster(environ, start_response)
    if not path.startswith(("/drctl-sandbox/", "/drctl-test/")):
      if FAULTS["throttle"] and not path.startswith(SANDBOX_PREFIXES):
        return throttled(environ, start_response)
      return app(environ, start_response)
    route = path.split("/", 2)[-1]
    query = {key: values[-1] for key, values in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if route == "ping":
      return _answer(start_response, "200 OK", "ok")
    if route == "health" and method == "POST":
      health_check_id = query.get("id")
      healthy = query.get("healthy", "true").lower() in ("1", "true", "yes")
      if not health_check_id:
        return _answer(start_response, "400 Bad Request", "missing id")
      with _lock:
        ENDPOINT_HEALTH[health_check_id] = healthy
      return _answer(start_response, "200 OK", "ok")
    if route.startswith("app/") and method in ("GET", "HEAD"):
      host = route[len("app/"):].split("/", 1)[0]
      code, text = app_status(host)
      return _answer(start_response, f"{code} {'OK' if code == 200 else 'Service Unavailable'}", text)
    if route.startswith("capture/") and method == "POST":
      return capture(environ, start_response, route[len("capture/"):])
    if route == "global-failovers" and method == "GET":
      with _lock:
        return _answer(start_response, "200 OK", list(GLOBAL_FAILOVERS))
    if route == "captured" and method == "GET":
      with _lock:
        return _answer(start_response, "200 OK", list(CAPTURED))
    if route == "faults" and method == "POST":
      try:
        spec = json.loads(_read_body(environ) or b"{}")
        FAULTS["throttle"] = bool(spec.get("throttle", False))
      except (ValueError, AttributeError) as error:
        return _answer(start_response, "400 Bad Request", f"bad faults document: {error}")
      return _answer(start_response, "200 OK", dict(FAULTS))
    if route == "faults" and method == "GET":
      return _answer(start_response, "200 OK", dict(FAULTS))
    if route == "rekey" and method == "POST":
      try:
        return _answer(start_response, "200 OK", rekey(json.loads(_read_body(environ) or b"{}")))
      except (ValueError, KeyError, AttributeError) as error:
        return _answer(start_response, "400 Bad Request", f"cannot re-key: {error}")
    if route == "arc" and method == "POST":
      try:
        return _answer(start_response, "200 OK",
                       declare_routing_control(json.loads(_read_body(environ) or b"{}")))
      except (ValueError, AttributeError) as error:
        return _answer(start_response, "400 Bad Request", f"bad routing control: {error}")
    if route == "metrics" and method == "POST":
      try:
        count = put_metrics(json.loads(_read_body(environ) or b"{}"))
      except (ValueError, KeyError, TypeError, AttributeError) as error:
        return _answer(start_response, "400 Bad Request", f"bad metrics document: {error}")
      return _answer(start_response, "200 OK", {"put": count})
    return _answer(start_response, "404 Not Found", "unknown sandbox route")

  return wrapped


def put_metrics(spec: dict) -> int:
  """Put datapoints into moto's CloudWatch as `PutMetricData` would, each timed `SECONDS_AGO`
  before now (CloudWatch keeps negative values as they are: -1 is what RDS reports while
  replication is not running)."""
  from moto.cloudwatch import models as cloudwatch_models

  backend = cloudwatch_models.cloudwatch_backends[ACCOUNT][spec["region"]]
  # Naive UTC, as moto's request parser hands `Timestamp` and `StartTime` to the backend.
  now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
  dimensions = [{"Name": name, "Value": value} for name, value in spec["dimensions"].items()]
  data = [
    {
      "MetricName": spec["metric"],
      "Dimensions": dimensions,
      "Timestamp": now - datetime.timedelta(seconds=float(ago)),
      "Value": float(value),
      "Unit": spec.get("unit", "Seconds"),
    }
    for ago, value in spec["points"]
  ]
  with _lock:
    backend.put_metric_data(spec["namespace"], data)
  return len(data)


def watch_parent(parent: int) -> None:
  """Exit, with the whole process group, once `parent` is no longer our parent: the drctl that
  started this server for one command was killed (SIGKILL leaves it no chance to stop us)."""
  while os.getppid() == parent:
    time.sleep(0.25)
  os.killpg(0, 9)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--host", default="127.0.0.1")
  parser.add_argument("--port", type=int, required=True)
  parser.add_argument(
    "--parent", type=int, help="exit when this process (the drctl that started us) is gone"
  )
  args = parser.parse_args()
  if args.parent:
    threading.Thread(target=watch_parent, args=(args.parent,), daemon=True).start()
  if args.host not in ("127.0.0.1", "localhost", "::1"):
    parser.error("the sandbox binds to loopback only")
  app = control_app(DomainDispatcherApplication(create_backend_app))
  server = make_server(args.host, args.port, app, threaded=True)
  print(f"moto {moto.__version__} (drctl patches) on http://{args.host}:{args.port}", flush=True)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass


if __name__ == "__main__":
  main()
