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
        self.paused_with(out, point, &[])
    }

    /// `paused`, with more arguments.
    fn paused_with(&self, out: &Path, point: &str, extra: &[&str]) -> std::process::Child {
        let args = [
            &["run"][..],
            &WINDOW[..],
            &["--source", self.snapshot.to_str().unwrap()],
            &["--out", out.to_str().unwrap()],
            extra,
        ]
        .concat();
        spawn_paused(None, &args, point)
    }

    /// `run` of 2026-03-11..12 only, from the snapshot into `out`: days
    /// the window's other days (2026-03-07 most often) are not among.
    fn run_later_days(&self, out: &Path, extra: &[&str]) -> std::process::Output {
        self.run_days(&["--from", "2026-03-11", "--to", "2026-03-12"], out, extra)
    }

    /// `run` of the window from the snapshot into `out` (no database).
    fn run(&self, out: &Path, extra: &[&str]) -> std::process::Output {
        self.run_days(&WINDOW, out, extra)
    }

    fn run_days(&self, days: &[&str], out: &Path, extra: &[&str]) -> std::process::Output {
        TestDb::cmd_without_db()
            .arg("run")
            .args(days)
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

/// The run said it left a planted journal alone, and did.
fn assert_journal_left_alone(out: &std::process::Output, journal: &Path) {
    let err = crate::util::stderr_of(out);
    assert!(err.contains("left") && err.contains("alone"), "{err}");
    assert!(journal.exists(), "the journal is left where it is");
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
    // The folder's lock file stays (removing a lock file races the next
    // run that opens it); nothing else does.
    let left: Vec<_> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != ".callrollup.lock")
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
    assert_journal_left_alone(&ok(s.run(&reports, &[])), &journal);
    assert_eq!(std::fs::read(&outside).unwrap(), b"not yours");
    assert_eq!(visible(&reports), before);
}

#[test]
fn a_planted_journal_cannot_swap_or_delete_committed_reports_inside_the_folder() {
    let s = Scratch::new();
    let reports = s.path("reports");
    ok(s.run(&reports, &[]));
    let before = visible(&reports);
    let day = "tenant_daily/day=2026-03-07";
    let journal = reports.join(".callrollup-pending-0f0e0d0c0b0a09080706050403020101.json");
    for planted in [
        // A committed CSV moved over the day's Parquet file.
        serde_json::json!({"moves": [[format!("{day}/tenant_daily.csv"), format!("{day}/tenant_daily.parquet")]], "removals": []}),
        // A whole run's file removed by a journal that replaces nothing.
        serde_json::json!({"moves": [], "removals": [format!("{day}/tenant_daily.parquet")]}),
        // A staged name of another run, and a shard's file for a whole run.
        serde_json::json!({"moves": [[format!("{day}/.tenant_daily.csv.0f0e0d0c0b0a09080706050403020100.tmp"), format!("{day}/tenant_daily.csv")]], "removals": []}),
        serde_json::json!({"moves": [[format!("{day}/.tenant_daily-shard-0-of-2.csv.0f0e0d0c0b0a09080706050403020101.tmp"), format!("{day}/tenant_daily-shard-0-of-2.csv")]], "removals": []}),
    ] {
        let mut planted = planted;
        planted["run_id"] = "0f0e0d0c-0b0a-0908-0706-050403020101".into();
        planted["decider"] = "sealed".into();
        planted["tenant_shard"] = serde_json::Value::Null;
        std::fs::write(&journal, planted.to_string()).unwrap();
        // A run of other days: only the journal could touch 2026-03-07.
        assert_journal_left_alone(&ok(s.run_later_days(&reports, &[])), &journal);
        assert_eq!(visible(&reports), before, "{planted}");
    }
}

#[test]
fn a_planted_journal_whose_replacement_is_not_staged_removes_no_shard_file() {
    let s = Scratch::new();
    let sharded = s.path("sharded");
    for shard in ["0/2", "1/2"] {
        ok(s.run(&sharded, &["--tenant-shard", shard]));
    }
    let day = "tenant_daily/day=2026-03-07";
    let before = visible(&sharded.join(day));
    let run = "0f0e0d0c0b0a09080706050403020102";
    // The shape a whole run's journal has, with no staged file behind it.
    let planted = serde_json::json!({
        "run_id": "0f0e0d0c-0b0a-0908-0706-050403020102",
        "decider": "sealed",
        "tenant_shard": null,
        "moves": [[format!("{day}/.tenant_daily.parquet.{run}.tmp"), format!("{day}/tenant_daily.parquet")]],
        "removals": [format!("{day}/tenant_daily-shard-0-of-2.parquet"), format!("{day}/tenant_daily-shard-1-of-2.parquet")]
    });
    std::fs::write(
        sharded.join(format!(".callrollup-pending-{run}.json")),
        planted.to_string(),
    )
    .unwrap();
    // A shard run refuses to finish a whole run's journal: siblings may be
    // writing beside the files it would replace.
    assert_fails(
        &s.run_later_days(&sharded, &["--tenant-shard", "0/2"]),
        2,
        "without --tenant-shard",
    );
    // A whole run of other days finishes it, and removes nothing of 03-07.
    ok(s.run_later_days(&sharded, &[]));
    assert_eq!(visible(&sharded.join(day)), before);
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
    ok(s.run_later_days(&reports, &[]));
    assert_eq!(staged(&reports), 0);
}

