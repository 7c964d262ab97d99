//! Reliability section `crash` (placeholder until its helper lands it).

use crate::{Config, Figure};

pub fn run(_config: &Config) -> Vec<Figure> {
  vec![Figure::new(
    "crash",
    "section implemented",
    "no",
    "yes",
    false,
  )]
}
