//! The library's error type. Every variant knows its exit code (docs/CONTRACT.md §7),
//! and every message is one line that says what to do next.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    /// A flag, date, UUID or path that cannot work. Exit 2.
    #[error("{0}")]
    Usage(String),

    /// The database could not be reached or refused us. Exit 2: the URL or
    /// the server needs fixing before a re-run can help.
    #[error("cannot connect to {url}: {reason}; check --database-url/--target-url and that PostgreSQL is running")]
    Connect { url: String, reason: String },

    /// The source tables do not have a column the engine needs. Exit 2.
    #[error("schema drift in source table {table}: {problem}; fix the source or grant SELECT on the column")]
    SchemaDrift { table: String, problem: String },

    /// The engine's own schema is missing or behind. Exit 2.
    #[error("{0}")]
    EngineSchema(String),

    /// A check the user asked for failed: a data-quality gate, missing or
    /// partial days with `--require-complete`, a reconciliation difference.
    /// Exit 3; whatever was asked for was still written.
    #[error("{0}")]
    Check(String),

    /// Another run holds the advisory lock. Exit 4.
    #[error("another callrollup run holds the lock on schema {schema}; wait for it to finish (see `callrollup runs`)")]
    Locked { schema: String },

    /// The run started but could not finish; nothing was half-written. Exit 1.
    #[error("{0}")]
    RunFailed(String),

    /// Reconciliation found summary sums that do not equal source sums. Exit 1.
    #[error("reconciliation failed, nothing was written: {0}")]
    Reconciliation(String),

    #[error("database error: {0}")]
    Database(String),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("polars: {0}")]
    Polars(#[from] polars::prelude::PolarsError),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_)
            | Error::Connect { .. }
            | Error::SchemaDrift { .. }
            | Error::EngineSchema(_) => 2,
            Error::Check(_) => 3,
            Error::Locked { .. } => 4,
            Error::RunFailed(_)
            | Error::Reconciliation(_)
            | Error::Database(_)
            | Error::Io { .. }
            | Error::Polars(_) => 1,
        }
    }

    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        // The server's message (not the Debug form) is what a person can act on.
        let msg = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.severity(), db.message()),
            None => e.to_string(),
        };
        Error::Database(msg.replace('\n', " "))
    }
}