#[test]
fn a_tenant_run_into_a_day_without_a_complete_report_is_refused() {
    let s = Scratch::new();
    let one = "a0000000-0000-0000-0000-000000000001";
    // No file at all: the whole file would hold one tenant yet count as
    // the day's report.
    let fresh = s.path("fresh");
    assert_fails(
        &s.run(&fresh, &["--tenant", one]),
        2,
        "--tenant cannot write",
    );
    assert!(visible(&fresh).is_empty());
    // One shard of two: the rest of the tenants are in no file.
    let half = s.path("half");
    ok(s.run(&half, &["--tenant-shard", "0/2"]));
    let before = tree(&half);
    assert_fails(
        &s.run(&half, &["--tenant", one]),
        2,
        "--tenant cannot write",
    );
    // A shard's --tenant run needs that shard's own file.
    assert_fails(
        &s.run(&half, &["--tenant-shard", "1/2", "--tenant", one]),
        2,
        "shard 1/2's file",
    );
    assert_eq!(tree(&half), before, "a refused run wrote nothing");
}

#[test]
fn shard_runs_of_two_counts_at_once_are_refused() {
    let s = Scratch::new();
    let reports = s.path("reports");
    // Neither has committed a file yet, so the layout check alone would
    // let both through.
    let mut first = s.paused_with(&reports, "before_seal", &["--tenant-shard", "0/2"]);
    assert_fails(
        &s.run(&reports, &["--tenant-shard", "0/3"]),
        4,
        "shards of --tenant-shard i/2",
    );
    // A shard of the same count runs beside it.
    ok(s.run(&reports, &["--tenant-shard", "1/2"]));
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn a_linked_day_folder_or_a_planted_lock_fifo_is_refused_not_followed() {
    let s = Scratch::new();
    let reports = s.path("reports");
    ok(s.run(&reports, &[]));
    // A day folder swapped for a link to a folder outside.
    let elsewhere = s.path("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let day = day_folder(&reports, "tenant_daily", "2026-03-07");
    std::fs::remove_dir_all(&day).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &day).unwrap();
    assert_fails(&s.run(&reports, &[]), 2, "not a folder");
    assert!(
        std::fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "nothing was written through the link"
    );
    std::fs::remove_file(&day).unwrap();
    ok(s.run(&reports, &[]));
    // A FIFO under the lock file's name: opening it must not block.
    let lock = reports.join(".callrollup.lock");
    std::fs::remove_file(&lock).unwrap();
    let fifo = std::ffi::CString::new(lock.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("callrollup"))
        .env_clear()
        .arg("run")
        .args(WINDOW)
        .arg("--source")
        .arg(&s.snapshot)
        .arg("--out")
        .arg(&reports)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = crate::util::ends_within(child, 60, "the run blocked on a FIFO");
    assert_fails(&out, 2, "not a regular file");
}

#[test]
fn a_tenant_run_with_a_database_target_writes_its_rows_but_no_file_for_days_without_a_report() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let fresh = scratch.path().join("fresh");
    let one = "a0000000-0000-0000-0000-000000000001";
    // An ephemeral pod's empty --out: the database holds the truth, so the
    // rows are written; a file of one tenant would pass for the whole day.
    let output = ok(db
        .cmd()
        .args(["run", "--from", "2026-03-07", "--to", "2026-03-08"])
        .args(["--tenant", one, "--out"])
        .arg(&fresh)
        .output()
        .unwrap());
    let err = crate::util::stderr_of(&output);
    assert!(err.contains("no report files for 2 day(s)"), "{err}");
    assert!(visible(&fresh).is_empty(), "{:?}", visible(&fresh));
    assert_eq!(
        db.scalar_i64(&format!(
            "SELECT count(*) FROM analytics.tenant_daily WHERE tenant_id = '{one}'"
        )),
        2
    );
}
