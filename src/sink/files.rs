//! Report files: `DIR/<table>/day=YYYY-MM-DD/<table>.parquet` and `.csv`,
//! one pair per table and window day (empty days too, so that a re-run
//! replaces what an earlier run wrote). All files are first written under
//! temporary names; only when every one is complete are they renamed into
//! place, so a failure leaves the previous reports as they were.
//!
//! Between the commit of a run and the last rename, a kill would leave a
//! mix of old and new files. So before the commit point the staged set is
//! *sealed*: a journal in the report folder lists every rename. The next
//! run that opens the folder finishes a committed run's renames (or drops
//! the files of a run that never committed) before its own work.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use polars::prelude::*;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::layout::{self, DayFolder};
use crate::error::{Error, Result};
use crate::money;
use crate::shard::Shard;
use crate::tables::{PerTable, Table};

/// Files written under temporary names, waiting to be renamed into place.
#[derive(Default)]
pub struct StagedFiles {
    moves: Vec<(PathBuf, PathBuf)>,
    /// Committed files the run replaces with its own without a rename: the
    /// shard files of the days a whole run writes.
    removals: Vec<PathBuf>,
    /// Day folders this run created, removed again if it never commits.
    created_dirs: Vec<PathBuf>,
    /// The journal that lists `moves`, once sealed.
    journal: Option<PathBuf>,
    /// Staged files of other runs' journals, left for their own target to
    /// finish: never removed as stale.
    kept: Vec<PathBuf>,
    /// Days the run writes no files for (a `--tenant` run's days with no
    /// committed report to merge into).
    skipped_days: Vec<NaiveDate>,
}

/// Who decides whether a sealed set of staged files is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decider {
    /// The run's ledger row: the files go into place when it says
    /// `succeeded` and are dropped when it says `failed`.
    Ledger,
    /// Sealing was the commit (the file-only target has no ledger).
    Sealed,
}

/// The renames a sealed run still owes its report folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub run_id: Uuid,
    pub decider: Decider,
    /// The run's `--tenant-shard`, so that a shard only finishes its own.
    pub tenant_shard: Option<String>,
    /// (temporary, final) paths, relative to the report folder.
    pub moves: Vec<(PathBuf, PathBuf)>,
    /// Files to remove, relative to the report folder (done before the
    /// moves, so a reader never sees them beside the files that replace them).
    #[serde(default)]
    pub removals: Vec<PathBuf>,
}

const JOURNAL_PREFIX: &str = ".callrollup-pending-";

fn journal_path(out: &Path, run_id: Uuid) -> PathBuf {
    out.join(format!("{JOURNAL_PREFIX}{}.json", run_id.simple()))
}

/// Writes `bytes` to `path` whole or not at all: a hidden temporary
/// sibling, synced, renamed into place, its folder synced.
pub fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    write_whole_with(path, |_, file| {
        file.write_all(bytes).map_err(|e| cannot_write(path, e))
    })
}

/// A temporary file, created here and now: never one that already exists
/// and never through a symbolic link someone planted under its name; not
/// readable by other users (0640, less under a stricter umask).
pub fn create_new(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(path)
}

fn cannot_write(path: &Path, e: std::io::Error) -> Error {
    Error::io(
        format!(
            "cannot write {} (nothing was written); pick a path you can write",
            path.display()
        ),
        e,
    )
}

