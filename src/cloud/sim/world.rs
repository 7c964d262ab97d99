//! The world file: what a simulated AWS account holds when it is created.
//!
//! Parsed from YAML (unknown fields are errors, reported with their path) and persisted as JSON
//! inside `world.json`, so every type here round-trips through both formats.

use std::{
  collections::{BTreeMap, BTreeSet},
  fmt,
  time::Duration,
};

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::{
  cloud::{FailoverRole, LimitSetting, SnapshotKind},
  runbook::{
    duration::{too_long, MAX_DURATION},
    format_duration,
  },
};

/// A modelled duration written as `90s`, `5m`, `1h30m`, `20ms` (a bare number means seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ModelDuration(pub Duration);

impl ModelDuration {
  pub const fn secs(secs: u64) -> Self {
    Self(Duration::from_secs(secs))
  }

  pub const fn millis(millis: u64) -> Self {
    Self(Duration::from_millis(millis))
  }
}

/// Parse `1h30m`, `90s`, `20ms`, `0.5s`, `2d`: a runbook duration ([`crate::runbook::parse_duration`]),
/// the error naming the text (a world file's error has no other place to show it).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
  crate::runbook::parse_duration(text)
    .map_err(|reason| format!("invalid duration `{text}`: {reason}"))
}

/// A modelled duration, if it is at most [`MAX_DURATION`] (the bound runbooks have too: the
/// simulator adds and scales these).
fn within_bound(duration: Duration) -> Option<Duration> {
  (duration <= MAX_DURATION).then_some(duration)
}

impl Serialize for ModelDuration {
  fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_duration(self.0))
  }
}

impl<'de> Deserialize<'de> for ModelDuration {
  fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
    struct Visitor;
    impl de::Visitor<'_> for Visitor {
      type Value = ModelDuration;

      fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as `90s`, `5m` or `1h30m`")
      }

      fn visit_str<E: de::Error>(self, value: &str) -> Result<ModelDuration, E> {
        parse_duration(value).map(ModelDuration).map_err(E::custom)
      }

      fn visit_u64<E: de::Error>(self, value: u64) -> Result<ModelDuration, E> {
        within_bound(Duration::from_secs(value))
          .map(ModelDuration)
          .ok_or_else(|| E::custom(too_long()))
      }

      fn visit_i64<E: de::Error>(self, value: i64) -> Result<ModelDuration, E> {
        let secs = u64::try_from(value).map_err(|_| E::custom("a duration cannot be negative"))?;
        self.visit_u64(secs)
      }

      fn visit_f64<E: de::Error>(self, value: f64) -> Result<ModelDuration, E> {
        let duration = Duration::try_from_secs_f64(value)
          .map_err(|_| E::custom("a duration must be a non-negative number of seconds"))?;
        within_bound(duration)
          .map(ModelDuration)
          .ok_or_else(|| E::custom(too_long()))
      }
    }
    deserializer.deserialize_any(Visitor)
  }
}

/// The largest world file the simulator reads: 10 MiB, the limit for runbooks and drill files.
pub const MAX_WORLD_BYTES: u64 = crate::runbook::diagnostic::MAX_SOURCE_BYTES;

/// Read a world file's text, refusing one larger than [`MAX_WORLD_BYTES`] before reading it.
/// The error says what is wrong (without the path).
pub fn read_world_file(path: &std::path::Path) -> Result<String, String> {
  use crate::runbook::diagnostic::{format_bytes, read_bounded, BoundedRead};
  let bytes = read_bounded(path, MAX_WORLD_BYTES).map_err(|error| match error {
    BoundedRead::Io(error) => format!("cannot read the world file: {error}"),
    BoundedRead::TooLarge => format!(
      "the world file is larger than {}, the most drctl reads",
      format_bytes(MAX_WORLD_BYTES)
    ),
  })?;
  String::from_utf8(bytes).map_err(|_| "the world file is not valid UTF-8".to_string())
}

fn default_time_scale() -> f64 {
  40.0
}

fn default_seed() -> u64 {
  1
}

fn default_account() -> String {
  "123456789012".into()
}

