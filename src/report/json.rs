//! The JSON rendering: the [`Report`] model itself, pretty-printed. Field names are documented in
//! the module header of `report` and tagged `schema: drctl.report/v1`.

use super::Report;

pub fn render(report: &Report) -> String {
  // Serializing plain structs, string-keyed maps and finite numbers cannot fail; an empty object
  // would still be valid JSON should that ever change.
  let mut text = serde_json::to_string_pretty(report).unwrap_or_else(|_| "{}".into());
  text.push('\n');
  text
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::report::fixture;

  #[test]
  fn json_has_the_documented_fields_and_round_trips() {
    let report = fixture::report();
    let text = render(&report);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    for field in [
      "schema",
      "run_id",
      "runbook",
      "status",
      "mode",
      "backend",
      "user",
      "caller",
      "host",
      "started_at",
      "finished_at",
      "params",
      "objectives",
      "critical_path",
      "steps",
      "outputs",
      "api_calls",
    ] {
      assert!(value.get(field).is_some(), "missing {field}");
    }
    assert_eq!(value["schema"], "drctl.report/v1");
    assert_eq!(value["objectives"][0]["name"], "RTO");
    assert_eq!(value["objectives"][0]["verdict"], "not_measured");
    assert_eq!(value["objectives"][1]["verdict"], "met");
    let failed = &value["steps"][2];
    assert_eq!(failed["error"]["code"], "Throttling");
    assert_eq!(failed["error"]["request_id"], "req-42");
    assert_eq!(failed["attempts"], 2);
    assert_eq!(
      value["api_calls"]["by_operation"][crate::cloud::ops::ecs::UPDATE_SERVICE.name],
      2
    );
    let back: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(back, report);
  }
}