/// `write_whole` for a writer that fills a file itself: `fill` gets the
/// temporary file, created empty by `create_new`, both open and by a path
/// (for writers that open it themselves). The file is synced, renamed into
/// place and its folder synced, or removed if anything fails.
///
/// The temporary file lives in a folder of its own beside `path`, created
/// here and readable by this user alone, and is reached through that
/// folder's open handle (`/proc/self/fd/N/<name>`): renaming the folder
/// away and planting another under its name cannot redirect the writes.
pub fn write_whole_with(
    path: &Path,
    fill: impl FnOnce(&Path, &mut File) -> Result<()>,
) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    use std::os::unix::io::AsRawFd;
    let name = path
        .file_name()
        .ok_or_else(|| Error::usage(format!("{} is not a file name", path.display())))?;
    // The file is replaced by a rename: a device, a FIFO or a link there
    // would be replaced too (`-o /dev/full` as root turned the device into
    // a regular file), never written through.
    if let Ok(found) = fs::symlink_metadata(path) {
        if !found.file_type().is_file() {
            return Err(Error::usage(format!(
                "{} is not a regular file (a device, a pipe, a link or a folder); the output is written whole by replacing a file: give a file's path, or leave -o out to write to stdout",
                path.display()
            )));
        }
    }
    let private = path.with_file_name(format!(
        ".{}.{}{PRIVATE_SUFFIX}",
        name.to_string_lossy(),
        Uuid::new_v4().simple()
    ));
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    crate::signals::remove_on_stop(&private);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(|e| cannot_write(path, e))?;
    let result = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(&private)
        .map_err(|e| cannot_write(path, e))
        .and_then(|handle| {
            let proc_fd = Path::new("/proc/self/fd");
            let tmp = if proc_fd.is_dir() {
                proc_fd.join(handle.as_raw_fd().to_string()).join(name)
            } else {
                private.join(name)
            };
            let mut file = create_new(&tmp).map_err(|e| cannot_write(path, e))?;
            fill(&tmp, &mut file)?;
            file.sync_all()
                .and_then(|_| fs::rename(&tmp, path))
                .and_then(|_| File::open(folder)?.sync_all())
                .map_err(|e| cannot_write(path, e))
        });
    let _ = fs::remove_dir_all(&private);
    result
}

/// How the private folder of a file being written whole ends.
const PRIVATE_SUFFIX: &str = ".writing";

/// Makes the renames and new entries of a folder durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("cannot sync report folder {}", dir.display()), e))
}

/// Each distinct parent folder of `paths`, synced once.
fn sync_parents<'a>(paths: impl Iterator<Item = &'a Path>) -> Result<()> {
    let mut dirs: Vec<&Path> = paths.filter_map(Path::parent).collect();
    dirs.sort_unstable();
    dirs.dedup();
    dirs.into_iter().try_for_each(sync_dir)
}

/// Renames `tmp` to `path`; a `tmp` already gone while `path` exists was
/// moved before (by an earlier attempt of the same journal).
fn move_into_place(tmp: &Path, path: &Path) -> Result<()> {
    match fs::rename(tmp, path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && path.exists() => Ok(()),
        other => other.map_err(|e| {
            Error::io(
                format!("cannot move report into place at {}", path.display()),
                e,
            )
        }),
    }
}

/// The journals of sealed runs whose renames are not finished, oldest
/// first; an absent folder has none. A run that holds the folder `alone`
/// (a whole run) also removes journals that were never sealed; a shard
/// leaves them, as they may be a sibling shard's being written.
pub fn pending(out: &Path, alone: bool) -> Result<Vec<Journal>> {
    let entries = match fs::read_dir(out) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::io(
                format!("cannot read report folder {}", out.display()),
                e,
            ))
        }
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!(".{JOURNAL_PREFIX}")) && name.ends_with(PRIVATE_SUFFIX) {
            // A journal that was never sealed (`write_whole`'s private
            // folder): its run never reached its commit.
            if alone && entry.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = fs::remove_dir_all(entry.path());
            }
            continue;
        }
        if !name.starts_with(JOURNAL_PREFIX) {
            continue;
        }
        let path = entry.path();
        let journal = match read_journal(out, &path, &name) {
            Ok(journal) => journal,
            Err(why) => {
                // Not a journal a run of this engine wrote for this folder:
                // left where it is, and nothing it names is touched.
                crate::log::info(&format!(
                    "left {} alone: {why}; move it away if no run of yours wrote it",
                    path.display()
                ));
                continue;
            }
        };
        let modified = entry.metadata().and_then(|m| m.modified()).ok();
        found.push((modified, journal));
    }
    found.sort_by_key(|(modified, _)| *modified);
    Ok(found.into_iter().map(|(_, j)| j).collect())
}

