#!/usr/bin/env python3
"""Start moto server (5.2.x) on loopback, patched to behave like AWS where drctl depends on it.

    python3 tests/moto/launcher.py --port 5123

Each patch below names the AWS behaviour it mirrors. They are applied by monkeypatching moto's
backend and response classes before the server starts; nothing in site-packages is modified.

The server also answers a small test-only control API under `/drctl-test/` (never sent by
drctl itself, only by tests and the sandbox):

* `POST /drctl-test/health?id=HC&healthy=false` sets whether the endpoint behind health check HC
  answers. `GetHealthCheckStatus` then reports what Route 53's checkers would observe,
  with `Inverted` and `Disabled` applied as AWS applies them.
* `GET /drctl-test/ping` answers `ok` once the server is up.
"""

import argparse
import datetime
import sys
import threading
import time
import uuid
from urllib.parse import parse_qs

import moto
from moto.core.responses import ActionResult
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.rds import models as rds_models
from moto.rds.exceptions import DBInstanceNotFoundError, RDSClientError
from moto.rds.responses import RDSResponse
from moto.route53 import models as route53_models
from moto.route53.exceptions import Route53ClientError
from moto.route53.responses import Route53
from moto.s3.responses import S3Response
from moto.ecs import models as ecs_models
from werkzeug.serving import make_server

if not moto.__version__.startswith("5.2."):
    # The patches below replace methods by name; another minor version may have moved them.
    sys.stderr.write(f"warning: launcher written for moto 5.2.x, found {moto.__version__}\n")

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
# moto always reports a single success and ignores `Inverted`/`Disabled`. Endpoint health is
# set with the `/drctl-test/health` control endpoint.
# -------------------------------------------------------------------------------------------
def get_health_check_status(self):
  health_check_id = self._get_param("HealthCheckId")
  health_check = self.backend.get_health_check(health_check_id)  # NoSuchHealthCheck if missing
  with _lock:
    endpoint_up = ENDPOINT_HEALTH.get(health_check_id, True)
  if health_check.disabled:
    success, detail = True, "Health check is disabled; Route 53 considers it healthy"
  else:
    success = endpoint_up != bool(health_check.inverted)
    detail = "HTTP Status Code 200, OK" if endpoint_up else "Connection timed out"
    if health_check.inverted:
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


_original_update_service = ecs_models.EC2ContainerServiceBackend.update_service


def update_service(self, *args, **kwargs):
  service = _original_update_service(self, *args, **kwargs)
  _settle_service(service)
  return service


ecs_models.Service.__init__ = service_init
ecs_models.EC2ContainerServiceBackend.update_service = update_service


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
# The control API and the server.
# -------------------------------------------------------------------------------------------
def control_app(app):
  def wrapped(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if not path.startswith("/drctl-test/"):
      return app(environ, start_response)
    query = {key: values[-1] for key, values in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/drctl-test/ping":
      start_response("200 OK", [("Content-Type", "text/plain")])
      return [b"ok"]
    if path == "/drctl-test/health" and environ.get("REQUEST_METHOD") == "POST":
      health_check_id = query.get("id")
      healthy = query.get("healthy", "true").lower() in ("1", "true", "yes")
      if not health_check_id:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"missing id"]
      with _lock:
        ENDPOINT_HEALTH[health_check_id] = healthy
      start_response("200 OK", [("Content-Type", "text/plain")])
      return [b"ok"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"unknown control endpoint"]

  return wrapped


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--host", default="127.0.0.1")
  parser.add_argument("--port", type=int, required=True)
  args = parser.parse_args()
  if args.host not in ("127.0.0.1", "localhost", "::1"):
    parser.error("the test server binds to loopback only")
  app = control_app(DomainDispatcherApplication(create_backend_app))
  server = make_server(args.host, args.port, app, threaded=True)
  print(f"moto {moto.__version__} (drctl patches) on http://{args.host}:{args.port}", flush=True)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass


if __name__ == "__main__":
  main()
