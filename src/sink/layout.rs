//! The report folder's layout, and the rule that keeps one truth per key in
//! it: `DIR/<table>/day=YYYY-MM-DD/` holds either a whole run's files
//! (`<table>.parquet`, `<table>.csv`) or the files of the shards of one
//! shard count (`<table>-shard-i-of-n.parquet`, …), never both and never
//! two counts. A whole run replaces shard files in the same atomic move; a
//! shard run refuses a day that holds a whole run's file or another count's
//! shards (docs/CONTRACT.md §5). Readers check the rule and the keys again,
//! so a report built on a folder that breaks it fails rather than count a
//! tenant twice.
//!
//! Only names that match the layout are the engine's: anything else in a
//! day folder (a copy, a planted file, a staged temporary) is not read.

use std::fs::File;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::error::{Error, Result};
use crate::shard::Shard;
use crate::tables::Table;

/// A report file's name without its extension: the whole run's
/// (`<table>`), or a shard's (`<table>-shard-i-of-n`).
pub fn file_stem(table: &str, shard: Option<Shard>) -> String {
    let suffix = shard.map(|s| s.file_suffix()).unwrap_or_default();
    format!("{table}{suffix}")
}

/// A report file's name for `table`: the whole run's, or a shard's.
pub fn file_name(table: &str, shard: Option<Shard>, extension: &str) -> String {
    format!("{}.{extension}", file_stem(table, shard))
}

/// The day folder of `table` under the report folder `out`.
pub fn day_dir(out: &Path, table: &str, day: NaiveDate) -> PathBuf {
    out.join(table).join(format!("day={day}"))
}

/// Whose file `name` is, when it is one of `table`'s report files with
/// `extension`: Some(None) for the whole run's, Some(Some(shard)) for a
/// shard's; None for anything else. Only the canonical spelling counts
/// (`-shard-01-of-2` is not a shard's file).
pub fn owner_of(table: &str, name: &str, extension: &str) -> Option<Option<Shard>> {
    let stem = name.strip_suffix(extension)?.strip_suffix('.')?;
    if stem == table {
        return Some(None);
    }
    let (index, count) = stem
        .strip_prefix(table)?
        .strip_prefix("-shard-")?
        .split_once("-of-")?;
    let shard = Shard::parse(&format!("{index}/{count}")).ok()?;
    (file_name(table, Some(shard), extension) == name).then_some(Some(shard))
}

/// The committed files of one table's day folder.
#[derive(Debug, Default)]
pub struct DayFolder {
    pub dir: PathBuf,
    /// The whole run's Parquet file.
    pub whole: Option<PathBuf>,
    /// The shards' Parquet files, by shard.
    pub shards: Vec<(Shard, PathBuf)>,
    /// Every committed shard file (Parquet and CSV): what a whole run
    /// removes when it replaces them.
    pub shard_files: Vec<PathBuf>,
}

