//! Parquet snapshots of a window's source rows: `tenants.parquet`,
//! `call_logs.parquet`, `system_errors.parquet` and `manifest.json`.
//! `callrollup extract` writes them; `--source DIR` reads them instead of
//! Postgres and gives the same rollups digit for digit.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::*;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::frames::{
    calls_schema, conform, errors_schema, tenants_schema, SourceFrames, SourceTotals,
};
use crate::selection::{tenant_id_in, TenantSelection};
use crate::window::Window;

/// Version of the snapshot's schema (files, columns, manifest fields);
/// bumped whenever a reader of the old one would misread the new one.
/// Version 2 added the selection (`tenants`, `tenant_shard`): a version 1
/// snapshot taken with `--tenant` would look like a whole platform, and a
/// run back into a database would delete every other tenant's rows.
pub const SNAPSHOT_SCHEMA_VERSION: u32 = 2;

const TABLES: [&str; 3] = ["tenants", "call_logs", "system_errors"];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableEntry {
    pub file: String,
    pub rows: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub schema_version: u32,
    pub engine_version: String,
    pub window_from: NaiveDate,
    pub window_to: NaiveDate,
    /// The UTC range whose rows the snapshot holds.
    pub utc_from: String,
    pub utc_to: String,
    pub created_at: String,
    /// Where the rows came from (no secrets): a hash of server, database
    /// and schema, or the generator's parameters.
    pub source_fingerprint: String,
    pub stt_cost_usd: String,
    pub llm_cost_usd: String,
    pub tts_cost_usd: String,
    pub total_cost_usd: String,
    /// The tenants the snapshot holds: empty for every tenant (and then
    /// the platform-level rows too, unless a shard leaves them out).
    pub tenants: Vec<uuid::Uuid>,
    /// The `--tenant-shard i/n` it was taken with, if any.
    pub tenant_shard: Option<String>,
    pub tables: std::collections::BTreeMap<String, TableEntry>,
}

impl Manifest {
    /// The tenants the snapshot holds, as a selection.
    pub fn selection(&self) -> Result<TenantSelection> {
        Ok(TenantSelection {
            tenants: self.tenants.clone(),
            shard: self
                .tenant_shard
                .as_deref()
                .map(crate::shard::Shard::parse)
                .transpose()?,
        })
    }
}

