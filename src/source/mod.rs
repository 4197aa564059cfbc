//! The source stage: the platform tables as Polars frames, from
//! PostgreSQL (binary COPY) or a Parquet snapshot. The frames' shape lives
//! in `crate::frames`, shared with the rollup.

pub mod accumulate;
pub mod errored;
pub mod pgcopy;
pub mod postgres;
pub mod snapshot;