/// The largest journal read: a window of 400 days of 4 tables is about
/// 3,200 moves of some 150 bytes each.
const JOURNAL_MAX_BYTES: u64 = 16 << 20;

/// A journal as found in `out`, refused unless it is one this engine could
/// have written for this folder: a regular file of bounded size named
/// after its run, each of whose moves takes a staged temporary of that run
/// (`.<file>.<run>.tmp`) onto the layout's name beside it
/// (`<table>/day=YYYY-MM-DD/<file>`, the run's shard's file or the whole
/// run's; no absolute path, no `..`, no link on the way), and whose
/// removals are only the shard files of day folders a whole run moves its
/// own file into. So a planted journal can at most move a file that is
/// already a staged report into its own place: never a file from outside
/// the folder, never a committed report over another.
fn read_journal(out: &Path, path: &Path, name: &str) -> std::result::Result<Journal, String> {
    let meta = fs::symlink_metadata(path).map_err(|e| format!("cannot read it ({e})"))?;
    if !meta.file_type().is_file() {
        return Err("it is not a regular file".into());
    }
    if meta.len() > JOURNAL_MAX_BYTES {
        return Err(format!("it is larger than {JOURNAL_MAX_BYTES} bytes"));
    }
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read it ({e})"))?;
    let journal: Journal =
        serde_json::from_str(&text).map_err(|e| format!("it is not a callrollup journal ({e})"))?;
    if journal_path(out, journal.run_id).file_name() != Some(std::ffi::OsStr::new(name)) {
        return Err(format!(
            "its name does not match its run {}",
            journal.run_id
        ));
    }
    let shard = match &journal.tenant_shard {
        None => None,
        Some(text) => {
            Some(Shard::parse(text).map_err(|_| format!("its shard {text:?} is not a shard"))?)
        }
    };
    let tag = journal.run_id.simple().to_string();
    // The day folders whose whole file the journal moves into place.
    let mut whole_days: Vec<(String, PathBuf)> = Vec::new();
    for (tmp, last) in &journal.moves {
        let (table, owner) = report_file(out, last)?;
        if owner != shard {
            return Err(format!(
                "it moves {} into place, which is not its run's file",
                last.display()
            ));
        }
        if *tmp != temp_name(last, &tag) {
            return Err(format!(
                "it moves {}, which is not a file its run staged",
                tmp.display()
            ));
        }
        confined_path(out, tmp)?;
        if owner.is_none() {
            whole_days.push((table, last.parent().unwrap_or(last).to_path_buf()));
        }
    }
    for removal in &journal.removals {
        let (table, owner) = report_file(out, removal)?;
        let replaced = owner.is_some()
            && whole_days
                .iter()
                .any(|(t, day)| *t == table && removal.parent() == Some(day.as_path()));
        if !replaced {
            return Err(format!(
                "it removes {}, which no file of its run replaces",
                removal.display()
            ));
        }
    }
    Ok(journal)
}

/// A report file's path relative to the report folder: its table and its
/// owner (`layout::owner_of`), or why it is not one.
fn report_file(
    out: &Path,
    relative: &Path,
) -> std::result::Result<(String, Option<Shard>), String> {
    confined_path(out, relative)?;
    let not_a_report = || {
        format!(
            "it names {}, which is not a report file inside the folder",
            relative.display()
        )
    };
    let table = relative
        .components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .ok_or_else(not_a_report)?
        .to_string();
    let name = relative
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(not_a_report)?;
    let owner = ["parquet", "csv"]
        .iter()
        .find_map(|extension| layout::owner_of(&table, name, extension))
        .ok_or_else(not_a_report)?;
    Ok((table, owner))
}

