//! Benchmark section `overhead` (placeholder until its helper lands it).

use crate::{Config, Measured, Row};

pub fn run(_config: &Config) -> Measured {
  Measured {
    rows: vec![Row::new("P?", "overhead implemented", "no", "yes", false)],
    notes: String::new(),
  }
}