/// [`WorldSpec`]: its family parts from [`with_families!`](crate::cloud::with_families), in the
/// list's order (so the YAML and JSON formats keep their field order).
macro_rules! world_spec {
  ($($family:ident: $Trait:ident, $Limited:ident;)*) => {
    /// A whole simulated world.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct WorldSpec {
      /// How much faster than the wall clock modelled time runs.
      #[serde(default = "default_time_scale")]
      pub time_scale: f64,
      /// Seed of the fault injector's random numbers (runs are reproducible).
      #[serde(default = "default_seed")]
      pub seed: u64,
      #[serde(default = "default_account")]
      pub account: String,
      /// The regions resources may live in.
      #[serde(default)]
      pub regions: Vec<String>,
      #[serde(default)]
      pub timings: Timings,
      // One part per service family, its type the family's (`cloud/<family>/sim.rs`).
      $(
        #[serde(default)]
        pub $family: crate::cloud::$family::sim::Spec,
      )*
      /// HTTP endpoints the world serves to probes.
      #[serde(default)]
      pub endpoints: Vec<EndpointSpec>,
      /// URLs that accept notification POSTs (besides Slack and PagerDuty).
      #[serde(default)]
      pub webhooks: Vec<String>,
      /// Regions in outage: their HTTP endpoints answer 503 and their control planes (RDS, ECS)
      /// cannot be reached. `us-east-1` for the whole run, or `{ region: us-east-1, until: 20m }`
      /// for one that answers again that long (modelled) after the world was created.
      #[serde(default)]
      pub outages: Vec<OutageSpec>,
      /// Faults per API operation name (`PromoteReadReplica`), service (`rds`) or `*`, and
      /// `region_down: REGION`: every endpoint in that region fails (see [`RegionDown`]).
      #[serde(default)]
      pub faults: FaultsSpec,
      /// Token-bucket rate limits in modelled time, per account and region, keyed by API
      /// operation (`ChangeResourceRecordSets`), API family (`route53`, `rds`, `ecs.read`,
      /// `ecs.write`, `cloudwatch`), service or `*`: a rate (`route53: 5`), `{ rate, burst }`, or
      /// `off`. A call over its limit is refused with a throttling error.
      #[serde(default)]
      pub rate_limits: BTreeMap<String, LimitSetting>,
      /// Enforce AWS's documented API rate limits (Route 53 5 requests/s per account, RDS 300
      /// burst / 12 per second per region, ...; see [`crate::cloud::limiter::FAMILIES`]) for every
      /// family `rate_limits` does not set. Independent of any runbook: the world decides how
      /// strict its AWS is.
      #[serde(default)]
      pub aws_rate_limits: bool,
    }
  };
}

crate::cloud::with_families!(world_spec);

/// Modelled durations of the world's operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timings {
  pub promote: ModelDuration,
  pub ecs_task_start: ModelDuration,
  pub ecs_drain: ModelDuration,
  pub route53_propagation: ModelDuration,
  pub restore: ModelDuration,
  pub delete: ModelDuration,
  pub global_failover: ModelDuration,
  pub api_latency: ModelDuration,
  /// `CreateDBInstanceReadReplica`: how long a new replica is `creating` (AWS copies a snapshot
  /// of the source across regions first).
  pub create_replica: ModelDuration,
  /// How long a new replica then takes to catch up: its lag starts at the creation time and
  /// falls to the steady lag over this.
  pub replica_catch_up: ModelDuration,
}

