//! Report folders as readers meet them: one truth per key whatever mix of
//! whole and shard runs wrote them, files planted beside the engine's,
//! days with no committed file, journals that point outside the folder,
//! and two runs at once.

use std::path::{Path, PathBuf};

use crate::util::{assert_fails, extract, ok, spawn_paused, stdout_of, tree, visible, TestDb};

const WINDOW: [&str; 4] = ["--from", "2026-03-05", "--to", "2026-03-12"];

/// A snapshot of the fixture's window, and a scratch folder beside it.
struct Scratch {
    _db: TestDb,
    dir: tempfile::TempDir,
    snapshot: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let db = TestDb::with_fixture();
        let dir = tempfile::tempdir().unwrap();
        let snapshot = dir.path().join("snapshot");
        extract(&db, &WINDOW, &snapshot);
        Scratch {
            _db: db,
            dir,
            snapshot,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `run` of the window from the snapshot into `out`, paused at `point`.
    fn paused(&self, out: &Path, point: &str) -> std::process::Child {
        let args = [
            &["run"][..],
            &WINDOW[..],
            &["--source", self.snapshot.to_str().unwrap()],
            &["--out", out.to_str().unwrap()],
        ]
        .concat();
        spawn_paused(None, &args, point)
    }

    /// `run` of the window from the snapshot into `out` (no database).
    fn run(&self, out: &Path, extra: &[&str]) -> std::process::Output {
        TestDb::cmd_without_db()
            .arg("run")
            .args(WINDOW)
            .arg("--source")
            .arg(&self.snapshot)
            .args(extra)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    }
}

/// `costs` of the window by tenant as JSON, without the line that names
/// the folder it was read from.
fn figures(output: std::process::Output) -> String {
    stdout_of(&ok(output))
        .lines()
        .filter(|l| !l.contains("\"read_from\""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `costs` of the window by tenant, as JSON, from a report folder.
fn costs(reports: &Path, extra: &[&str]) -> std::process::Output {
    TestDb::cmd_without_db()
        .arg("costs")
        .args(WINDOW)
        .args(["--format", "json", "--reports"])
        .arg(reports)
        .args(extra)
        .output()
        .unwrap()
}

fn day_folder(out: &Path, table: &str, day: &str) -> PathBuf {
    out.join(table).join(format!("day={day}"))
}

#[test]
fn a_shard_run_into_a_whole_runs_folder_is_refused_so_costs_cannot_double() {
    let s = Scratch::new();
    let reports = s.path("reports");
    ok(s.run(&reports, &[]));
    let before = tree(&reports);
    let whole_costs = figures(costs(&reports, &[]));

    // What deploy/kubernetes did: the nightly whole run, then shards into
    // the same volume. Each shard's file beside the whole file doubled
    // every tenant (400,000 calls instead of 200,000 on the demo).
    for shard in ["0/2", "1/2"] {
        let out = s.run(&reports, &["--tenant-shard", shard]);
        assert_fails(&out, 2, "would count tenants twice");
    }
    assert_eq!(tree(&reports), before, "a refused shard run wrote nothing");
    assert_eq!(figures(costs(&reports, &[])), whole_costs);
    ok(costs(
        &reports,
        &["--reconcile", "--source", s.snapshot.to_str().unwrap()],
    ));
}

#[test]
fn a_whole_run_replaces_the_shard_files_of_its_days_in_the_same_move() {
    let s = Scratch::new();
    let (whole, mixed) = (s.path("whole"), s.path("mixed"));
    ok(s.run(&whole, &[]));
    for shard in ["0/2", "1/2"] {
        ok(s.run(&mixed, &["--tenant-shard", shard]));
    }
    // The shards together give the whole run's figures.
    let whole_costs = figures(costs(&whole, &[]));
    assert_eq!(figures(costs(&mixed, &[])), whole_costs);
    // Another shard count cannot join them.
    assert_fails(
        &s.run(&mixed, &["--tenant-shard", "0/3"]),
        2,
        "would count tenants twice",
    );
    // A whole run leaves only its own files: exactly the whole folder's.
    ok(s.run(&mixed, &[]));
    assert_eq!(visible(&mixed), visible(&whole));
    assert_eq!(figures(costs(&mixed, &[])), whole_costs);
    // And a --tenant run keeps every other tenant's rows in the whole file.
    let one = "a0000000-0000-0000-0000-000000000001";
    ok(s.run(&mixed, &["--tenant", one]));
    assert_eq!(visible(&mixed), visible(&whole));
}

#[test]
fn a_folder_that_mixes_whole_and_shard_files_fails_every_reader_naming_them() {
    let s = Scratch::new();
    let (whole, sharded) = (s.path("whole"), s.path("sharded"));
    ok(s.run(&whole, &[]));
    for shard in ["0/2", "1/2"] {
        ok(s.run(&sharded, &["--tenant-shard", shard]));
    }
    // What an older engine, or a hand copy, left behind: a whole run's
    // file beside the shards' files of the same day.
    let day = day_folder(&sharded, "tenant_daily", "2026-03-07");
    std::fs::copy(
        day_folder(&whole, "tenant_daily", "2026-03-07").join("tenant_daily.parquet"),
        day.join("tenant_daily.parquet"),
    )
    .unwrap();
    let err = assert_fails(&costs(&sharded, &[]), 1, "counted twice");
    assert!(err.contains("tenant_daily-shard-0-of-2.parquet"), "{err}");
    assert_fails(
        &TestDb::cmd_without_db()
            .args(["errors", "--by", "tenant", "--reports"])
            .arg(&sharded)
            .args(WINDOW)
            .output()
            .unwrap(),
        1,
        "counted twice",
    );
    assert_fails(
        &TestDb::cmd_without_db()
            .args([
                "query",
                "SELECT sum(calls) AS calls FROM tenant_daily",
                "--reports",
            ])
            .arg(&sharded)
            .args(WINDOW)
            .output()
            .unwrap(),
        1,
        "counted twice",
    );
    // Shard files whose keys overlap (one shard's file copied over the
    // other's): the key check names the files.
    std::fs::remove_file(day.join("tenant_daily.parquet")).unwrap();
    std::fs::copy(
        day.join("tenant_daily-shard-0-of-2.parquet"),
        day.join("tenant_daily-shard-1-of-2.parquet"),
    )
    .unwrap();
    let err = assert_fails(&costs(&sharded, &[]), 1, "appears more than once");
    assert!(err.contains("tenant_daily-shard-1-of-2.parquet"), "{err}");
}

#[test]
fn files_planted_in_a_day_folder_under_other_names_are_not_read() {
    let s = Scratch::new();
    let reports = s.path("reports");
    ok(s.run(&reports, &[]));
    let clean = figures(costs(&reports, &[]));
    let day = day_folder(&reports, "tenant_daily", "2026-03-07");
    for name in [
        "evil.parquet",
        "tenant_daily (1).parquet",
        "tenant_daily.parquet.bak",
        "tenant_daily-shard-01-of-2.parquet",
    ] {
        std::fs::copy(day.join("tenant_daily.parquet"), day.join(name)).unwrap();
    }
    assert_eq!(figures(costs(&reports, &[])), clean);
}

#[test]
fn a_day_folder_without_committed_files_is_not_covered() {
    let s = Scratch::new();
    let reports = s.path("reports");
    ok(s.run(&reports, &[]));
    // A killed run's leftovers: an empty day folder, and one holding only
    // a staged temporary.
    let empty = day_folder(&reports, "tenant_daily", "2026-03-13");
    let staged = day_folder(&reports, "tenant_daily", "2026-03-14");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::create_dir_all(&staged).unwrap();
    std::fs::write(staged.join(".tenant_daily.parquet.abc.tmp"), b"x").unwrap();
    let out = TestDb::cmd_without_db()
        .args(["costs", "--from", "2026-03-05", "--to", "2026-03-14"])
        .args(["--require-complete", "--reports"])
        .arg(&reports)
        .output()
        .unwrap();
    let err = assert_fails(&out, 3, "2026-03-13");
    assert!(err.contains("2026-03-14"), "{err}");
}

#[test]
fn a_stopped_first_run_leaves_no_empty_day_folders() {
    let s = Scratch::new();
    let reports = s.path("reports");
    let mut child = s.paused(&reports, "before_seal");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(1));
    let left: Vec<_> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // So no reader counts those days as covered.
    assert_fails(&costs(&reports, &[]), 2, "holds no reports");
}

#[test]
fn a_second_run_into_the_same_report_folder_exits_4() {
    let s = Scratch::new();
    let reports = s.path("reports");
    let mut first = s.paused(&reports, "before_seal");
    assert_fails(&s.run(&reports, &[]), 4, "report folder");
    assert_fails(
        &s.run(&reports, &["--tenant-shard", "0/2"]),
        4,
        "report folder",
    );
    first.kill().unwrap();
    first.wait().unwrap();
    ok(s.run(&reports, &[]));
}

#[test]
fn a_planted_journal_cannot_move_a_file_from_outside_the_folder() {
    let s = Scratch::new();
    let reports = s.path("reports");
    ok(s.run(&reports, &[]));
    let before = visible(&reports);
    let outside = s.path("secret.txt");
    std::fs::write(&outside, b"not yours").unwrap();
    let run_id = "0f0e0d0c-0b0a-0908-0706-050403020100";
    let journal = reports.join(".callrollup-pending-0f0e0d0c0b0a09080706050403020100.json");
    let planted = serde_json::json!({
        "run_id": run_id,
        "decider": "sealed",
        "tenant_shard": null,
        "moves": [
            [outside.to_str().unwrap(), "tenant_daily/day=2026-03-07/tenant_daily.csv"],
            ["../secret.txt", "tenant_daily/day=2026-03-08/tenant_daily.csv"]
        ],
        "removals": ["/etc/hostname"]
    });
    std::fs::write(&journal, planted.to_string()).unwrap();
    let out = ok(s.run(&reports, &[]));
    assert!(
        crate::util::stderr_of(&out).contains("left"),
        "{}",
        crate::util::stderr_of(&out)
    );
    assert_eq!(std::fs::read(&outside).unwrap(), b"not yours");
    assert!(journal.exists(), "the journal is left where it is");
    assert_eq!(visible(&reports), before);
}

#[test]
fn a_killed_runs_staged_files_are_removed_by_the_next_run_whatever_its_window() {
    let s = Scratch::new();
    let reports = s.path("reports");
    ok(s.run(&reports, &[]));
    // Killed (-9) between two chunks, after its first days were staged.
    let db = TestDb::with_fixture();
    let mut child = spawn_paused(
        Some(&db),
        &[
            &["run"][..],
            &WINDOW[..],
            &["--out", reports.to_str().unwrap()],
        ]
        .concat(),
        "between_chunks",
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let staged = |dir: &Path| {
        tree(dir)
            .into_iter()
            .filter(|(p, _)| p.to_string_lossy().ends_with(".tmp"))
            .count()
    };
    assert!(staged(&reports) > 0, "the killed run staged files");
    // The next run covers other days: the stale files still go.
    ok(TestDb::cmd_without_db()
        .args([
            "run",
            "--from",
            "2026-03-11",
            "--to",
            "2026-03-12",
            "--source",
        ])
        .arg(&s.snapshot)
        .arg("--out")
        .arg(&reports)
        .output()
        .unwrap());
    assert_eq!(staged(&reports), 0);
}
