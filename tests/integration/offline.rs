//! Working without production: `generate`, `extract`, `run --source` and
//! `demo`.

use std::path::Path;

use crate::util::{stderr_of, stdout_of, tree, TestDb};

fn ok(output: std::process::Output) -> std::process::Output {
    assert!(output.status.success(), "{}", stderr_of(&output));
    output
}

/// Runs the window from Postgres and from an extracted snapshot (with no
/// database at all) and asserts that every report file is identical.
fn assert_snapshot_round_trip(db: &TestDb, from: &str, to: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let (direct, snap, offline) = (
        scratch.path().join("direct"),
        scratch.path().join("snap"),
        scratch.path().join("offline"),
    );
    ok(db
        .cmd()
        .args(["run", "--from", from, "--to", to, "--out"])
        .arg(&direct)
        .output()
        .unwrap());
    ok(db
        .cmd()
        .args(["extract", "--from", from, "--to", to, "--out"])
        .arg(&snap)
        .output()
        .unwrap());
    let output = ok(TestDb::cmd_without_db()
        .args(["run", "--from", from, "--to", to, "--source"])
        .arg(&snap)
        .arg("--out")
        .arg(&offline)
        .output()
        .unwrap());
    assert!(
        stdout_of(&output).contains("succeeded"),
        "{}",
        stdout_of(&output)
    );
    let (a, b) = (tree(&direct), tree(&offline));
    assert!(a.len() > 8);
    assert_eq!(a.len(), b.len());
    for ((pa, ba), (pb, bb)) in a.iter().zip(&b) {
        assert_eq!(pa, pb);
        assert!(
            ba == bb,
            "{} differs between Postgres and the snapshot",
            pa.display()
        );
    }
}

#[test]
fn snapshot_round_trip_equals_reading_postgres_on_the_fixture() {
    let db = TestDb::with_fixture();
    assert_snapshot_round_trip(&db, "2026-03-06", "2026-03-31");
    assert_snapshot_round_trip(&db, "2026-10-24", "2026-11-02");
}

#[test]
fn snapshot_round_trip_equals_reading_postgres_on_generated_data() {
    let db = crate::util::generated_platform("40", "20000", "20", "2026-11-10", "3");
    assert_snapshot_round_trip(&db, "2026-10-25", "2026-11-08");
}

#[test]
fn a_snapshot_can_be_written_back_to_postgres_too() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let snap = extract_march_7_to_9(&db, scratch.path());
    ok(db
        .cmd()
        .args([
            "run",
            "--from",
            "2026-03-08",
            "--to",
            "2026-03-08",
            "--source",
        ])
        .arg(&snap)
        .arg("--out")
        .arg(scratch.path().join("r"))
        .output()
        .unwrap());
    let from_snapshot = db.rows(
        "SELECT tenant_id, calls, total_cost_usd, errors FROM analytics.tenant_daily ORDER BY 1",
    );
    ok(db
        .cmd()
        .args(["run", "--date", "2026-03-08", "--out"])
        .arg(scratch.path().join("r"))
        .output()
        .unwrap());
    assert_eq!(db.rows("SELECT tenant_id, calls, total_cost_usd, errors FROM analytics.tenant_daily ORDER BY 1"), from_snapshot);
}

/// A snapshot of 2026-03-07..09 under `dir`/snap.
fn extract_march_7_to_9(db: &TestDb, dir: &Path) -> std::path::PathBuf {
    let snap = dir.join("snap");
    ok(db
        .cmd()
        .args([
            "extract",
            "--from",
            "2026-03-07",
            "--to",
            "2026-03-09",
            "--out",
        ])
        .arg(&snap)
        .output()
        .unwrap());
    snap
}

fn run_on_snapshot(snap: &Path, from: &str, to: &str) -> std::process::Output {
    let out = tempfile::tempdir().unwrap();
    TestDb::cmd_without_db()
        .args(["run", "--from", from, "--to", to, "--source"])
        .arg(snap)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap()
}

fn fails_with(output: std::process::Output, needle: &str) {
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    let err = stderr_of(&output);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("callrollup: error: snapshot") || last.contains("snapshot"),
        "{err}"
    );
    assert!(last.contains(needle), "{err}");
}