impl Default for Timings {
  fn default() -> Self {
    Self {
      promote: ModelDuration::secs(300),
      ecs_task_start: ModelDuration::secs(120),
      ecs_drain: ModelDuration::secs(30),
      route53_propagation: ModelDuration::secs(60),
      restore: ModelDuration::secs(600),
      delete: ModelDuration::secs(240),
      global_failover: ModelDuration::secs(60),
      api_latency: ModelDuration::millis(20),
      create_replica: ModelDuration::secs(900),
      replica_catch_up: ModelDuration::secs(300),
    }
  }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RdsSpec {
  pub instances: Vec<InstanceSpec>,
  pub snapshots: Vec<SnapshotSpec>,
  pub global_clusters: Vec<GlobalClusterSpec>,
}

fn default_engine() -> String {
  "postgres".into()
}

fn default_class() -> String {
  "db.r6g.large".into()
}

fn default_status() -> String {
  "available".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
  pub id: String,
  pub region: String,
  #[serde(default = "default_engine")]
  pub engine: String,
  #[serde(default = "default_class")]
  pub class: String,
  #[serde(default = "default_status")]
  pub status: String,
  #[serde(default)]
  pub endpoint: Option<String>,
  #[serde(default)]
  pub port: Option<u16>,
  /// The source instance's ARN, for a (cross-region) read replica.
  #[serde(default)]
  pub replica_of: Option<String>,
  #[serde(default)]
  pub replica_lag: Option<ModelDuration>,
  /// The instance's tags (drctl marks a retired writer with `drctl:retired`).
  #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
  pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSpec {
  pub id: String,
  pub instance: String,
  pub region: String,
  pub kind: SnapshotKind,
  /// How old the snapshot is when the world is created.
  pub age: ModelDuration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalClusterSpec {
  pub id: String,
  pub members: Vec<GlobalMemberSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalMemberSpec {
  pub cluster_arn: String,
  #[serde(default)]
  pub writer: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EcsSpec {
  pub services: Vec<ServiceSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
  pub region: String,
  pub cluster: String,
  pub name: String,
  pub desired: u32,
  /// Defaults to `desired`; lower means tasks are still starting when the world is created.
  #[serde(default)]
  pub running: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Route53Spec {
  pub hosted_zones: Vec<ZoneSpec>,
  pub health_checks: Vec<HealthCheckSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
  pub id: String,
  pub name: String,
  #[serde(default)]
  pub records: Vec<RecordSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
  pub name: String,
  #[serde(rename = "type")]
  pub rtype: String,
  #[serde(default)]
  pub set_identifier: Option<String>,
  #[serde(default)]
  pub failover: Option<FailoverRole>,
  #[serde(default)]
  pub ttl: Option<u32>,
  pub values: Vec<String>,
  #[serde(default)]
  pub health_check_id: Option<String>,
}

fn default_checkers() -> u32 {
  16
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSpec {
  pub id: String,
  /// The endpoint URL the checkers request.
  pub target: String,
  #[serde(default)]
  pub inverted: bool,
  #[serde(default)]
  pub disabled: bool,
  #[serde(default = "default_checkers")]
  pub checkers: u32,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Spec {
  pub buckets: Vec<BucketSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketSpec {
  pub name: String,
  pub region: String,
  #[serde(default)]
  pub objects: Vec<ObjectSpec>,
  /// The bucket's replication rule (with S3 Replication metrics on, as S3 Replication Time
  /// Control turns them on), when it replicates to another bucket of the world.
  #[serde(default, skip_serializing_if = "Option::is_none")]
  pub replication: Option<ReplicationSpec>,
}

/// A bucket's replication rule: its `ReplicationLatency` metric reads `latency` while the
/// source bucket's region is up, and stops being published while that region is in outage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationSpec {
  /// The rule's `ID`.
  pub rule_id: String,
  /// The destination bucket (a bucket of this world, usually in another region).
  pub destination: String,
  pub latency: ModelDuration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSpec {
  pub key: String,
  pub size: u64,
  /// How old the object is when the world is created.
  pub age: ModelDuration,
  /// Base64 SHA-256 checksum.
  #[serde(default)]
  pub sha256: Option<String>,
  #[serde(default)]
  pub replication_status: Option<String>,
}

/// An HTTP endpoint: served by an ECS service, or resolved through a Route 53 name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
  pub url: String,
  #[serde(default)]
  pub service: Option<ServiceRef>,
  #[serde(default)]
  pub dns: Option<DnsRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRef {
  pub region: String,
  pub cluster: String,
  pub service: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsRef {
  pub zone: String,
  pub name: String,
}

/// Faults injected into calls of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
  /// Probability of a `Throttling` error.
  #[serde(default)]
  pub throttle: Option<f64>,
  /// Probability of an `InternalFailure` (HTTP 500).
  #[serde(default)]
  pub error: Option<f64>,
  /// Extra modelled latency.
  #[serde(default)]
  pub latency: Option<ModelDuration>,
  /// Probability that the call gets no answer: an AWS call then fails with `RequestTimeout`
  /// after the attempt timeout ([`crate::cloud::ATTEMPT_TIMEOUT`], modelled), as an SDK call
  /// does; an HTTP request after its own timeout, or never if it has none.
  #[serde(default)]
  pub hang: Option<f64>,
}

/// The world's `faults:`: faults per API operation, service or `*`, and one impaired region.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultsSpec {
  /// `region_down`: the region whose every endpoint fails.
  pub region_down: Option<RegionDown>,
  /// The other entries: faults of the calls a key names.
  pub calls: BTreeMap<String, FaultSpec>,
}

/// The `faults:` key that names an impaired region rather than an operation.
pub const REGION_DOWN_KEY: &str = "region_down";

/// `faults: { region_down: us-east-1 }`: a region impaired as AWS regions fail. Every call whose
/// endpoint is in that region fails: a regional call naming the region, a global service's call
/// when its endpoint is served from there (Route 53's control plane, IAM and STS's global
/// endpoint are in us-east-1; the operation table says where each endpoint lives), and the
/// world's HTTP endpoints served from the region (they answer 503, as in an outage). Unlike
/// `outages`, which take the region's control planes away, this takes the data planes too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionDown {
  pub region: String,
  /// How a call to the region fails; `unreachable` unless given.
  #[serde(default)]
  pub fails_with: DownFailure,
}

/// How calls to a region that is down fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DownFailure {
  /// The connection is refused at once (the fast form).
  #[default]
  Unreachable,
  /// The endpoint answers HTTP 503 `ServiceUnavailable`.
  Error,
  /// No answer: the call times out after the client's attempt timeout (modelled).
  Timeout,
}

/// Whether `text` has the shape of an AWS region name: `us-east-1`, `ap-southeast-2`,
/// `us-gov-west-1` (letters, dash-separated, ending in a number).
pub(crate) fn is_region_name(text: &str) -> bool {
  let parts: Vec<&str> = text.split('-').collect();
  let Some((number, words)) = parts.split_last() else {
    return false;
  };
  words.len() >= 2
    && words
      .iter()
      .all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase()))
    && !number.is_empty()
    && number.bytes().all(|b| b.is_ascii_digit())
}

impl Serialize for FaultsSpec {
  fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(None)?;
    if let Some(down) = &self.region_down {
      map.serialize_entry(REGION_DOWN_KEY, down)?;
    }
    for (key, fault) in &self.calls {
      map.serialize_entry(key, fault)?;
    }
    map.end()
  }
}

impl<'de> Deserialize<'de> for FaultsSpec {
  fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
    struct Visitor;
    impl<'de> de::Visitor<'de> for Visitor {
      type Value = FaultsSpec;

      fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of operation, service or `*` to its faults, and `region_down`")
      }

      fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<FaultsSpec, A::Error> {
        let mut faults = FaultsSpec::default();
        while let Some(key) = map.next_key::<String>()? {
          if key == REGION_DOWN_KEY {
            faults.region_down = Some(map.next_value()?);
          } else {
            let fault = map.next_value()?;
            faults.calls.insert(key, fault);
          }
        }
        Ok(faults)
      }
    }
    deserializer.deserialize_map(Visitor)
  }
}

impl<'de> Deserialize<'de> for RegionDown {
  // A plain region, or the map form with the failure.
  fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Full {
      region: String,
      #[serde(default)]
      fails_with: DownFailure,
    }
    struct Visitor;
    impl<'de> de::Visitor<'de> for Visitor {
      type Value = RegionDown;

      fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a region, or `{ region: REGION, fails_with: unreachable|error|timeout }`")
      }

      fn visit_str<E: de::Error>(self, value: &str) -> Result<RegionDown, E> {
        Ok(RegionDown {
          region: value.to_string(),
          fails_with: DownFailure::Unreachable,
        })
      }

      fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RegionDown, A::Error> {
        let full = Full::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(RegionDown {
          region: full.region,
          fails_with: full.fails_with,
        })
      }
    }
    deserializer.deserialize_any(Visitor)
  }
}

/// A region in outage (see [`WorldSpec::outages`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum OutageSpec {
  /// `us-east-1`: down for as long as the world lives.
  Region(String),
  /// `{ region: us-east-1, until: 20m }`: down until that much modelled time after the world
  /// was created, then back.
  Until(TimedOutage),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimedOutage {
  pub region: String,
  pub until: ModelDuration,
}

impl OutageSpec {
  pub fn region(&self) -> &str {
    match self {
      OutageSpec::Region(region) | OutageSpec::Until(TimedOutage { region, .. }) => region,
    }
  }

  /// When the region answers again, in modelled time since the world's creation (`None`:
  /// never).
  pub fn until(&self) -> Option<Duration> {
    match self {
      OutageSpec::Region(_) => None,
      OutageSpec::Until(timed) => Some(timed.until.0),
    }
  }
}

impl<'de> Deserialize<'de> for OutageSpec {
  // By hand rather than `untagged`, so that a bad timed outage says what is wrong with it
  // (an unknown field, a bad duration) instead of "did not match any variant".
  fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
    struct Visitor;
    impl<'de> de::Visitor<'de> for Visitor {
      type Value = OutageSpec;

      fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a region, or `{ region: REGION, until: DURATION }`")
      }

      fn visit_str<E: de::Error>(self, value: &str) -> Result<OutageSpec, E> {
        Ok(OutageSpec::Region(value.to_string()))
      }

      fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<OutageSpec, A::Error> {
        TimedOutage::deserialize(de::value::MapAccessDeserializer::new(map)).map(OutageSpec::Until)
      }
    }
    deserializer.deserialize_any(Visitor)
  }
}

impl WorldSpec {
  /// Parse a world from YAML and check its references.
  pub fn from_yaml(text: &str) -> Result<WorldSpec, String> {
    let world: WorldSpec = serde_yaml::from_str(text).map_err(|err| err.to_string())?;
    world.validate()?;
    Ok(world)
  }