fn sha256_file(path: &Path) -> Result<String> {
    let bytes =
        fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Writes a snapshot into `dir` atomically: everything goes to a sibling
/// temporary folder that is renamed into place when complete. An existing
/// snapshot at `dir` is replaced only then.
pub fn write(
    dir: &Path,
    frames: &SourceFrames,
    window: &Window,
    fingerprint: &str,
    selection: &TenantSelection,
) -> Result<Manifest> {
    refuse_foreign_folder(dir)?;
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dir
        .file_name()
        .ok_or_else(|| Error::usage(format!("--out {} is not a folder name", dir.display())))?;
    fs::create_dir_all(parent).map_err(|e| {
        Error::usage(format!(
            "cannot create {} ({e}); pick a folder you can write",
            parent.display()
        ))
    })?;
    // A new folder under a name nobody can guess, readable by this user
    // alone: never an existing one, never through a planted link.
    let staging: PathBuf = parent.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o700)
        .create(&staging)
        .map_err(|e| {
            Error::usage(format!(
                "cannot write snapshot under {} ({e}); pick a folder you can write",
                parent.display()
            ))
        })?;
    let result = (|| {
        let mut tables = std::collections::BTreeMap::new();
        for (table, df) in TABLES
            .iter()
            .zip([&frames.tenants, &frames.calls, &frames.errors])
        {
            let file = format!("{table}.parquet");
            let path = staging.join(&file);
            let mut f = File::create(&path)
                .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
            ParquetWriter::new(&mut f).finish(&mut df.clone())?;
            f.sync_all()
                .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
            tables.insert(
                table.to_string(),
                TableEntry {
                    file,
                    rows: df.height() as u64,
                    sha256: sha256_file(&path)?,
                },
            );
        }
        let totals = SourceTotals::of(&frames.calls, &frames.errors)?;
        let (utc_from, utc_to) = window.utc_range();
        let manifest = Manifest {
            schema_version: SNAPSHOT_SCHEMA_VERSION,
            engine_version: crate::ENGINE_VERSION.to_string(),
            window_from: window.from,
            window_to: window.to,
            utc_from: utc_from.to_rfc3339(),
            utc_to: utc_to.to_rfc3339(),
            created_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            source_fingerprint: fingerprint.to_string(),
            stt_cost_usd: totals.stt_cost_usd.normalize().to_string(),
            llm_cost_usd: totals.llm_cost_usd.normalize().to_string(),
            tts_cost_usd: totals.tts_cost_usd.normalize().to_string(),
            total_cost_usd: totals.total_cost_usd.normalize().to_string(),
            tenants: selection.tenants.clone(),
            tenant_shard: selection.shard.map(|s| s.to_string()),
            tables,
        };
        let text = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
        fs::write(staging.join("manifest.json"), text)
            .map_err(|e| Error::io("cannot write manifest.json", e))?;
        // Private while written; once complete, as readable as the report
        // folders (0750 under the process's umask).
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&staging, fs::Permissions::from_mode(0o750))
            .map_err(|e| Error::io(format!("cannot write {}", dir.display()), e))?;
        if dir.exists() {
            fs::remove_dir_all(dir)
                .map_err(|e| Error::io(format!("cannot replace {}", dir.display()), e))?;
        }
        fs::rename(&staging, dir)
            .map_err(|e| Error::io(format!("cannot move snapshot to {}", dir.display()), e))?;
        Ok(manifest)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// `extract --out` replaces an earlier snapshot, never anything else: a
/// folder that is not empty must hold a manifest and only the files it
/// lists, or nothing is touched.
pub fn refuse_foreign_folder(dir: &Path) -> Result<()> {
    let refuse = |why: &str| {
        Err(Error::usage(format!(
            "--out {} {why}, so it is not an earlier snapshot; nothing was deleted: extract into a new or empty folder",
            dir.display()
        )))
    };
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        return refuse("is a file");
    }
    let entries: Vec<String> = fs::read_dir(dir)
        .map_err(|e| Error::usage(format!("cannot read --out {} ({e})", dir.display())))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    // Any version: an older snapshot may be replaced by a newer one.
    #[derive(Deserialize)]
    struct AnyManifest {
        tables: std::collections::BTreeMap<String, TableEntry>,
    }
    let Ok(text) = fs::read_to_string(dir.join("manifest.json")) else {
        return refuse("is not empty and holds no manifest.json");
    };
    let Ok(manifest) = serde_json::from_str::<AnyManifest>(&text) else {
        return refuse("holds a manifest.json that is not a snapshot's");
    };
    let listed: Vec<&str> = manifest.tables.values().map(|t| t.file.as_str()).collect();
    if listed.iter().any(|f| !is_plain_file_name(f)) {
        return refuse("holds a manifest.json that names files outside it");
    }
    if let Some(other) = entries
        .iter()
        .find(|e| *e != "manifest.json" && !listed.contains(&e.as_str()))
    {
        return refuse(&format!("holds {other}, which its manifest does not list"));
    }
    Ok(())
}

/// A file name inside the snapshot folder: no path, no `..`.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// A short digest of a snapshot's manifest, naming exactly what a run read.
pub fn manifest_digest(dir: &Path) -> Result<String> {
    Ok(format!(
        "sha256:{}",
        &sha256_file(&dir.join("manifest.json"))?[..16]
    ))
}

fn corrupt(dir: &Path, what: impl std::fmt::Display) -> Error {
    Error::usage(format!(
        "snapshot {} is not usable: {what}; extract it again with `callrollup extract`",
        dir.display()
    ))
}

pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join("manifest.json");
    let text = fs::read_to_string(&path)
        .map_err(|e| corrupt(dir, format!("cannot read manifest.json ({e})")))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| corrupt(dir, format!("manifest.json is malformed ({e})")))?;
    if manifest.schema_version != SNAPSHOT_SCHEMA_VERSION {
        return Err(corrupt(
            dir,
            format!(
                "snapshot schema version {} is not {SNAPSHOT_SCHEMA_VERSION}, the one this callrollup reads",
                manifest.schema_version
            ),
        ));
    }
    if let Some(entry) = manifest
        .tables
        .values()
        .find(|t| !is_plain_file_name(&t.file))
    {
        return Err(corrupt(
            dir,
            format!(
                "manifest.json names {:?}, which is not a plain file name in the snapshot folder",
                entry.file
            ),
        ));
    }
    manifest.selection().map_err(|_| {
        corrupt(
            dir,
            format!(
                "manifest.json has tenant_shard {:?}, which is not i/n",
                manifest.tenant_shard
            ),
        )
    })?;
    Ok(manifest)
}