/// Whether `relative` is `<table>/day=YYYY-MM-DD/<plain name>` inside the
/// report folder, with no link on the way.
fn confined_path(out: &Path, relative: &Path) -> std::result::Result<(), String> {
    use std::path::Component;
    let parts: Vec<Component> = relative.components().collect();
    let plain = parts.len() == 3
        && parts.iter().all(|c| matches!(c, Component::Normal(_)))
        && parts[0]
            .as_os_str()
            .to_str()
            .and_then(Table::named)
            .is_some()
        && parts[1]
            .as_os_str()
            .to_str()
            .and_then(|d| d.strip_prefix("day="))
            .and_then(|d| {
                NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .ok()
                    .map(|day| (d, day))
            })
            .is_some_and(|(d, day)| day.to_string() == d);
    if !plain {
        return Err(format!(
            "it names {}, which is not a report file inside the folder",
            relative.display()
        ));
    }
    // No link on the way: neither the table nor the day folder, nor the
    // file itself, may lead elsewhere.
    let mut at = out.to_path_buf();
    for part in &parts {
        at.push(part);
        if fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!("{} is a symbolic link", at.display()));
        }
    }
    Ok(())
}

impl Journal {
    /// Finishes the renames of a committed run; returns how many files
    /// were still waiting.
    pub fn roll_forward(&self, out: &Path) -> Result<usize> {
        // A shard file goes only where the whole run's staged file is there
        // to replace it: all removals come before the first move, so a
        // journal whose replacement is gone either removed them already or
        // never had one (a planted journal, which must not delete reports).
        let is_staged =
            |tmp: &Path| fs::symlink_metadata(out.join(tmp)).is_ok_and(|m| m.file_type().is_file());
        let removals: Vec<PathBuf> = self
            .removals
            .iter()
            .filter(|removal| {
                self.moves.iter().any(|(tmp, last)| {
                    tmp.parent() == removal.parent()
                        && last.extension() == removal.extension()
                        && is_staged(tmp)
                })
            })
            .map(|p| out.join(p))
            .collect();
        remove_replaced(&removals)?;
        let mut moved = 0;
        for (tmp, path) in &self.moves {
            let (tmp, path) = (out.join(tmp), out.join(path));
            if fs::symlink_metadata(&tmp).is_ok_and(|m| m.file_type().is_file()) {
                move_into_place(&tmp, &path)?;
                moved += 1;
            }
        }
        let finals: Vec<PathBuf> = self.moves.iter().map(|(_, p)| out.join(p)).collect();
        sync_parents(finals.iter().map(PathBuf::as_path))?;
        self.remove(out)?;
        Ok(moved)
    }

    /// Drops the staged files of a run that never committed.
    pub fn roll_back(&self, out: &Path) -> Result<()> {
        for (tmp, _) in &self.moves {
            let tmp = out.join(tmp);
            let _ = fs::remove_file(&tmp);
            // A day folder only that run had written into: nothing is left.
            if let Some(dir) = tmp.parent() {
                let _ = fs::remove_dir(dir);
            }
        }
        self.remove(out)
    }

    fn remove(&self, out: &Path) -> Result<()> {
        match fs::remove_file(journal_path(out, self.run_id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
                format!("cannot remove the journal of run {}", self.run_id),
                e,
            )),
            _ => sync_dir(out),
        }
    }
}

/// Writes every table's day files under temporary names next to their
/// final place. `tag` makes the temporary names unique to this run.
pub fn stage(
    out: &Path,
    tables: &PerTable<&DataFrame>,
    days: &[NaiveDate],
    tag: &str,
) -> Result<StagedFiles> {
    let mut staged = StagedFiles::default();
    match staged.add(out, tables, days, tag, None, None) {
        Ok(()) => Ok(staged),
        Err(e) => {
            staged.abort();
            Err(e)
        }
    }
}

