//! Integration tests: one binary, one module per feature. Every test runs the real `drctl`
//! binary in a temporary directory (see `support::Test`).

mod support;

mod aws_adapters;
mod cli;
mod crash;
mod drills;
mod failover;
mod locks;
mod notify;
mod redaction;
mod report;
mod route53_batching;
mod s3state;
mod sandbox;
mod validate;
