//! The SQL engine `query` runs on: Apache DataFusion, set up to answer as
//! Postgres does (its dialect, NULLs last ascending and first descending,
//! exact numeric literals, the dialect fixes of `postgres.rs`) and to
//! reach nothing but the tables it is given: no table functions, no
//! information schema, no URL tables, no DDL, DML or SET, and a memory
//! pool that spills to a private folder or fails, never the OOM killer.

use std::path::Path;
use std::sync::Arc;

use datafusion::common::config::Dialect;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::optimizer::Analyzer;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::{Error, Result};

use super::postgres;

/// The catalog and schema the tables live in; a query names tables bare
/// (a qualified name is refused before planning).
pub const CATALOG: &str = "callrollup";
pub const SCHEMA: &str = "window";

/// The memory pool and spill folder of one query.
pub fn runtime(memory_limit: usize, spill_dir: &Path) -> Result<Arc<RuntimeEnv>> {
    RuntimeEnvBuilder::new()
        .with_memory_limit(memory_limit, 1.0)
        .with_disk_manager_builder(
            DiskManagerBuilder::default()
                .with_mode(DiskManagerMode::Directories(vec![spill_dir.to_path_buf()]))
                // Spills are bounded too: 8 times the memory limit.
                .with_max_temp_directory_size((memory_limit as u64).saturating_mul(8)),
        )
        .build_arc()
        .map_err(|e| Error::EngineSchema(format!("query: cannot set up the engine: {e}")))
}

/// A session with the Postgres dialect and nothing registered but
/// functions; the caller registers the window's tables.
pub fn session(runtime: Arc<RuntimeEnv>) -> SessionContext {
    let partitions = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(2)
        .clamp(1, 8);
    let mut config = SessionConfig::new()
        .with_target_partitions(partitions)
        .with_information_schema(false)
        .with_default_catalog_and_schema(CATALOG, SCHEMA)
        .with_create_default_catalog_and_schema(true);
    let options = config.options_mut();
    options.sql_parser.dialect = Dialect::PostgreSQL;
    // `0.1` is numeric in Postgres, not a float: money stays exact.
    options.sql_parser.parse_float_as_decimal = true;
    // Postgres: NULLs sort as the largest value.
    options.sql_parser.default_null_ordering = "nulls_max".into();
    options.sql_parser.enable_ident_normalization = true;
    // varchar(3) truncates in Postgres and is ignored by DataFusion: refused.
    options.sql_parser.support_varchar_with_length = false;
    // Times are UTC, as the contract's; `now()` too.
    options.execution.time_zone = Some("UTC".into());
    let mut analyzer = Analyzer::new();
    // Before TypeCoercion (the last of the default rules).
    let coercion = analyzer.rules.len() - 1;
    analyzer.rules.insert(coercion, postgres::analyzer_rule());
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        // read_csv, generate_series, …: a query reads only its tables.
        .with_table_function_list(vec![])
        .with_analyzer_rules(analyzer.rules)
        .build();
    let context = SessionContext::new_with_state(state);
    for udf in postgres::scalar_functions() {
        context.register_udf(udf);
    }
    for udaf in postgres::aggregate_functions() {
        context.register_udaf(udaf);
    }
    context
}