  /// Check what serde cannot: references between resources, ranges, duplicates.
  pub fn validate(&self) -> Result<(), String> {
    if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
      return Err(format!(
        "time_scale: must be a positive number, got {}",
        self.time_scale
      ));
    }
    let regions: BTreeSet<&str> = self.regions.iter().map(String::as_str).collect();
    let region = |path: String, name: &str| -> Result<(), String> {
      if regions.is_empty() || regions.contains(name) {
        Ok(())
      } else {
        Err(format!(
          "{path}.region: `{name}` is not one of the world's regions"
        ))
      }
    };
    let mut seen = BTreeSet::new();
    for (i, instance) in self.rds.instances.iter().enumerate() {
      region(format!("rds.instances[{i}]"), &instance.region)?;
      if !seen.insert((instance.region.as_str(), instance.id.as_str())) {
        return Err(format!(
          "rds.instances[{i}].id: duplicate instance `{}`",
          instance.id
        ));
      }
    }
    for (i, snapshot) in self.rds.snapshots.iter().enumerate() {
      region(format!("rds.snapshots[{i}]"), &snapshot.region)?;
    }
    for (i, cluster) in self.rds.global_clusters.iter().enumerate() {
      if cluster
        .members
        .iter()
        .filter(|member| member.writer)
        .count()
        > 1
      {
        return Err(format!(
          "rds.global_clusters[{i}].members: more than one writer"
        ));
      }
    }
    let mut services = BTreeSet::new();
    for (i, service) in self.ecs.services.iter().enumerate() {
      region(format!("ecs.services[{i}]"), &service.region)?;
      if !services.insert((
        service.region.as_str(),
        service.cluster.as_str(),
        service.name.as_str(),
      )) {
        return Err(format!(
          "ecs.services[{i}]: duplicate service `{}`",
          service.name
        ));
      }
    }
    let checks: BTreeSet<&str> = self
      .route53
      .health_checks
      .iter()
      .map(|check| check.id.as_str())
      .collect();
    for (i, check) in self.route53.health_checks.iter().enumerate() {
      if check.checkers == 0 {
        return Err(format!(
          "route53.health_checks[{i}].checkers: must be at least 1"
        ));
      }
    }
    let zones: BTreeSet<&str> = self
      .route53
      .hosted_zones
      .iter()
      .map(|zone| zone.id.as_str())
      .collect();
    for (z, zone) in self.route53.hosted_zones.iter().enumerate() {
      for (r, record) in zone.records.iter().enumerate() {
        if let Some(id) = &record.health_check_id {
          if !checks.contains(id.as_str()) {
            return Err(format!(
              "route53.hosted_zones[{z}].records[{r}].health_check_id: no health check `{id}`"
            ));
          }
        }
      }
    }
    for (i, bucket) in self.s3.buckets.iter().enumerate() {
      region(format!("s3.buckets[{i}]"), &bucket.region)?;
      if let Some(replication) = &bucket.replication {
        let known = self
          .s3
          .buckets
          .iter()
          .any(|other| other.name == replication.destination && other.name != bucket.name);
        if !known {
          return Err(format!(
            "s3.buckets[{i}].replication.destination: no other bucket `{}`",
            replication.destination
          ));
        }
      }
    }
    for (i, outage) in self.outages.iter().enumerate() {
      if !(regions.is_empty() || regions.contains(outage.region())) {
        return Err(format!(
          "outages[{i}]: `{}` is not one of the world's regions",
          outage.region()
        ));
      }
    }
    for (i, endpoint) in self.endpoints.iter().enumerate() {
      if super::http::endpoint_key(&endpoint.url).is_none() {
        return Err(format!(
          "endpoints[{i}].url: `{}` is not an http(s) URL",
          endpoint.url
        ));
      }
      match (&endpoint.service, &endpoint.dns) {
        (Some(service), None) => {
          let key = (
            service.region.as_str(),
            service.cluster.as_str(),
            service.service.as_str(),
          );
          if !services.contains(&key) {
            return Err(format!(
              "endpoints[{i}].service: no ECS service {}/{}/{}",
              service.region, service.cluster, service.service
            ));
          }
        }
        (None, Some(dns)) => {
          if !zones.contains(dns.zone.as_str()) {
            return Err(format!(
              "endpoints[{i}].dns.zone: no hosted zone `{}`",
              dns.zone
            ));
          }
        }
        _ => {
          return Err(format!(
            "endpoints[{i}]: give exactly one of `service` or `dns`"
          ))
        }
      }
    }
    for (i, webhook) in self.webhooks.iter().enumerate() {
      if super::http::endpoint_key(webhook).is_none() {
        return Err(format!("webhooks[{i}]: `{webhook}` is not an http(s) URL"));
      }
    }
    if let Some(down) = &self.faults.region_down {
      if !is_region_name(&down.region) {
        return Err(format!(
          "faults.{REGION_DOWN_KEY}: `{}` is not an AWS region name (such as us-east-1)",
          down.region
        ));
      }
    }
    for (name, fault) in &self.faults.calls {
      for (field, value) in [
        ("throttle", fault.throttle),
        ("error", fault.error),
        ("hang", fault.hang),
      ] {
        if let Some(p) = value {
          if !(0.0..=1.0).contains(&p) {
            return Err(format!(
              "faults.{name}.{field}: a probability between 0 and 1, got {p}"
            ));
          }
        }
      }
    }
    self.elbv2.validate(&regions, &services)?;
    self.arc.validate(&regions, &checks)?;
    self.cloudwatch.validate(self, &regions)?;
    Ok(())
  }
}

