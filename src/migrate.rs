//! The engine's own schema: `migrations/*.sql` applied in order and recorded
//! with a checksum in `<schema>.schema_migrations`, so that an applied
//! migration whose file changed is refused rather than silently skipped.

use postgres::Client;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::sql::{self, Migration, MIGRATIONS};

fn checksum(m: &Migration) -> String {
    let digest = Sha256::digest(m.text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

struct Applied {
    version: i32,
    name: String,
    checksum: String,
}

fn applied(client: &mut Client, schema: &str) -> Result<Option<Vec<Applied>>> {
    let has_ledger: bool = client.query_one(sql::SCHEMA_EXISTS, &[&schema])?.get(0);
    if !has_ledger {
        return Ok(None);
    }
    let rows = client.query(
        &sql::render(sql::MIGRATIONS_APPLIED, &[("schema", schema)]),
        &[],
    )?;
    Ok(Some(
        rows.iter()
            .map(|r| Applied {
                version: r.get("version"),
                name: r.get("name"),
                checksum: r.get("checksum"),
            })
            .collect(),
    ))
}

/// Refuses an applied migration whose file no longer matches, and a
/// database that has migrations this engine does not know.
fn verify(applied: &[Applied], schema: &str) -> Result<()> {
    for a in applied {
        match MIGRATIONS.iter().find(|m| m.version == a.version) {
            None => {
                return Err(Error::EngineSchema(format!(
                    "schema {schema} has migration {} ({}) that this callrollup does not know; upgrade callrollup",
                    a.version, a.name
                )))
            }
            Some(m) if checksum(m) != a.checksum => {
                return Err(Error::EngineSchema(format!(
                    "migration {} was changed after it was applied to schema {schema} (checksum differs); restore migrations/{} or add a new migration instead",
                    m.name, m.name
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Applies every pending migration, each in its own transaction, under a
/// transaction-level advisory lock so two `migrate`s cannot interleave.
/// Returns the names applied now.
pub fn migrate(client: &mut Client, schema: &str) -> Result<Vec<&'static str>> {
    let mut tx = client.transaction()?;
    tx.execute(sql::MIGRATION_LOCK, &[&schema])?;
    let exists: bool = tx.query_one(sql::NAMESPACE_EXISTS, &[&schema])?.get(0);
    if !exists {
        tx.batch_execute(&sql::render(sql::SCHEMA_CREATE, &[("schema", schema)]))?;
    }
    tx.batch_execute(&sql::render(sql::MIGRATION_LEDGER, &[("schema", schema)]))?;
    tx.commit()?;

    let done = applied(client, schema)?.unwrap_or_default();
    verify(&done, schema)?;
    let mut now_applied = Vec::new();
    for m in MIGRATIONS {
        if done.iter().any(|a| a.version == m.version) {
            continue;
        }
        let mut tx = client.transaction()?;
        tx.execute(sql::MIGRATION_LOCK, &[&schema])?;
        tx.batch_execute(&sql::render(m.text, &[("schema", schema)]))?;
        tx.execute(
            &sql::render(sql::MIGRATION_RECORD, &[("schema", schema)]),
            &[&m.version, &m.name, &checksum(m)],
        )?;
        tx.commit()?;
        now_applied.push(m.name);
    }
    Ok(now_applied)
}

/// `run` starts only on an up-to-date schema.
pub fn check_current(client: &mut Client, schema: &str) -> Result<()> {
    let Some(done) = applied(client, schema)? else {
        return Err(Error::EngineSchema(format!(
            "schema {schema} has no callrollup tables; run `callrollup migrate` first"
        )));
    };
    verify(&done, schema)?;
    let pending: Vec<&str> = MIGRATIONS
        .iter()
        .filter(|m| !done.iter().any(|a| a.version == m.version))
        .map(|m| m.name)
        .collect();
    if !pending.is_empty() {
        return Err(Error::EngineSchema(format!(
            "schema {schema} is out of date ({} pending: {}); run `callrollup migrate`",
            pending.len(),
            pending.join(", ")
        )));
    }
    Ok(())
}
