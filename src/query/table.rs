//! One of the window's tables as the engine sees it: the table's whole
//! schema, so the query plans as written, but only the columns the query
//! reads held in memory (counted against the query's memory pool).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// Rows the engine takes at a time: DataFusion's batch size.
pub const BATCH_ROWS: usize = 8192;

/// What a plan's scan reads: one of the window's tables, a recursive
/// CTE's own rows, or something else (which the guard refuses).
#[derive(Debug, PartialEq, Eq)]
pub enum ScanOf {
    WindowTable,
    RecursiveRows,
    Other,
}

/// The provider behind a scan, by its type, not its name (a recursive CTE
/// may be named like a table).
pub fn scan_of(scan: &datafusion::logical_expr::TableScan) -> ScanOf {
    let provider = datafusion::datasource::source_as_provider(&scan.source).ok();
    let any = provider.as_ref().map(|p| p.as_ref() as &dyn std::any::Any);
    match any {
        Some(a) if a.is::<WindowTable>() => ScanOf::WindowTable,
        Some(a) if a.is::<datafusion::datasource::cte_worktable::CteWorkTable>() => {
            ScanOf::RecursiveRows
        }
        _ => ScanOf::Other,
    }
}

#[derive(Debug)]
pub struct WindowTable {
    /// The table's whole schema.
    schema: SchemaRef,
    /// Which of its columns are held, in schema order.
    held: Vec<usize>,
    /// The held columns' schema.
    held_schema: SchemaRef,
    /// The rows, spread over the engine's partitions.
    partitions: Vec<Vec<RecordBatch>>,
    /// Rows in each partition.
    rows: Vec<usize>,
}

impl WindowTable {
    /// A table of `schema` holding the columns `held` (the batches' own
    /// schema), in `partitions` parts.
    pub fn new(
        schema: SchemaRef,
        held: Vec<usize>,
        partitions: usize,
    ) -> crate::error::Result<WindowTable> {
        let held_schema = Arc::new(schema.project(&held).map_err(|e| {
            crate::error::Error::EngineSchema(format!("query: the columns read: {e}"))
        })?);
        Ok(WindowTable {
            schema,
            held,
            held_schema,
            partitions: vec![Vec::new(); partitions.max(1)],
            rows: vec![0; partitions.max(1)],
        })
    }

    /// The held columns' schema, which added batches must have.
    pub fn held_schema(&self) -> &SchemaRef {
        &self.held_schema
    }

    /// Adds a batch to the partition with the fewest rows.
    pub fn push(&mut self, batch: RecordBatch) {
        let fewest = (0..self.rows.len())
            .min_by_key(|&p| self.rows[p])
            .unwrap_or(0);
        self.rows[fewest] += batch.num_rows();
        self.partitions[fewest].push(batch);
    }
}

#[async_trait]
impl TableProvider for WindowTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        // The columns were chosen from this query's own plan; one not held
        // means the plan changed between the two plannings.
        let mapped = wanted
            .iter()
            .map(|i| {
                self.held.iter().position(|h| h == i).ok_or_else(|| {
                    DataFusionError::Internal(format!(
                        "column {} was not read",
                        self.schema.field(*i).name()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MemorySourceConfig::try_new_exec(
            &self.partitions,
            self.held_schema.clone(),
            Some(mapped),
        )?)
    }
}