impl StagedFiles {
    /// Stages the day files of more days (see `stage`); on an error the
    /// caller aborts everything staged so far. A `shard` run writes its
    /// own files (`<table>-shard-i-of-n`) beside the other shards'; a whole
    /// run writes `<table>` and replaces every shard file of those days in
    /// the same move (docs/CONTRACT.md §5).
    ///
    /// With `only_tenants`, the run computed those tenants alone: each
    /// day's file keeps every other tenant's rows from the files already in
    /// place and takes the new rows for these, so a `--tenant` run never
    /// leaves a day's reports holding less than all tenants.
    pub fn add(
        &mut self,
        out: &Path,
        tables: &PerTable<&DataFrame>,
        days: &[NaiveDate],
        tag: &str,
        shard: Option<Shard>,
        only_tenants: Option<&[String]>,
    ) -> Result<()> {
        for (spec, df) in tables.iter() {
            let table = spec.name();
            let file_frame = file_frame(df)?;
            let written: Vec<NaiveDate> = days
                .iter()
                .filter(|d| !self.skipped_days.contains(d))
                .copied()
                .collect();
            for day in &written {
                let dir = layout::day_dir(out, table, *day);
                self.create_dir(out, &dir)?;
                remove_stale_temporaries(&dir, &layout::file_stem(table, shard), &self.kept)?;
                // The run checked the layout under the folder's lock
                // (`layout::check_may_write`) before staging.
                let folder = DayFolder::read(out, spec, *day)?.unwrap_or_default();
                if shard.is_none() {
                    self.removals.extend(folder.shard_files.iter().cloned());
                }
                let rows = file_frame
                    .clone()
                    .lazy()
                    .filter(col("day").eq(lit(*day)))
                    .drop(["day"])
                    .collect()?;
                let parquet = dir.join(layout::file_name(table, shard, "parquet"));
                let rows = match only_tenants {
                    Some(tenants) => {
                        // A shard keeps only its own file's other tenants:
                        // the other shards' are in their own files.
                        let own = match shard {
                            Some(shard) => DayFolder {
                                shards: folder
                                    .shards
                                    .iter()
                                    .filter(|(s, _)| *s == shard)
                                    .cloned()
                                    .collect(),
                                whole: None,
                                ..Default::default()
                            },
                            None => folder,
                        };
                        merge_into_existing(&own, rows, spec, tenants)?
                    }
                    None => rows,
                };
                let tmp = temp_name(&parquet, tag);
                self.moves.push((tmp.clone(), parquet));
                write_atomic_part(&tmp, |f| {
                    // LZ4 as `query` writes: zstd took most of the
                    // main thread's time in a full run's profile.
                    ParquetWriter::new(f)
                        .with_compression(ParquetCompression::Lz4Raw)
                        .finish(&mut rows.clone())?;
                    Ok(())
                })?;
                let csv = dir.join(layout::file_name(table, shard, "csv"));
                let tmp = temp_name(&csv, tag);
                self.moves.push((tmp.clone(), csv));
                write_atomic_part(&tmp, |f| {
                    crate::output::write_csv(f, &rows, crate::output::MoneyText::Stored)
                })?;
            }
        }
        Ok(())
    }

    /// Days to write no files for (see `skipped_days`).
    pub fn skip_days(&mut self, days: Vec<NaiveDate>) {
        self.skipped_days = days;
    }

    /// Staged files of journals the run left where they are (see `kept`).
    pub fn keep(&mut self, kept: Vec<PathBuf>) {
        self.kept = kept;
    }

    /// `create_dir_all`, remembering each folder it created. The folders
    /// under `out` (`<table>`, `day=…`) must be real folders: a planted
    /// link would send the run's files elsewhere.
    fn create_dir(&mut self, out: &Path, dir: &Path) -> Result<()> {
        if let Ok(below) = dir.strip_prefix(out) {
            let mut at = out.to_path_buf();
            for part in below.components() {
                at.push(part);
                match fs::symlink_metadata(&at) {
                    Ok(m) if !m.file_type().is_dir() => {
                        return Err(Error::usage(format!(
                            "{} is not a folder (a link or a file is there); the engine writes only into real folders under --out: move it away",
                            at.display()
                        )))
                    }
                    _ => {}
                }
            }
        }
        let mut missing: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .map(Path::to_path_buf)
            .collect();
        fs::create_dir_all(dir).map_err(|e| {
            Error::io(
                format!("cannot create report folder {}; check --out", dir.display()),
                e,
            )
        })?;
        missing.reverse();
        self.created_dirs.extend(missing);
        Ok(())
    }

