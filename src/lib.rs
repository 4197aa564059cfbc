//! callrollup: the nightly analytics and billing engine of the voice-agent
//! platform. Three stages — `source` (Postgres) → `rollup` (pure Polars) →
//! `sink` (report files, Postgres write-back) — driven by the commands in
//! `cmd`. The contract is docs/CONTRACT.md.

pub mod anomalies;
pub mod changes;
pub mod cli;
pub mod cmd;
pub mod costs;
pub mod db;
pub mod deadline;
pub mod drift;
pub mod error;
pub mod fault;
pub mod frames;
pub mod gates;
pub mod generate;
pub mod ledger;
pub mod log;
pub mod metrics;
pub mod migrate;
pub mod money;
pub mod output;
pub mod pipeline;
pub mod query;
pub mod rollup;
pub mod selection;
pub mod serve;
pub mod shard;
pub mod signals;
pub mod sink;
pub mod source;
pub mod sql;
pub mod summaries;
pub mod tables;
pub mod text;
pub mod trends;
pub mod window;
pub mod zone_check;

pub use error::{Error, Result};

/// Recorded in every ledger row.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");