/// The built-in world, as YAML (what `--sim` with no file uses). It stages a game day: the
/// primary's health check is inverted, as a drill does, so Route 53 sees the primary as down.
pub const BUILTIN_WORLD: &str = r#"# drctl built-in simulated world: two regions, primary us-east-1, standby us-west-2.
time_scale: 40
seed: 1
account: "123456789012"
regions: [us-east-1, us-west-2]
timings:
  promote: 5m
  ecs_task_start: 2m
  ecs_drain: 30s
  route53_propagation: 60s
  restore: 10m
  delete: 4m
  global_failover: 1m
  api_latency: 20ms
  create_replica: 15m
  replica_catch_up: 5m
rds:
  instances:
    - id: app-db
      region: us-east-1
      engine: postgres
      class: db.r6g.large
      status: available
      endpoint: app-db.c1a2b3.us-east-1.rds.amazonaws.com
      port: 5432
    - id: app-db-replica
      region: us-west-2
      engine: postgres
      class: db.r6g.large
      status: available
      endpoint: app-db-replica.c4d5e6.us-west-2.rds.amazonaws.com
      port: 5432
      replica_of: arn:aws:rds:us-east-1:123456789012:db:app-db
      replica_lag: 4s
  snapshots:
    - { id: "rds:app-db-2026-11-22-03-00", instance: app-db, region: us-east-1, kind: automated, age: 3h }
    - { id: app-db-manual-2026-11-21, instance: app-db, region: us-east-1, kind: manual, age: 26h }
    # The DR plan's cross-region copy of the newest snapshot (CopyDBSnapshot keeps the source
    # instance's identifier; a copy is a manual snapshot).
    - { id: app-db-copy-2026-11-22-03-00, instance: app-db, region: us-west-2, kind: manual, age: 2h }
  global_clusters:
    - id: app-global
      members:
        - { cluster_arn: "arn:aws:rds:us-east-1:123456789012:cluster:app-aurora-use1", writer: true }
        - { cluster_arn: "arn:aws:rds:us-west-2:123456789012:cluster:app-aurora-usw2" }
ecs:
  services:
    - { region: us-east-1, cluster: app-primary, name: api, desired: 3, running: 3 }
    - { region: us-west-2, cluster: app-standby, name: api, desired: 0, running: 0 }
route53:
  hosted_zones:
    - id: Z0DRCTLEXAMPLE
      name: example.com.
      records:
        - name: api.example.com.
          type: CNAME
          set_identifier: primary
          failover: PRIMARY
          ttl: 60
          values: [api-use1.example.com]
          health_check_id: hc-primary
        - name: api.example.com.
          type: CNAME
          set_identifier: secondary
          failover: SECONDARY
          ttl: 60
          values: [api-usw2.example.com]
          health_check_id: hc-secondary
        # The same failover, guarded by ARC routing controls (health checks of type
        # RECOVERY_CONTROL): `runbooks/regional-failover-arc.yaml` flips it with no Route 53 call.
        - name: app.example.com.
          type: CNAME
          set_identifier: primary
          failover: PRIMARY
          ttl: 60
          values: [api-use1.example.com]
          health_check_id: hc-arc-primary
        - name: app.example.com.
          type: CNAME
          set_identifier: secondary
          failover: SECONDARY
          ttl: 60
          values: [api-usw2.example.com]
          health_check_id: hc-arc-secondary
  health_checks:
    # Game day: the primary's check is inverted, as a drill does, so Route 53 sees it down.
    - { id: hc-primary, target: "https://api-use1.example.com/health", inverted: true, checkers: 16 }
    - { id: hc-secondary, target: "https://api-usw2.example.com/health", checkers: 16 }
    # RECOVERY_CONTROL checks: their status is their routing control's (`arc:` below).
    - { id: hc-arc-primary, target: "https://api-use1.example.com/health", checkers: 16 }
    - { id: hc-arc-secondary, target: "https://api-usw2.example.com/health", checkers: 16 }