    /// Writes the journal of every staged rename into `out`, durably,
    /// after making the staged files' folder entries durable. From here
    /// on, `decider` says whether the files go into place.
    pub fn seal(
        &mut self,
        out: &Path,
        run_id: Uuid,
        decider: Decider,
        tenant_shard: Option<String>,
    ) -> Result<()> {
        sync_parents(self.moves.iter().map(|(tmp, _)| tmp.as_path()))?;
        let relative = |p: &Path| p.strip_prefix(out).unwrap_or(p).to_path_buf();
        let journal = Journal {
            run_id,
            decider,
            tenant_shard,
            moves: self
                .moves
                .iter()
                .map(|(tmp, path)| (relative(tmp), relative(path)))
                .collect(),
            removals: self.removals.iter().map(|p| relative(p)).collect(),
        };
        let path = journal_path(out, run_id);
        let text = serde_json::to_string(&journal).expect("a journal serialises");
        write_whole(&path, text.as_bytes())?;
        self.journal = Some(path);
        Ok(())
    }

    /// Renames every staged file into place, makes the renames durable and
    /// removes the journal; returns the final paths.
    pub fn commit(self) -> Result<Vec<PathBuf>> {
        remove_replaced(&self.removals)?;
        let mut done = Vec::with_capacity(self.moves.len());
        for (tmp, path) in &self.moves {
            move_into_place(tmp, path)?;
            if done.is_empty() {
                crate::fault::pause_point("moving_files");
            }
            done.push(path.clone());
        }
        sync_parents(done.iter().map(PathBuf::as_path))?;
        if let Some(journal) = &self.journal {
            fs::remove_file(journal)
                .map_err(|e| Error::io(format!("cannot remove {}", journal.display()), e))?;
            if let Some(dir) = journal.parent() {
                sync_dir(dir)?;
            }
        }
        Ok(done)
    }

    /// Removes the staged files (and the journal); the previous reports
    /// stay untouched.
    pub fn abort(&self) {
        for (tmp, _) in &self.moves {
            let _ = fs::remove_file(tmp);
        }
        if let Some(journal) = &self.journal {
            let _ = fs::remove_file(journal);
        }
        // Deepest first; a folder that holds anything else stays.
        for dir in self.created_dirs.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
    }

    pub fn len(&self) -> usize {
        self.moves.len()
    }

    /// Whether the journal is written (the commit point is reached or near).
    pub fn is_sealed(&self) -> bool {
        self.journal.is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }
}

/// Removes every staged temporary (`.<file>.<tag>.tmp`) in the report
/// folder's day folders but those in `kept`, and day folders left empty;
/// returns how many files went. Only for a run that holds the folder alone.
pub fn remove_unsealed_temporaries(out: &Path, kept: &[PathBuf]) -> Result<usize> {
    let mut removed = 0;
    for table in Table::ALL.map(Table::name) {
        let Ok(days) = fs::read_dir(out.join(table)) else {
            continue;
        };
        for day in days.flatten() {
            let dir = day.path();
            let is_day = day.file_type().is_ok_and(|t| t.is_dir())
                && day.file_name().to_string_lossy().starts_with("day=");
            if !is_day {
                continue;
            }
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let path = entry.path();
                if name.starts_with('.')
                    && name.ends_with(".tmp")
                    && entry.file_type().is_ok_and(|t| t.is_file())
                    && !kept.contains(&path)
                    && fs::remove_file(&path).is_ok()
                {
                    removed += 1;
                }
            }
            // Only an empty folder goes.
            let _ = fs::remove_dir(&dir);
        }
    }
    Ok(removed)
}

