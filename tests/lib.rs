//! Integration tests: one binary, one module per feature. Every test runs the real `drctl`
//! binary in a temporary directory (see `support::Test`).

mod support;

mod approvals;
mod aws_adapters;
mod browser;
mod cli;
mod completions;
mod crash;
mod cron_reference;
mod deploy;
mod docs;
mod drills;
mod errors;
mod failover;
mod fences;
mod http;
mod limits;
mod lockgroup;
mod locks;
mod notify;
mod operator;
mod orphans;
mod plan_codes;
mod preflight;
mod redaction;
mod report;
mod route53_batching;
mod s3state;
mod sandbox;
mod schema;
mod serve;
mod stability;
mod standby_backups;
mod state_format;
mod step_crash;
mod validate;
