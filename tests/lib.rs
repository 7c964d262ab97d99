//! Integration tests: one binary, one module per feature. Every test runs the real `drctl`
//! binary in a temporary directory (see `support::Test`).

mod support;

mod aws_adapters;
mod cli;
mod completions;
mod crash;
mod cron_reference;
mod docs;
mod drills;
mod failover;
mod fences;
mod http;
mod limits;
mod lockgroup;
mod locks;
mod notify;
mod operator;
mod orphans;
mod redaction;
mod report;
mod route53_batching;
mod s3state;
mod sandbox;
mod schema;
mod serve;
mod standby_backups;
mod state_format;
mod step_crash;
mod validate;