impl DayFolder {
    /// The day folder of `table` as it is now; None when it does not exist.
    pub fn read(out: &Path, table: Table, day: NaiveDate) -> Result<Option<DayFolder>> {
        let table = table.name();
        let dir = day_dir(out, table, day);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::io(
                    format!("cannot read report folder {}", dir.display()),
                    e,
                ))
            }
        };
        let mut folder = DayFolder {
            dir,
            ..Default::default()
        };
        for entry in entries.flatten() {
            // Only regular files: a link or a folder with a report's name
            // is not a file a run committed.
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let path = entry.path();
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(owner) = owner_of(table, name, "parquet") {
                match owner {
                    None => folder.whole = Some(path),
                    Some(shard) => {
                        folder.shard_files.push(path.clone());
                        folder.shards.push((shard, path));
                    }
                }
            } else if let Some(Some(_)) = owner_of(table, name, "csv") {
                folder.shard_files.push(path);
            }
        }
        folder.shards.sort_by_key(|(s, _)| (s.count, s.index));
        folder.shard_files.sort();
        Ok(Some(folder))
    }

    /// Whether a committed run vouches for every tenant of the day: the
    /// whole run's file, or the files of every shard of one count.
    pub fn is_covered(&self) -> bool {
        if self.whole.is_some() {
            return true;
        }
        let Some(count) = self.shards.first().map(|(s, _)| s.count) else {
            return false;
        };
        (0..count).all(|i| {
            self.shards
                .iter()
                .any(|(s, _)| s.count == count && s.index == i)
        })
    }

    /// The rule readers check: a whole run's file and shard files, or the
    /// shards of two counts, would count their common tenants twice.
    pub fn check_one_truth(&self) -> Result<()> {
        let counts: std::collections::BTreeSet<u32> =
            self.shards.iter().map(|(s, _)| s.count).collect();
        let clash = match (&self.whole, counts.len()) {
            (Some(whole), n) if n > 0 => Some(format!(
                "a whole run's {} beside shard files {}",
                whole.display(),
                self.shard_names()
            )),
            (_, n) if n > 1 => Some(format!(
                "shard files of {} shard counts ({})",
                n,
                self.shard_names()
            )),
            _ => None,
        };
        match clash {
            Some(what) => Err(Error::RunFailed(format!(
                "report folder {} holds {what}: its tenants would be counted twice; re-run the day into this folder without --tenant-shard (it replaces them all), or move the stray files away",
                self.dir.display()
            ))),
            None => Ok(()),
        }
    }

    fn shard_names(&self) -> String {
        self.shards
            .iter()
            .filter_map(|(_, p)| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The Parquet files a reader reads, in name order.
    pub fn parquet_files(&self) -> Vec<&Path> {
        let mut files: Vec<&Path> = self.whole.iter().map(PathBuf::as_path).collect();
        files.extend(self.shards.iter().map(|(_, p)| p.as_path()));
        files
    }
}

/// Refuses, before anything is written, a shard run into days whose
/// folders hold a whole run's files or another shard count's: its file
/// beside them would count tenants twice.
pub fn check_shard_may_write(out: &Path, days: &[NaiveDate], shard: Shard) -> Result<()> {
    for table in Table::ALL {
        for &day in days {
            let folder = DayFolder::read(out, table, day)?.unwrap_or_default();
            let blocker = folder.whole.clone().or_else(|| {
                folder
                    .shards
                    .iter()
                    .find(|(s, _)| s.count != shard.count)
                    .map(|(_, p)| p.clone())
            });
            if let Some(blocker) = blocker {
                return Err(Error::usage(format!(
                    "--tenant-shard {shard} cannot write {day} into {}: {} is there, and a shard's file beside it would count tenants twice; write the shards to another --out, or re-run the window without --tenant-shard",
                    out.display(),
                    blocker.display()
                )));
            }
        }
    }
    Ok(())
}

/// The days a `--tenant` run cannot write files for: their folders hold no
/// committed file to keep the other tenants from (the whole run's or every
/// shard's of one count; for a shard, its own file), so the day's file
/// would hold only the selected tenants yet count as the day's (or the
/// shard's) whole report.
pub fn days_without_other_tenants(
    out: &Path,
    days: &[NaiveDate],
    shard: Option<Shard>,
) -> Result<Vec<NaiveDate>> {
    let mut missing = Vec::new();
    for &day in days {
        for table in Table::ALL {
            let folder = DayFolder::read(out, table, day)?.unwrap_or_default();
            let kept = match shard {
                Some(shard) => folder.shards.iter().any(|(s, _)| *s == shard),
                None => folder.is_covered(),
            };
            if !kept {
                missing.push(day);
                break;
            }
        }
    }
    Ok(missing)
}

/// The lock file of a report folder: whole runs hold it alone, shards
/// share it. A regular file, not the folder: flock on a folder may stay on
/// one machine on NFS, where a lock on a file is the server's.
const FOLDER_LOCK: &str = ".callrollup.lock";

/// The stem of the lock files: `.callrollup.lock` for the folder,
/// `.callrollup-shard-i-of-n.lock` for a shard (`file_name`'s spelling).
const LOCK_STEM: &str = ".callrollup";

/// Held by a shard while it checks which shard counts are running.
const LAYOUT_LOCK: &str = ".callrollup-layout.lock";

/// The lock a run holds on its report folder while it stages and moves
/// files, released when dropped (or when the process dies): a whole run
/// holds the folder alone; a shard shares it with the other shards of its
/// count and holds its own shard's lock file. A shard of another count
/// running at the same time is refused: both would pass the layout check
/// before either committed a file.
pub struct FolderLock {
    _held: Vec<File>,
}

impl FolderLock {
    pub fn take(out: &Path, shard: Option<Shard>) -> Result<FolderLock> {
        let folder = open_lock_file(&out.join(FOLDER_LOCK))?;
        let Some(shard) = shard else {
            flock(&folder, out, libc::LOCK_EX)?;
            return Ok(FolderLock {
                _held: vec![folder],
            });
        };
        flock(&folder, out, libc::LOCK_SH)?;
        // Alone for a moment among shards (a blocking wait of
        // milliseconds): no other shard looks at the lock files while this
        // one decides, so two counts cannot both pass.
        let deciding = flock_waiting(&out.join(LAYOUT_LOCK), out)?;
        if let Some(count) = other_count_running(out, shard)? {
            return Err(Error::Locked {
                what: format!(
                    "report folder {} (shards of --tenant-shard i/{count} are writing into it; shards of two counts would count tenants twice)",
                    out.display()
                ),
            });
        }
        let own = open_lock_file(&out.join(file_name(LOCK_STEM, Some(shard), "lock")))?;
        flock(&own, out, libc::LOCK_EX)?;
        drop(deciding);
        Ok(FolderLock {
            _held: vec![folder, own],
        })
    }
}

/// The count of shards, other than `shard`'s, that hold their lock file in
/// `out` now.
fn other_count_running(out: &Path, shard: Shard) -> Result<Option<u32>> {
    let entries = std::fs::read_dir(out)
        .map_err(|e| Error::io(format!("cannot read report folder {}", out.display()), e))?;
    for entry in entries.flatten() {
        // A shard's lock file is named as its report files are.
        let name = entry.file_name();
        let Some(Some(other)) = name.to_str().and_then(|n| owner_of(LOCK_STEM, n, "lock")) else {
            continue;
        };
        if other.count == shard.count || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let file = open_lock_file(&entry.path())?;
        match flock(&file, out, libc::LOCK_EX) {
            // Taken, so not running; released when dropped.
            Ok(_) => {}
            Err(Error::Locked { .. }) => return Ok(Some(other.count)),
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Opens (creating) a lock file: never through a planted link, never
/// blocking on a planted FIFO, and only a regular file. Read-write where it
/// can (NFS locks a file for writing), read-only where the file is another
/// account's (another service account of the group, on a local disk).
fn open_lock_file(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |write: bool| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .create(write)
            .truncate(false)
            .mode(0o660)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
    };
    let not_a_file = || {
        Error::usage(format!(
            "the lock file {} is not a regular file (a link or a pipe is there); remove it",
            path.display()
        ))
    };
    let file = match open(true) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => open(false),
        other => other,
    }
    .map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => not_a_file(),
        _ => Error::io(format!("cannot open the lock file {}", path.display()), e),
    })?;
    let is_file = file
        .metadata()
        .map_err(|e| Error::io(format!("cannot read the lock file {}", path.display()), e))?
        .file_type()
        .is_file();
    if !is_file {
        return Err(not_a_file());
    }
    Ok(file)
}

