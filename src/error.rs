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

    /// Another run holds the advisory lock of a target schema, or the lock
    /// of a report folder. Exit 4.
    #[error("another callrollup run holds the lock on {what}; wait for it to finish (see `callrollup runs`)")]
    Locked { what: String },

    /// The run started but could not finish; nothing was half-written. Exit 1.
    #[error("{0}")]
    RunFailed(String),

    /// Reconciliation found summary sums that do not equal source sums. Exit 1.
    #[error("reconciliation failed, nothing was written: {0}")]
    Reconciliation(String),

    #[error("database error: {0}")]
    Database(String),

    /// A one-pass read gave way (its figures outgrew `--state-limit`, or
    /// it met `--statement-timeout`) after chunks had gone to the sink:
    /// the caller starts again chunk by chunk (`pipeline::with_read_again`,
    /// `pipeline::run::run`).
    /// Exit 1 if it ever reaches the user.
    #[error("{0}; run with --state-limit 0 to read the window chunk by chunk")]
    ReadAgain(String),

    /// A failure that a new attempt may not meet: the connection was
    /// refused, reset or terminated (`admin_shutdown`), the server was
    /// starting up, or a serialization failure or deadlock. Exit 1.
    #[error("database error: {0}")]
    TransientDatabase(String),

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
            | Error::ReadAgain(_)
            | Error::TransientDatabase(_)
            | Error::Io { .. }
            | Error::Polars(_) => 1,
        }
    }

    /// Whether a new attempt might succeed (`run --retries`): a lost or
    /// refused connection, a server restart, a serialization failure.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::TransientDatabase(_) => true,
            Error::Connect { reason, .. } => {
                let reason = reason.to_ascii_lowercase();
                [
                    "refused",
                    "reset",
                    "starting up",
                    "shutting down",
                    "timed out",
                    "terminating connection",
                ]
                .iter()
                .any(|r| reason.contains(r))
            }
            _ => false,
        }
    }

    /// The same error, not to be retried (a failure once writing began).
    pub fn final_attempt(self) -> Self {
        match self {
            Error::TransientDatabase(m) => Error::Database(m),
            e => e,
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
        let msg = msg.replace('\n', " ");
        if is_transient(&e) {
            Error::TransientDatabase(msg)
        } else {
            Error::Database(msg)
        }
    }
}

/// SQLSTATE classes and codes a retry can get past: connection exceptions
/// (08), operator intervention (57P01 admin_shutdown, 57P02, 57P03),
/// serialization failure and deadlock (40001, 40P01); and a connection
/// that closed under us.
fn is_transient(e: &postgres::Error) -> bool {
    match e.code() {
        Some(code) => {
            let code = code.code();
            code.starts_with("08") || ["57P01", "57P02", "57P03", "40001", "40P01"].contains(&code)
        }
        None => {
            e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
        }
    }
}