s3:
  buckets:
    - name: app-backups-use1
      region: us-east-1
      objects:
        - key: postgres/app-db-2026-11-22T03-00.dump
          size: 52428800
          age: 3h
          sha256: "q1MKE+RZFJgrefm34/uplM/R8/si9xzqGvvwK0YMbR0="
          replication_status: COMPLETED
        - key: postgres/app-db-2026-11-21T03-00.dump
          size: 52297728
          age: 27h
          sha256: "7bXnKkA3F1Yv0cJmVn3kz8tQ2mJ0Yqj1dX9Rk4b8cLk="
          replication_status: COMPLETED
      # Cross-region replication with S3 Replication Time Control (its metrics on).
      replication: { rule_id: backups, destination: app-backups-usw2, latency: 30s }
    - name: app-backups-usw2
      region: us-west-2
      objects:
        - key: postgres/app-db-2026-11-22T03-00.dump
          size: 52428800
          age: 3h
          sha256: "q1MKE+RZFJgrefm34/uplM/R8/si9xzqGvvwK0YMbR0="
          replication_status: REPLICA
elbv2:
  # The ALB target group in front of each region's api service: its targets are the service's
  # tasks, healthy 30s (3 checks 10s apart) after they start.
  target_groups:
    - region: us-east-1
      name: app-primary-tg
      service: { cluster: app-primary, service: api }
      health_check: { interval: 10s, healthy_threshold: 3 }
    - region: us-west-2
      name: app-standby-tg
      service: { cluster: app-standby, service: api }
      health_check: { interval: 10s, healthy_threshold: 3 }
arc:
  # An ARC recovery cluster answers on five regional endpoints, as AWS's do.
  endpoints:
    - { region: us-east-1, url: "https://host-aaaaaa.us-east-1.example.aws/v1" }
    - { region: us-west-2, url: "https://host-bbbbbb.us-west-2.example.aws/v1" }
    - { region: eu-west-1, url: "https://host-cccccc.eu-west-1.example.aws/v1" }
    - { region: ap-northeast-1, url: "https://host-dddddd.ap-northeast-1.example.aws/v1" }
    - { region: ap-southeast-2, url: "https://host-eeeeee.ap-southeast-2.example.aws/v1" }
  routing_controls:
    - arn: "arn:aws:route53-recovery-control::123456789012:controlpanel/0123456789abcdef0123456789abcdef/routingcontrol/primarycell00001"
      name: primary-cell
      state: On
      health_check: hc-arc-primary
    - arn: "arn:aws:route53-recovery-control::123456789012:controlpanel/0123456789abcdef0123456789abcdef/routingcontrol/standbycell00001"
      name: standby-cell
      state: Off
      health_check: hc-arc-secondary
cloudwatch:
  # The team's own alarms, both in the standby region (they must answer while the primary is
  # down): a canary on the primary's endpoint, and the standby target group's healthy hosts.
  alarms:
    - region: us-west-2
      name: app-primary-unhealthy
      watches: { health_check_failing: hc-primary }
      period: 1m
      evaluation_periods: 3
    - region: us-west-2
      name: app-standby-unhealthy
      watches: { healthy_hosts_below: { target_group: app-standby-tg, count: 3 } }
      period: 1m
      evaluation_periods: 3
endpoints:
  - url: https://api-use1.example.com/health
    service: { region: us-east-1, cluster: app-primary, service: api }
  - url: https://api-usw2.example.com/health
    service: { region: us-west-2, cluster: app-standby, service: api }
  - url: https://api.example.com/health
    dns: { zone: Z0DRCTLEXAMPLE, name: api.example.com. }
  - url: https://app.example.com/health
    dns: { zone: Z0DRCTLEXAMPLE, name: app.example.com. }
webhooks:
  - https://hooks.example.com/drctl