/// An exclusive lock other runs hold for moments only: waited for, up to
/// ten seconds, and not past a stop signal.
fn flock_waiting(path: &Path, out: &Path) -> Result<File> {
    let file = open_lock_file(path)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match flock(&file, out, libc::LOCK_EX) {
            Err(Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                crate::signals::check()?;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Ok(()) => return Ok(file),
            Err(e) => return Err(e),
        }
    }
}

/// Takes the lock on `file` without waiting; it is held as long as the
/// file stays open.
fn flock(file: &File, out: &Path, mode: libc::c_int) -> Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on an open descriptor; no memory is shared.
    if unsafe { libc::flock(file.as_raw_fd(), mode | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::WouldBlock {
            return Err(Error::Locked {
                what: format!("report folder {}", out.display()),
            });
        }
        return Err(Error::io(format!("cannot lock {}", out.display()), e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_of_knows_only_the_layouts_names() {
        let shard = |s: &str| Some(Some(Shard::parse(s).unwrap()));
        assert_eq!(
            owner_of("tenant_daily", "tenant_daily.parquet", "parquet"),
            Some(None)
        );
        assert_eq!(
            owner_of(
                "tenant_daily",
                "tenant_daily-shard-1-of-4.parquet",
                "parquet"
            ),
            shard("1/4")
        );
        assert_eq!(
            owner_of("tenant_daily", "tenant_daily-shard-1-of-4.csv", "csv"),
            shard("1/4")
        );
        // The shard lock files are spelled the same way.
        assert_eq!(
            owner_of(LOCK_STEM, ".callrollup-shard-1-of-4.lock", "lock"),
            shard("1/4")
        );
        assert_eq!(owner_of(LOCK_STEM, FOLDER_LOCK, "lock"), Some(None));
        for other in [
            "tenant_daily-shard-01-of-4.parquet",
            "tenant_daily-shard-4-of-4.parquet",
            "tenant_daily-shard-1-of-0.parquet",
            "tenant_daily_outcomes.parquet",
            "tenant_daily (1).parquet",
            "copy-tenant_daily.parquet",
            ".tenant_daily.parquet.abc.tmp",
            "tenant_daily.parquet.bak",
            "tenant_dailyparquet",
        ] {
            assert_eq!(owner_of("tenant_daily", other, "parquet"), None, "{other}");
        }
    }
}
