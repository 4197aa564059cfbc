//! Hostile or careless input that must not reach the host or a reader
//! raw: numbers that feed date arithmetic, control characters in the
//! platform's names, and who may read what the engine writes.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use crate::util::{assert_fails, extract, ok, run, stderr_of, stdout_of, TestDb};

#[test]
fn numbers_that_feed_date_arithmetic_are_range_checked_not_a_panic() {
    let scratch = tempfile::tempdir().unwrap();
    let snapshot = scratch.path().join("snapshot");
    for (args, needle) in [
        (
            vec!["generate", "--days", "4000000000"],
            "--days 4000000000",
        ),
        (vec!["generate", "--tenants", "100000000000"], "--tenants"),
        (vec!["generate", "--calls", "99999999999999"], "--calls"),
        (
            vec!["generate", "--transcript-bytes", "99999999999"],
            "--transcript-bytes",
        ),
        (vec!["demo", "--days", "0"], "--days 0"),
        (
            vec!["generate", "--end", "262142-12-31", "--days", "2"],
            "is not a calendar date",
        ),
        (vec!["generate", "--end", "9999-12-31"], "--end 9999-12-31"),
        (
            vec!["generate", "--end", "1970-01-05", "--days", "30"],
            "--end 1970-01-05",
        ),
    ] {
        let output = TestDb::cmd_without_db()
            .args(&args)
            .arg(if args[0] == "demo" {
                "--out"
            } else {
                "--snapshot"
            })
            .arg(&snapshot)
            .output()
            .unwrap();
        let err = assert_fails(&output, 2, needle);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // A chunk longer than the calendar is the whole window.
    let db = TestDb::with_fixture();
    extract(
        &db,
        &["--from", "2026-03-07", "--to", "2026-03-08"],
        &snapshot,
    );
    let output = ok(TestDb::cmd_without_db()
        .args(["run", "--from", "2026-03-07", "--to", "2026-03-08"])
        .args(["--chunk-days", "4294967295", "--source"])
        .arg(&snapshot)
        .arg("--out")
        .arg(scratch.path().join("reports"))
        .output()
        .unwrap());
    assert!(stdout_of(&output).contains("succeeded"));
}

/// Every mode under `dir`, folders included.
fn modes(dir: &Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            out.push((path.display().to_string(), mode));
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out
}

#[test]
fn report_files_and_metrics_are_not_readable_by_other_users() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let reports = scratch.path().join("reports");
    let metrics = scratch.path().join("callrollup.prom");
    run(
        &db,
        &reports,
        &[
            "--from",
            "2026-03-07",
            "--to",
            "2026-03-08",
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
    );
    let mut all = modes(&reports);
    all.push((
        metrics.display().to_string(),
        std::fs::metadata(&metrics).unwrap().permissions().mode(),
    ));
    assert!(all.len() > 8);
    for (path, mode) in all {
        assert_eq!(mode & 0o007, 0, "{path} is {mode:o}");
    }
}

#[test]
fn control_characters_in_names_never_reach_the_terminal_or_the_svg() {
    let db = TestDb::with_fixture();
    // A name that clears the screen and rings the bell, with a
    // right-to-left override; an error type with a newline and an escape.
    db.exec(
        "UPDATE tenants SET business_name = E'Evil\\u001b[2J\\u0007 Co\\u202egnp.exe'
         WHERE tenant_id = 'a0000000-0000-0000-0000-000000000001';
         UPDATE system_errors SET error_type = E'llm\\n\\u001b]0;owned\\u0007'
         WHERE error_type = 'llm_error'",
    );
    let scratch = tempfile::tempdir().unwrap();
    run(
        &db,
        &scratch.path().join("reports"),
        &["--from", "2026-03-05", "--to", "2026-03-20"],
    );
    let period = ["--from", "2026-03-14", "--to", "2026-03-20"];
    let svg = scratch.path().join("errors.svg");
    for by in ["tenant", "error_type"] {
        let output = ok(db
            .cmd()
            .arg("errors")
            .args(period)
            .args(["--by", by, "--chart", svg.to_str().unwrap()])
            .output()
            .unwrap());
        let table = stdout_of(&output);
        for raw in ['\u{1b}', '\u{7}', '\u{202e}'] {
            assert!(!table.contains(raw), "--by {by}: {raw:?} in {table}");
        }
        assert!(!stderr_of(&output).contains('\u{1b}'));
        let picture = std::fs::read_to_string(&svg).unwrap();
        roxmltree::Document::parse(&picture).expect("the SVG is XML");
        assert!(!picture.contains('\u{1b}'), "--by {by}");
    }
    // Finance's table shows the name, not what it would do.
    let costs = stdout_of(&ok(db.cmd().arg("costs").args(period).output().unwrap()));
    assert!(costs.contains("Evil"), "{costs}");
    for raw in ['\u{1b}', '\u{7}', '\u{202e}'] {
        assert!(!costs.contains(raw), "{raw:?} in {costs}");
    }
    // Nor does an engineer's ad-hoc query print them raw.
    let query = stdout_of(&ok(db
        .cmd()
        .args([
            "query",
            "SELECT business_name, tenant_id FROM tenant_daily GROUP BY business_name, tenant_id",
        ])
        .args(period)
        .output()
        .unwrap()));
    assert!(query.contains("Evil"), "{query}");
    for raw in ['\u{1b}', '\u{7}', '\u{202e}'] {
        assert!(!query.contains(raw), "{raw:?} in {query}");
    }
}

/// `errors --since 1é` panicked (exit 101: a byte slice inside a
/// character), and a year −262143 passed the date parser and panicked in
/// date arithmetic: every date is a year 0001–9999, lengths are split by
/// characters.
#[test]
fn a_multibyte_length_and_year_minus_262143_panicked() {
    let db = TestDb::with_fixture();
    db.migrate();
    for (args, needle) in [
        (vec!["errors", "--since", "1é"], "is not a length"),
        (vec!["errors", "--since", "é"], "is not a length"),
        (
            vec!["errors", "--from=-262143-01-01", "--to", "2026-01-01"],
            "is not a calendar date",
        ),
        (
            vec!["costs", "--from=-262143-01-01", "--to", "2026-01-01"],
            "is not a calendar date",
        ),
        (vec!["costs", "--month", "0000-01"], "is not a month"),
        (
            vec!["changes", "--since=-262143-01-01"],
            "is neither a day nor a moment",
        ),
        (
            vec!["run", "--from", "0000-12-31", "--to", "0001-01-01"],
            "is not a calendar date",
        ),
    ] {
        let output = db.cmd().args(&args).output().unwrap();
        let err = assert_fails(&output, 2, needle);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // The calendar's first and last days are answered: the errors of
    // 0001-01-01 read a year 0 (a panic on the report folder, "0000-12-25"
    // refused by Postgres), those of 9999-12-31 a year 10000; a one-pass
    // read of 0001-01-01 asked for the errors from a day before it, a
    // year 0 Postgres refuses.
    let out = tempfile::tempdir().unwrap();
    let out = out.path().to_str().unwrap();
    for args in [
        vec![
            "run",
            "--from",
            "0001-01-01",
            "--to",
            "0001-01-02",
            "--out",
            out,
        ],
        vec![
            "run",
            "--from",
            "9999-12-30",
            "--to",
            "9999-12-31",
            "--allow-partial",
            "--out",
            out,
        ],
        vec!["errors", "--from", "0001-01-01", "--to", "0001-01-02"],
        vec!["errors", "--from", "9999-12-30", "--to", "9999-12-31"],
        vec![
            "errors",
            "--by",
            "tenant",
            "--from",
            "0001-01-01",
            "--to",
            "0001-01-31",
        ],
        vec![
            "costs",
            "--from",
            "0001-01-01",
            "--to",
            "0001-01-02",
            "--by",
            "day",
        ],
    ] {
        let output = db.cmd().args(&args).output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", stderr_of(&output));
    }
}

/// `changes -o /dev/full` (as root) exited 0 and turned the device into a
/// regular file: `-o` replaces its file by a rename, so a device, a FIFO,
/// a link or a folder there is refused, never replaced.
#[test]
fn an_output_path_that_is_no_regular_file_was_replaced() {
    let db = TestDb::with_fixture();
    db.migrate();
    let scratch = tempfile::tempdir().unwrap();
    let target = scratch.path().join("target.csv");
    std::fs::write(&target, "kept\n").unwrap();
    let link = scratch.path().join("link.csv");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let fifo = scratch.path().join("fifo.csv");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a path we own.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    for path in [&link, &fifo, &scratch.path().to_path_buf()] {
        for command in [
            vec!["costs", "--month", "2026-03", "--format", "csv"],
            vec!["changes", "--format", "json"],
        ] {
            let output = db
                .cmd()
                .args(&command)
                .arg("-o")
                .arg(path)
                .output()
                .unwrap();
            assert_fails(&output, 2, "is not a regular file");
        }
    }
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "kept\n");
}