outages: []
faults: {}
rate_limits: {}
"#;

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn builtin_world_parses_and_validates() {
    let world = WorldSpec::from_yaml(BUILTIN_WORLD).unwrap();
    assert_eq!(world.time_scale, 40.0);
    assert_eq!(world.rds.instances.len(), 2);
    assert_eq!(
      world.rds.instances[1].replica_of.as_deref(),
      Some("arn:aws:rds:us-east-1:123456789012:db:app-db")
    );
    assert_eq!(world.rds.snapshots[0].age.0, Duration::from_secs(3 * 3600));
    assert!(world.route53.health_checks[0].inverted);
    assert_eq!(world.timings.api_latency.0, Duration::from_millis(20));
    assert_eq!(
      world.s3.buckets[0].objects[0]
        .sha256
        .as_ref()
        .map(String::len),
      Some(44)
    );
  }

  #[test]
  fn world_round_trips_through_json() {
    let world = WorldSpec::from_yaml(BUILTIN_WORLD).unwrap();
    let json = serde_json::to_string(&world).unwrap();
    let back: WorldSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(world, back);
  }

  #[test]
  fn unknown_fields_are_errors_with_their_path() {
    let err = WorldSpec::from_yaml("rds:\n  instances:\n    - { id: a, region: r, colour: red }\n")
      .unwrap_err();
    assert!(err.contains("rds.instances[0]"), "{err}");
    assert!(err.contains("colour"), "{err}");
  }

  #[test]
  fn durations_parse_and_format() {
    assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(parse_duration("20ms").unwrap(), Duration::from_millis(20));
    assert_eq!(parse_duration("0.5s").unwrap(), Duration::from_millis(500));
    assert!(parse_duration("5").is_err());
    assert!(parse_duration("5y").is_err());
    assert!(parse_duration("").is_err());
    assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    assert_eq!(format_duration(Duration::from_millis(20)), "20ms");
    assert_eq!(format_duration(Duration::ZERO), "0s");
  }

  /// A world file's durations are runbook durations: the same texts parse (units largest
  /// first, each once, to the nanosecond) and they are written back the same way.
  #[test]
  fn world_durations_are_runbook_durations() {
    for text in ["30m1h", "1s1s", "1.0000000001s"] {
      let err = parse_duration(text).unwrap_err();
      let reason = crate::runbook::parse_duration(text).unwrap_err();
      assert_eq!(err, format!("invalid duration `{text}`: {reason}"));
    }
    for (millis, text) in [(1_500, "\"1.5s\""), (86_400_000, "\"1d\"")] {
      let written = serde_json::to_string(&ModelDuration::millis(millis)).unwrap();
      assert_eq!(written, text);
    }
  }

  /// World durations are bounded like runbook ones: the simulator adds and scales them.
  #[test]
  fn world_durations_are_at_most_366_days() {
    assert_eq!(parse_duration("366d").unwrap(), MAX_DURATION);
    for long in ["367d", "18446744073709551615s", "1e300s"] {
      assert!(parse_duration(long).is_err(), "{long}");
    }
    for (timing, accepted) in [
      ("promote: 366d", true),
      ("promote: 31622401", false),
      ("promote: 31622400.5", false),
      ("promote: 18446744073709551615", false),
      ("promote: 90", true),
    ] {
      let yaml = format!("timings: {{ {timing} }}\n");
      let result = WorldSpec::from_yaml(&yaml);
      assert_eq!(result.is_ok(), accepted, "{timing}: {result:?}");
      if let Err(message) = result {
        assert!(
          message.contains("longer than the maximum, 366d"),
          "{message}"
        );
      }
    }
  }

  #[test]
  fn bad_references_are_reported() {
    let err = WorldSpec::from_yaml(
      "endpoints:\n  - { url: 'https://x/health', service: { region: r, cluster: c, service: s } }\n",
    )
    .unwrap_err();
    assert!(err.contains("endpoints[0].service"), "{err}");
    let err = WorldSpec::from_yaml("faults: { '*': { throttle: 2 } }\n").unwrap_err();
    assert!(err.contains("faults.*.throttle"), "{err}");
  }

  /// A region in outage can be written as a plain region (down for good) or with `until`
  /// (back after that much modelled time); both round-trip through the persisted JSON.
  #[test]
  fn outages_are_plain_regions_or_timed() {
    let yaml = BUILTIN_WORLD.replace(
      "outages: []",
      "outages: [us-east-1, { region: us-west-2, until: 20m }]",
    );
    let world = WorldSpec::from_yaml(&yaml).unwrap();
    assert_eq!(
      world.outages,
      [
        OutageSpec::Region("us-east-1".into()),
        OutageSpec::Until(TimedOutage {
          region: "us-west-2".into(),
          until: ModelDuration::secs(1200)
        })
      ]
    );
    assert_eq!(world.outages[1].until(), Some(Duration::from_secs(1200)));
    let back: WorldSpec = serde_json::from_str(&serde_json::to_string(&world).unwrap()).unwrap();
    assert_eq!(world, back);
    for (bad, expected) in [
      (
        "outages: [{ region: us-east-1, until: soon }]",
        "invalid duration",
      ),
      ("outages: [{ region: us-east-1, colour: red }]", "colour"),
      (
        "outages: [eu-west-9]",
        "outages[0]: `eu-west-9` is not one of the world's regions",
      ),
    ] {
      let err = WorldSpec::from_yaml(&BUILTIN_WORLD.replace("outages: []", bad)).unwrap_err();
      assert!(err.contains(expected), "{bad}: {err}");
    }
  }
}
