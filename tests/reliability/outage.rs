//! Reliability section `outage` (placeholder until its helper lands it).

use crate::{Config, Figure};

pub fn run(_config: &Config) -> Vec<Figure> {
  vec![Figure::new(
    "outage",
    "section implemented",
    "no",
    "yes",
    false,
  )]
}