#[test]
fn bad_snapshots_get_a_clear_error() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let snap = extract_march_7_to_9(&db, scratch.path());
    ok(run_on_snapshot(&snap, "2026-03-07", "2026-03-09"));

    fails_with(
        run_on_snapshot(&snap, "2026-03-06", "2026-03-09"),
        "covers 2026-03-07..2026-03-09",
    );

    let copy = |name: &str| {
        let dir = scratch.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for f in std::fs::read_dir(&snap).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
        }
        dir
    };
    let manifest = |dir: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
    };
    let save = |dir: &Path, m: &serde_json::Value| {
        std::fs::write(dir.join("manifest.json"), serde_json::to_string(m).unwrap()).unwrap()
    };

    // A truncated file: its checksum no longer matches.
    let truncated = copy("truncated");
    let bytes = std::fs::read(truncated.join("call_logs.parquet")).unwrap();
    std::fs::write(
        truncated.join("call_logs.parquet"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    fails_with(
        run_on_snapshot(&truncated, "2026-03-07", "2026-03-09"),
        "call_logs.parquet does not match its checksum",
    );

    // A corrupt file whose checksum was updated too: Parquet itself refuses it.
    let corrupt = copy("corrupt");
    std::fs::write(
        corrupt.join("system_errors.parquet"),
        b"PAR1 this is not parquet PAR1",
    )
    .unwrap();
    let mut m = manifest(&corrupt);
    use sha2::Digest;
    let digest =
        sha2::Sha256::digest(std::fs::read(corrupt.join("system_errors.parquet")).unwrap());
    m["tables"]["system_errors"]["sha256"] = digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into();
    save(&corrupt, &m);
    fails_with(
        run_on_snapshot(&corrupt, "2026-03-07", "2026-03-09"),
        "system_errors.parquet is not readable Parquet",
    );

    // Row counts and cost sums that do not match.
    type ManifestEdit = fn(&mut serde_json::Value);
    let edits: [(&str, ManifestEdit, &str); 2] = [
        (
            "rows",
            |m| m["tables"]["call_logs"]["rows"] = 5.into(),
            "manifest.json says 5",
        ),
        (
            "sums",
            |m| m["total_cost_usd"] = "0.01".into(),
            "cost sums do not match",
        ),
    ];
    for (name, edit, needle) in edits {
        let dir = copy(name);
        let mut m = manifest(&dir);
        edit(&mut m);
        save(&dir, &m);
        fails_with(run_on_snapshot(&dir, "2026-03-07", "2026-03-09"), needle);
    }

    let missing = copy("missing");
    std::fs::remove_file(missing.join("tenants.parquet")).unwrap();
    fails_with(
        run_on_snapshot(&missing, "2026-03-07", "2026-03-09"),
        "tenants.parquet is missing",
    );
    fails_with(
        run_on_snapshot(&scratch.path().join("nowhere"), "2026-03-07", "2026-03-09"),
        "cannot read manifest.json",
    );
}

#[test]
fn generate_snapshot_works_with_database_url_exported() {
    // Engineers keep DATABASE_URL exported; clap counted it as given and
    // refused it beside --snapshot.
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("snap");
    ok(TestDb::cmd_without_db()
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/unused")
        .args([
            "generate",
            "--calls",
            "200",
            "--tenants",
            "3",
            "--days",
            "2",
        ])
        .args(["--end", "2026-03-31", "--snapshot"])
        .arg(&dir)
        .output()
        .unwrap());
    assert!(dir.join("call_logs.parquet").is_file());
}

#[test]
fn generator_is_deterministic() {
    let scratch = tempfile::tempdir().unwrap();
    let generate = |name: &str, seed: &str| {
        let dir = scratch.path().join(name);
        ok(TestDb::cmd_without_db()
            .args([
                "generate",
                "--calls",
                "5000",
                "--tenants",
                "30",
                "--days",
                "7",
                "--end",
                "2026-03-31",
                "--seed",
                seed,
                "--snapshot",
            ])
            .arg(&dir)
            .output()
            .unwrap());
        ["tenants", "call_logs", "system_errors"]
            .map(|t| std::fs::read(dir.join(format!("{t}.parquet"))).unwrap())
    };
    let a = generate("a", "11");
    assert_eq!(a, generate("b", "11"), "same seed, same bytes");
    assert_ne!(a[1], generate("c", "12")[1], "another seed, other calls");
}

/// `generate` of a small platform: 500 calls, 5 tenants, 2026-03-30..31.
const SMALL_PLATFORM: [&str; 9] = [
    "generate",
    "--calls",
    "500",
    "--tenants",
    "5",
    "--days",
    "2",
    "--end",
    "2026-03-31",
];

#[test]
fn generate_refuses_existing_platform_tables_unless_replace() {
    let db = TestDb::empty();
    let args = SMALL_PLATFORM;
    ok(db.cmd().args(args).output().unwrap());
    let output = db.cmd().args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("--replace"));
    ok(db.cmd().args(args).arg("--replace").output().unwrap());
    assert_eq!(db.scalar_i64("SELECT count(*) FROM call_logs"), 500);
    assert_eq!(db.scalar_i64("SELECT count(*) FROM tenants"), 5);
}