/// Temporary files of `stem` left by a run that was killed before it could
/// clean up. Runs hold the lock (of their shard) while staging, so such a
/// file is stale; other shards' files have other stems and are left alone.
fn remove_stale_temporaries(dir: &Path, stem: &str, kept: &[PathBuf]) -> Result<()> {
    let own = [format!(".{stem}.parquet."), format!(".{stem}.csv.")];
    let entries = fs::read_dir(dir)
        .map_err(|e| Error::io(format!("cannot read report folder {}", dir.display()), e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        if own.iter().any(|p| name.starts_with(p.as_str()))
            && name.ends_with(".tmp")
            && !kept.contains(&path)
        {
            let _ = fs::remove_file(path);
        }
    }
    Ok(())
}

/// A day's rows when the run computed `tenants` alone: the rows of every
/// other tenant from the day's committed files (the whole run's, or every
/// shard's, which the new whole file replaces), as they are, with the new
/// rows of these, in the order a whole run writes them.
fn merge_into_existing(
    folder: &DayFolder,
    new_rows: DataFrame,
    table: Table,
    tenants: &[String],
) -> Result<DataFrame> {
    let files = folder.parquet_files();
    if files.is_empty() {
        return Ok(new_rows);
    }
    folder.check_one_truth()?;
    let unreadable = |path: &Path, e: &dyn std::fmt::Display| {
        Error::RunFailed(format!(
            "cannot keep the other tenants' rows of {} ({e}); re-run the whole window without --tenant",
            path.display()
        ))
    };
    let mut merged = DataFrame::empty_with_schema(new_rows.schema());
    for path in files {
        // Only the regular file the folder was read with: a link swapped in
        // since would bring another folder's rows into this one.
        let file = open_report(path).map_err(|e| unreadable(path, &e))?;
        let existing = ParquetReader::new(file)
            .finish()
            .map_err(|e| unreadable(path, &e))?;
        let others = existing
            .lazy()
            .filter(crate::selection::tenant_id_in(tenants).not())
            .collect()
            .map_err(|e| unreadable(path, &e))?;
        let kept =
            crate::frames::conform(others, new_rows.schema()).map_err(|e| unreadable(path, &e))?;
        merged.vstack_mut(&kept)?;
    }
    let mut merged = merged
        .vstack(&new_rows)?
        .sort(table.file_key(), Default::default())?;
    merged.rechunk_mut();
    Ok(merged)
}

/// Opens a committed report file to read it: never through a link, and
/// only a regular file.
pub fn open_report(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.file_type().is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// Removes committed files that the run's own replace (already gone is fine).
fn remove_replaced(paths: &[PathBuf]) -> Result<()> {
    for path in paths {
        match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(
                    format!("cannot remove replaced report {}", path.display()),
                    e,
                ))
            }
            _ => {}
        }
    }
    sync_parents(paths.iter().map(PathBuf::as_path))
}

fn temp_name(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("report");
    path.with_file_name(format!(".{name}.{tag}.tmp"))
}

/// A day's file is small: it is encoded in memory first, so that a failed
/// write (a full disk, a file-size limit) is reported as the I/O error it
/// is rather than as an encoder's.
fn write_atomic_part(path: &Path, write: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> Result<()> {
    let mut bytes = Vec::new();
    write(&mut bytes)?;
    let failed = |e| {
        Error::io(
            format!(
                "cannot write report {}; check --out and its free space",
                path.display()
            ),
            e,
        )
    };
    let mut file = create_new(path).map_err(failed)?;
    file.write_all(&bytes)
        .and_then(|_| file.sync_all())
        .map_err(failed)
}

/// The table as files hold it: money as Decimal(20,6), rounded.
fn file_frame(df: &DataFrame) -> Result<DataFrame> {
    let mut columns = Vec::with_capacity(df.width());
    for c in df.get_columns() {
        columns.push(if money::is_money(c.dtype()) {
            money::to_stored_scale(c)?
        } else {
            c.clone()
        });
    }
    Ok(DataFrame::new(columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_whole_never_writes_through_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.txt");
        fs::write(&outside, b"keep me").unwrap();
        let path = dir.path().join("report.csv");
        // The temporary name an earlier engine used in this process.
        let tmp = dir
            .path()
            .join(format!(".report.csv.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&outside, &tmp).unwrap();
        write_whole(&path, b"figures").unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"keep me");
        // The private folder is gone with the write.
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(PRIVATE_SUFFIX))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(fs::read(&path).unwrap(), b"figures");
        assert!(!fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o007, 0, "{mode:o}");
    }
}
