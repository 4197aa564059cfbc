//! The one integration-test binary: every test drives the real `callrollup`
//! binary against a PostgreSQL database created for that test alone.

mod anomalies;
mod bad_input;
mod billing_safety;
mod costs;
mod errors;
mod hostile;
mod migrate_and_runs;
mod offline;
mod query;
mod report_folders;
mod restatements;
mod run;
mod serve;
mod shards;
mod unattended;
mod usage;
mod util;
mod writes;
