//! Benchmark section `fleet` (placeholder until its helper lands it).

use crate::{Config, Measured, Row};

pub fn run(_config: &Config) -> Measured {
  Measured {
    rows: vec![Row::new("P?", "fleet implemented", "no", "yes", false)],
    notes: String::new(),
  }
}