/// Reads the rows of `window` from a snapshot, after checking that the
/// snapshot covers the window and that every file is what the manifest
/// says it is.
pub fn read(
    dir: &Path,
    window: &Window,
    selection: &TenantSelection,
) -> Result<(SourceFrames, SourceTotals)> {
    let manifest = read_manifest(dir)?;
    if window.from < manifest.window_from || window.to > manifest.window_to {
        return Err(Error::usage(format!(
            "snapshot {} covers {}..{}, not {}..{}; extract a snapshot that covers the window",
            dir.display(),
            manifest.window_from,
            manifest.window_to,
            window.from,
            window.to
        )));
    }
    let mut frames = Vec::new();
    for (table, schema) in TABLES
        .iter()
        .zip([tenants_schema(), calls_schema(), errors_schema()])
    {
        frames.push(read_table(dir, &manifest, table, &schema)?);
    }
    let errors = frames.pop().expect("three tables");
    let calls = frames.pop().expect("three tables");
    let tenant_rows = frames.pop().expect("three tables");
    let all = SourceFrames {
        tenants: tenant_rows,
        calls,
        errors,
    };
    let sums = SourceTotals::of(&all.calls, &all.errors)?;
    let expected = [
        (&manifest.stt_cost_usd, sums.stt_cost_usd),
        (&manifest.llm_cost_usd, sums.llm_cost_usd),
        (&manifest.tts_cost_usd, sums.tts_cost_usd),
        (&manifest.total_cost_usd, sums.total_cost_usd),
    ];
    for (text, actual) in expected {
        let wanted: Decimal = text
            .parse()
            .map_err(|_| corrupt(dir, format!("cost sum {text:?} is not a number")))?;
        if wanted.normalize() != actual.normalize() {
            return Err(corrupt(
                dir,
                format!("cost sums do not match manifest.json ({actual} vs {text})"),
            ));
        }
    }
    let (from, to) = window.utc_range();
    let filtered = restrict(all, from, to, selection)?;
    let totals = SourceTotals::of(&filtered.calls, &filtered.errors)?;
    Ok((filtered, totals))
}

/// One table of a snapshot, checked against its manifest entry (present,
/// checksum, Parquet, row count, columns).
fn read_table(dir: &Path, manifest: &Manifest, table: &str, schema: &Schema) -> Result<DataFrame> {
    let entry = manifest
        .tables
        .get(table)
        .ok_or_else(|| corrupt(dir, format!("manifest.json lists no {table}")))?;
    let path = dir.join(&entry.file);
    if !path.exists() {
        return Err(corrupt(dir, format!("{} is missing", entry.file)));
    }
    if sha256_file(&path)? != entry.sha256 {
        return Err(corrupt(
            dir,
            format!(
                "{} does not match its checksum in manifest.json",
                entry.file
            ),
        ));
    }
    let file =
        File::open(&path).map_err(|e| corrupt(dir, format!("cannot open {} ({e})", entry.file)))?;
    let df = ParquetReader::new(file)
        .finish()
        .map_err(|e| corrupt(dir, format!("{} is not readable Parquet ({e})", entry.file)))?;
    if df.height() as u64 != entry.rows {
        return Err(corrupt(
            dir,
            format!(
                "{} has {} rows, manifest.json says {}",
                entry.file,
                df.height(),
                entry.rows
            ),
        ));
    }
    conform(df, schema)
        .map_err(|e| corrupt(dir, format!("{} has the wrong columns ({e})", entry.file)))
}

/// The snapshot's tenants (checked like every table), for the day-boundary check.
pub fn read_tenants(dir: &Path, manifest: &Manifest) -> Result<DataFrame> {
    read_table(dir, manifest, "tenants", &tenants_schema())
}

/// Keeps the rows of the UTC range (and the `--tenant`s), as the Postgres
/// extraction would have read them.
fn restrict(
    frames: SourceFrames,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    selection: &TenantSelection,
) -> Result<SourceFrames> {
    let in_range = |df: DataFrame| -> PolarsResult<DataFrame> {
        let ts = col("created_at").dt().timestamp(TimeUnit::Microseconds);
        df.lazy()
            .filter(
                ts.clone()
                    .gt_eq(lit(from.timestamp_micros()))
                    .and(ts.lt(lit(to.timestamp_micros()))),
            )
            .collect()
    };
    let wanted = |df: DataFrame| -> PolarsResult<DataFrame> {
        let mut keep = lit(true);
        if !selection.tenants.is_empty() {
            keep = keep.and(tenant_id_in(&selection.tenant_texts()));
        }
        if let Some(shard) = selection.shard {
            // The hash is taken once per distinct tenant, not per row.
            let distinct = df.column("tenant_id")?.unique()?;
            let ids: Vec<&str> = distinct
                .str()?
                .into_iter()
                .flatten()
                .filter(|id| shard.contains(Some(id)))
                .collect();
            let mut in_shard = tenant_id_in(&ids);
            if shard.contains(None) {
                in_shard = in_shard.or(col("tenant_id").is_null());
            }
            keep = keep.and(in_shard.fill_null(lit(false)));
        }
        df.lazy().filter(keep).collect()
    };
    Ok(SourceFrames {
        tenants: wanted(frames.tenants)?,
        calls: wanted(in_range(frames.calls)?)?,
        errors: wanted(in_range(frames.errors)?)?,
    })
}