#[test]
fn demo_runs_without_a_database_and_leaves_the_files_it_lists() {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("demo");
    let output = ok(TestDb::cmd_without_db()
        .args(["demo", "--calls", "6000", "--end", "2026-03-31", "--out"])
        .arg(&out)
        .output()
        .unwrap());
    let text = stdout_of(&output);
    assert!(text.contains("Top tenants by cost"), "{text}");
    assert!(text.contains("Incident found: "), "{text}");
    let injected = text.lines().find(|l| l.contains("(injected:")).unwrap();
    let day = injected.rsplit(' ').next().unwrap().trim_end_matches(')');
    assert!(
        text.contains(&format!("llm_error errors on {day}")),
        "the incident found is the injected one: {text}"
    );
    // The injected cost anomaly is found: both days, and nothing else.
    let anomalies = &text[text
        .find("Cost anomalies: ")
        .expect("a cost anomalies part")..];
    let injected = anomalies
        .lines()
        .find(|l| l.contains("(injected: llm unit_cost x3 for "))
        .expect("the injection named");
    let (name, days) = injected
        .trim_start_matches("  (injected: llm unit_cost x3 for ")
        .trim_end_matches(')')
        .split_once(" on ")
        .unwrap();
    let (first, last) = days.split_once("..").unwrap();
    assert!(
        anomalies.starts_with("Cost anomalies: 2 line(s)"),
        "{anomalies}"
    );
    for day in [first, last] {
        assert!(
            anomalies.contains(&format!("  {day} {name} llm unit_cost: +")),
            "{day}: {anomalies}"
        );
    }
    // The demo draws the error chart and says where.
    assert!(text.contains("chart     "), "{text}");
    let svg = std::fs::read_to_string(out.join("errors.svg")).unwrap();
    assert!(svg.contains("llm_error"), "the chart holds the series");
    for f in [
        "tenants.parquet",
        "call_logs.parquet",
        "system_errors.parquet",
        "manifest.json",
    ] {
        assert!(out.join("snapshot").join(f).exists(), "{f}");
    }
    for table in [
        "tenant_daily",
        "tenant_daily_outcomes",
        "tenant_daily_errors",
        "data_quality_findings",
    ] {
        let days = std::fs::read_dir(out.join("reports").join(table))
            .unwrap()
            .count();
        assert_eq!(days, 30, "{table}");
    }
    assert!(out
        .join("reports/tenant_daily/day=2026-03-31/tenant_daily.csv")
        .exists());

    // The costs command the tour ends with works on the demo's own files.
    let costs_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("costs "))
        .unwrap_or_else(|| panic!("the tour shows a costs command: {text}"));
    let words: Vec<&str> = costs_line.split_whitespace().skip(2).collect();
    let costs = ok(TestDb::cmd_without_db().args(&words).output().unwrap());
    let table = stdout_of(&costs);
    assert!(
        table.contains("TOTAL") && table.contains("coverage: every day covered"),
        "{table}"
    );
}

#[test]
fn a_malformed_target_url_with_a_snapshot_is_an_error_not_a_file_only_run() {
    let scratch = tempfile::tempdir().unwrap();
    let snap = scratch.path().join("snap");
    ok(TestDb::cmd_without_db()
        .args(SMALL_PLATFORM)
        .arg("--snapshot")
        .arg(&snap)
        .output()
        .unwrap());
    let output = TestDb::cmd_without_db()
        .args([
            "run",
            "--date",
            "2026-03-30",
            "--target-url",
            "mysql://db/x",
            "--source",
        ])
        .arg(&snap)
        .arg("--out")
        .arg(scratch.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("--target-url must start with postgres://"));
    assert!(!scratch.path().join("out").exists(), "nothing was written");
}
