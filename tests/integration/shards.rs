//! `--tenant-shard i/n`: n shards together give exactly the unsharded
//! result, each writing only its own tenants' rows and files.

use std::collections::BTreeMap;
use std::path::Path;

use crate::util::{stderr_of, summary_rows, TestDb};

const WINDOW: [&str; 4] = ["--from", "2026-03-07", "--to", "2026-03-10"];

/// CSV data lines per table and day, from every file of that table and day.
fn csv_lines(out: &Path) -> BTreeMap<String, Vec<String>> {
    let mut by_table_day: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, bytes) in crate::util::tree(out) {
        if path.extension().and_then(|e| e.to_str()) != Some("csv") {
            continue;
        }
        let key = format!("{}", path.parent().unwrap().display());
        let text = String::from_utf8(bytes).unwrap();
        by_table_day
            .entry(key)
            .or_default()
            .extend(text.lines().skip(1).map(str::to_string));
    }
    for lines in by_table_day.values_mut() {
        lines.sort();
    }
    by_table_day
}

#[test]
fn shards_together_give_the_unsharded_result() {
    let db = TestDb::with_fixture();
    db.cmd()
        .args(["migrate", "--target-schema", "whole"])
        .assert()
        .success();
    let scratch = tempfile::tempdir().unwrap();
    let (whole_out, shard_out) = (scratch.path().join("whole"), scratch.path().join("sharded"));
    db.cmd()
        .arg("run")
        .args(WINDOW)
        .args(["--target-schema", "whole", "--out"])
        .arg(&whole_out)
        .assert()
        .success();
    for i in 0..3 {
        let output = db
            .cmd()
            .arg("run")
            .args(WINDOW)
            .args(["--tenant-shard", &format!("{i}/3"), "--out"])
            .arg(&shard_out)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr_of(&output));
    }
    let whole = summary_rows(&db, "whole");
    assert!(whole.len() > 50);
    assert_eq!(summary_rows(&db, "analytics"), whole);
    assert_eq!(csv_lines(&shard_out), csv_lines(&whole_out));
    assert!(shard_out
        .join("tenant_daily/day=2026-03-08/tenant_daily-shard-2-of-3.parquet")
        .exists());

    // Each row was written by the run of the shard its tenant hashes to,
    // computed here by Postgres with the documented hash.
    let misplaced = db.scalar_i64(
        "SELECT count(*) FROM analytics.tenant_daily d JOIN analytics.rollup_runs r USING (run_id)
         WHERE r.tenant_shard <> ((('x' || left(encode(sha256(convert_to(d.tenant_id::text, 'UTF8')), 'hex'), 8))::bit(32)::bigint % 3) || '/3')",
    );
    assert_eq!(misplaced, 0);
    assert_eq!(
        db.scalar_i64("SELECT count(DISTINCT tenant_shard) FROM analytics.rollup_runs"),
        3
    );
}

#[test]
fn a_shard_of_a_snapshot_equals_the_shard_of_postgres() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let snap = scratch.path().join("snap");
    crate::util::extract(&db, &["--from", "2026-03-07", "--to", "2026-03-10"], &snap);
    for i in 0..2 {
        let shard = format!("{i}/2");
        let (direct, offline) = (
            scratch.path().join(format!("d{i}")),
            scratch.path().join(format!("o{i}")),
        );
        db.cmd()
            .arg("run")
            .args(WINDOW)
            .args(["--tenant-shard", &shard, "--out"])
            .arg(&direct)
            .assert()
            .success();
        TestDb::cmd_without_db()
            .arg("run")
            .args(WINDOW)
            .args(["--tenant-shard", &shard, "--source"])
            .arg(&snap)
            .arg("--out")
            .arg(&offline)
            .assert()
            .success();
        assert_eq!(
            crate::util::tree(&direct),
            crate::util::tree(&offline),
            "shard {shard}"
        );
    }
}

#[test]
fn the_lock_is_per_shard() {
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    let mut holder = db.client();
    holder
        .execute(
            "SELECT pg_advisory_lock(hashtext('callrollup:analytics:shard:1/2'))",
            &[],
        )
        .unwrap();
    let busy = db
        .cmd()
        .arg("run")
        .args(WINDOW)
        .args(["--tenant-shard", "1/2", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(busy.status.code(), Some(4), "{}", stderr_of(&busy));
    assert!(stderr_of(&busy).contains("tenant shard 1/2"));
    db.cmd()
        .arg("run")
        .args(WINDOW)
        .args(["--tenant-shard", "0/2", "--out"])
        .arg(out.path())
        .assert()
        .success();
    // An unsharded run waits for no shard but excludes them all: with a
    // shard holding the shared schema lock, it exits 4.
    holder
        .execute(
            "SELECT pg_advisory_lock_shared(hashtext('callrollup:analytics'))",
            &[],
        )
        .unwrap();
    let whole = db
        .cmd()
        .arg("run")
        .args(WINDOW)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(whole.status.code(), Some(4));
    let bad = db
        .cmd()
        .arg("run")
        .args(WINDOW)
        .args(["--tenant-shard", "2/2"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
