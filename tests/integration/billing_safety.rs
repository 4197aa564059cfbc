//! Billing safety: a run replaces exactly what it computed, every number
//! has one definition whatever the window, nothing undoes a commit, and
//! destructive commands refuse what they do not own.

use std::path::Path;

use crate::util::{
    assert_fails, extract, ok, run, spawn_paused, stderr_of, summary_rows_where, tree, TestDb,
};

const NY: &str = "a0000000-0000-0000-0000-000000000001";
const BERLIN: &str = "a0000000-0000-0000-0000-000000000002";
const WINDOW: [&str; 4] = ["--from", "2026-03-07", "--to", "2026-03-09"];

fn assert_same_tree(a: &Path, b: &Path) {
    let (a, b) = (tree(a), tree(b));
    assert!(a.len() > 8);
    assert_eq!(
        a.iter().map(|(p, _)| p).collect::<Vec<_>>(),
        b.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    for ((path, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{} differs", path.display());
    }
}

#[test]
fn a_tenant_snapshot_run_back_into_the_database_replaces_only_that_tenant() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    run(&db, &scratch.path().join("reports"), &WINDOW);
    let others = format!("tenant_id <> '{NY}'");
    let before = summary_rows_where(&db, "analytics", &others, ", run_id");
    assert!(before
        .iter()
        .any(|r| r.contains("00000000-0000-0000-0000-000000000000")));

    // NY's costs change before the snapshot is taken (so the snapshot run
    // has new figures to write) and again after (which it must not see).
    db.exec(&format!(
        "UPDATE call_logs SET total_cost_usd = total_cost_usd + 1 WHERE tenant_id = '{NY}'"
    ));
    let snap = scratch.path().join("snap");
    extract(&db, &[&WINDOW[..], &["--tenant", NY]].concat(), &snap);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(snap.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["tenants"], serde_json::json!([NY]));

    // Back into the database, with no --tenant on the command line.
    db.exec(&format!(
        "UPDATE call_logs SET total_cost_usd = total_cost_usd + 1 WHERE tenant_id = '{NY}'"
    ));
    let output = ok(db
        .cmd()
        .arg("run")
        .args(WINDOW)
        .arg("--source")
        .arg(&snap)
        .arg("--out")
        .arg(scratch.path().join("reports"))
        .output()
        .unwrap());
    assert!(
        crate::util::stdout_of(&output).contains("--tenant: 1 selected"),
        "{}",
        crate::util::stdout_of(&output)
    );
    assert_eq!(
        summary_rows_where(&db, "analytics", &others, ", run_id"),
        before,
        "every other tenant's rows and the platform rows are unchanged, digit for digit"
    );
    assert_eq!(
        db.scalar_i64(&format!(
            "SELECT count(*) FROM analytics.tenant_daily d JOIN analytics.rollup_runs r USING (run_id)
             WHERE d.tenant_id = '{NY}' AND r.source LIKE 'snapshot %' AND r.tenant_filter = ARRAY['{NY}'::uuid]"
        )),
        3,
        "the NY rows come from the snapshot run, which the ledger names"
    );

    // A selection the snapshot does not hold is refused (exit 2), writing nothing.
    for extra in [
        vec!["--tenant", BERLIN],
        vec!["--tenant-shard", "0/2"],
        vec!["--tenant", NY, "--tenant", BERLIN],
    ] {
        let output = db
            .cmd()
            .arg("run")
            .args(WINDOW)
            .args(&extra)
            .arg("--source")
            .arg(&snap)
            .arg("--out")
            .arg(scratch.path().join("reports"))
            .output()
            .unwrap();
        assert_fails(&output, 2, "the snapshot holds tenant");
    }
    assert_eq!(
        summary_rows_where(&db, "analytics", &others, ", run_id"),
        before
    );
}

#[test]
fn a_tenant_run_leaves_every_days_report_files_holding_all_tenants() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let (merged, whole) = (scratch.path().join("merged"), scratch.path().join("whole"));
    run(&db, &merged, &WINDOW);
    // NY's costs change; a --tenant run for NY alone brings its files up to date.
    db.exec(&format!(
        "UPDATE call_logs SET total_cost_usd = total_cost_usd + 0.5 WHERE tenant_id = '{NY}'"
    ));
    let mut args = WINDOW.to_vec();
    args.extend(["--tenant", NY]);
    run(&db, &merged, &args);
    // The files now equal those of a whole run over the changed data.
    run(&db, &whole, &WINDOW);
    assert_same_tree(&merged, &whole);
    let csv = std::fs::read_to_string(merged.join("tenant_daily/day=2026-03-08/tenant_daily.csv"))
        .unwrap();
    assert!(
        csv.contains(NY) && csv.contains(BERLIN) && csv.contains("(platform)"),
        "{csv}"
    );
}

#[test]
fn a_tenant_run_on_the_file_target_keeps_the_other_tenants_files() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let snap = scratch.path().join("snap");
    extract(&db, &WINDOW, &snap);
    let (merged, whole) = (scratch.path().join("merged"), scratch.path().join("whole"));
    let offline = |out: &Path, extra: &[&str]| {
        ok(TestDb::cmd_without_db()
            .arg("run")
            .args(WINDOW)
            .args(extra)
            .arg("--source")
            .arg(&snap)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap())
    };
    offline(&whole, &[]);
    offline(&merged, &[]);
    offline(&merged, &["--tenant", NY, "--tenant", BERLIN]);
    assert_same_tree(&merged, &whole);
}

/// Two calls of a tenant in UTC: one with an error logged 23 hours before
/// it, one with an error logged 25 hours before it.
const ERROR_LEADS: &str = "
INSERT INTO tenants (tenant_id, business_name, timezone, status) VALUES
  ('b0000000-0000-0000-0000-000000000001', 'Lead Time Co', 'UTC', 'active');
INSERT INTO call_logs (call_id, tenant_id, status, outcome, stt_cost_usd, llm_cost_usd,
                       tts_cost_usd, total_cost_usd, duration_seconds, created_at) VALUES
  ('lead-23h', 'b0000000-0000-0000-0000-000000000001', 'completed', 'booked', 0.1, 0.1, 0.1, 0.3, 60, '2026-05-10 12:00:00+00'),
  ('lead-25h', 'b0000000-0000-0000-0000-000000000001', 'completed', 'booked', 0.1, 0.1, 0.1, 0.3, 60, '2026-05-10 12:00:00+00');
INSERT INTO system_errors (tenant_id, call_id, error_type, severity, resolved, created_at) VALUES
  ('b0000000-0000-0000-0000-000000000001', 'lead-23h', 'stt_timeout', 'ERROR', false, '2026-05-09 13:00:00+00'),
  ('b0000000-0000-0000-0000-000000000001', 'lead-25h', 'stt_timeout', 'ERROR', false, '2026-05-09 11:00:00+00');
";

#[test]
fn an_error_logged_25_hours_before_its_call_does_not_make_it_errored() {
    let db = TestDb::with_platform();
    db.exec(ERROR_LEADS);
    db.migrate();
    let out = tempfile::tempdir().unwrap();
    run(&db, out.path(), &["--date", "2026-05-10"]);
    assert_eq!(
        db.rows("SELECT day::text, calls, errored_calls, error_rate FROM analytics.tenant_daily WHERE calls > 0"),
        ["2026-05-10|2|1|0.5"]
    );
}

#[test]
fn a_day_alone_and_inside_a_month_gives_identical_rows() {
    let db = TestDb::with_fixture();
    // An error logged three days before a call that has no other: beyond
    // the reach of a one-day run's error read, inside a month-long run's.
    let call = db.rows(&format!(
        "SELECT call_id FROM call_logs c WHERE tenant_id = '{NY}'
           AND created_at BETWEEN '2026-03-12 12:00+00' AND '2026-03-13 00:00+00'
           AND NOT EXISTS (SELECT 1 FROM system_errors e WHERE e.call_id = c.call_id)
         ORDER BY call_id LIMIT 1"
    ))[0]
        .clone();
    db.exec(&format!(
        "INSERT INTO system_errors (tenant_id, call_id, error_type, severity, resolved, created_at)
         SELECT tenant_id, call_id, 'llm_error', 'ERROR', false, created_at - interval '3 days'
         FROM call_logs WHERE call_id = '{call}'"
    ));
    let day = "2026-03-12".to_string();
    db.cmd()
        .args(["migrate", "--target-schema", "month"])
        .assert()
        .success();
    let scratch = tempfile::tempdir().unwrap();
    run(&db, &scratch.path().join("day"), &["--date", &day]);
    ok(db
        .cmd()
        .args([
            "run",
            "--from",
            "2026-03-05",
            "--to",
            "2026-04-04",
            "--target-schema",
            "month",
            "--out",
        ])
        .arg(scratch.path().join("month"))
        .output()
        .unwrap());
    let on_day = format!("day = '{day}'");
    let alone = summary_rows_where(&db, "analytics", &on_day, "");
    assert!(alone.len() > 20);
    assert_eq!(summary_rows_where(&db, "month", &on_day, ""), alone);
    let findings = |schema: &str| {
        db.rows(&format!(
            "SELECT kind, tenant_id, rows, example_id FROM {schema}.data_quality_findings WHERE {on_day} ORDER BY 1, 2"
        ))
    };
    assert_eq!(findings("month"), findings("analytics"));
    for table in [
        "tenant_daily",
        "tenant_daily_outcomes",
        "tenant_daily_errors",
        "data_quality_findings",
    ] {
        let file = format!("{table}/day={day}/{table}.csv");
        assert_eq!(
            std::fs::read(scratch.path().join("day").join(&file)).unwrap(),
            std::fs::read(scratch.path().join("month").join(&file)).unwrap(),
            "{file}"
        );
    }
}

/// The report files of one day, as (name, bytes) without temporaries.
fn day_files(out: &Path, day: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = tree(out)
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains(&format!("day={day}/")))
        .map(|(p, b)| (p.display().to_string(), b))
        .collect();
    files.sort();
    files
}

#[test]
fn a_kill_after_the_commit_is_finished_by_the_next_run_whatever_its_window() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let (out, clean) = (scratch.path().join("reports"), scratch.path().join("clean"));
    let out_arg = out.to_str().unwrap();
    run(&db, &out, &["--date", "2026-03-08"]);
    let old = day_files(&out, "2026-03-08");
    db.exec("UPDATE call_logs SET total_cost_usd = total_cost_usd + 2");

    let mut child = spawn_paused(
        Some(&db),
        &["run", "--date", "2026-03-08", "--out", out_arg],
        "moving_files",
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        db.rows("SELECT status FROM analytics.rollup_runs ORDER BY started_at"),
        ["succeeded", "succeeded"],
        "the killed run had committed"
    );
    let mixed = day_files(&out, "2026-03-08");
    assert!(
        mixed.iter().any(|(p, _)| p.contains("/.")),
        "staged files are still waiting"
    );
    assert_ne!(mixed, old);

    // The next run, for another day, finishes the moves first and says so.
    let next = run(&db, &out, &["--date", "2026-03-20"]);
    assert!(
        stderr_of(&next)
            .contains("committed but stopped before its report files were all in place"),
        "{}",
        stderr_of(&next)
    );
    run(&db, &clean, &["--date", "2026-03-08"]);
    assert_eq!(
        day_files(&out, "2026-03-08"),
        day_files(&clean, "2026-03-08")
    );
    assert!(!std::fs::read_dir(&out).unwrap().flatten().any(|e| e
        .file_name()
        .to_string_lossy()
        .starts_with(".callrollup-pending")));
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM analytics.rollup_runs WHERE status <> 'succeeded'"),
        0,
        "nothing marked the committed run failed"
    );
}

#[test]
fn a_kill_before_the_commit_leaves_the_old_files_and_the_next_run_drops_the_staged_ones() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("reports");
    run(&db, &out, &["--date", "2026-03-08"]);
    let old = day_files(&out, "2026-03-08");
    let tables = summary_rows_where(&db, "analytics", "true", ", run_id");
    db.exec("UPDATE call_logs SET total_cost_usd = total_cost_usd + 2");
    let mut child = spawn_paused(
        Some(&db),
        &[
            "run",
            "--date",
            "2026-03-08",
            "--out",
            out.to_str().unwrap(),
        ],
        "before_commit",
    );
    // sslmode defaults to prefer, as libpq's: TLS whenever the server offers it.
    if db.rows("SELECT current_setting('ssl') AS ssl") == ["on"] {
        assert_eq!(
            db.rows(&format!(
                "SELECT DISTINCT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                 WHERE a.datname = '{}' AND a.application_name LIKE 'callrollup%'",
                db.name
            )),
            ["true"]
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        summary_rows_where(&db, "analytics", "true", ", run_id"),
        tables
    );
    let next = run(&db, &out, &["--date", "2026-03-20"]);
    assert!(
        stderr_of(&next).contains("which never committed"),
        "{}",
        stderr_of(&next)
    );
    assert_eq!(day_files(&out, "2026-03-08"), old);
    assert_eq!(
        db.rows("SELECT status, coalesce(error LIKE 'abandoned%', false) FROM analytics.rollup_runs ORDER BY started_at"),
        ["succeeded|false", "failed|true", "succeeded|false"]
    );
}

#[test]
fn a_file_only_run_killed_while_moving_is_finished_by_the_next() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let snap = scratch.path().join("snap");
    extract(&db, &["--from", "2026-03-07", "--to", "2026-03-20"], &snap);
    let (out, clean) = (scratch.path().join("reports"), scratch.path().join("clean"));
    let args = |out: &Path, day: &str| -> Vec<String> {
        [
            "run",
            "--date",
            day,
            "--source",
            snap.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    let first = args(&out, "2026-03-08");
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let mut child = spawn_paused(None, &first, "moving_files");
    child.kill().unwrap();
    child.wait().unwrap();
    let next = ok(TestDb::cmd_without_db()
        .args(args(&out, "2026-03-09"))
        .output()
        .unwrap());
    assert!(
        stderr_of(&next).contains("committed but stopped"),
        "{}",
        stderr_of(&next)
    );
    ok(TestDb::cmd_without_db()
        .args(args(&clean, "2026-03-08"))
        .output()
        .unwrap());
    assert_eq!(
        day_files(&out, "2026-03-08"),
        day_files(&clean, "2026-03-08")
    );
}

#[test]
fn extract_refuses_a_folder_that_is_not_a_snapshot() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let precious = scratch.path().join("home");
    std::fs::create_dir(&precious).unwrap();
    std::fs::write(precious.join("thesis.tex"), "years of work").unwrap();
    let output = db
        .cmd()
        .args(["extract", "--date", "2026-03-08", "--out"])
        .arg(&precious)
        .output()
        .unwrap();
    assert_fails(&output, 2, "nothing was deleted");
    assert_eq!(
        std::fs::read_to_string(precious.join("thesis.tex")).unwrap(),
        "years of work"
    );

    // An earlier snapshot is replaced; one with a stray file is not.
    let snap = scratch.path().join("snap");
    for _ in 0..2 {
        extract(&db, &["--date", "2026-03-08"], &snap);
    }
    std::fs::write(snap.join("notes.txt"), "mine").unwrap();
    let output = db
        .cmd()
        .args(["extract", "--date", "2026-03-08", "--out"])
        .arg(&snap)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(snap.join("notes.txt").exists());
}

#[test]
fn manifest_file_names_outside_the_snapshot_are_refused() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let snap = scratch.path().join("snap");
    extract(&db, &["--date", "2026-03-08"], &snap);
    std::fs::copy(
        snap.join("call_logs.parquet"),
        scratch.path().join("call_logs.parquet"),
    )
    .unwrap();
    let text = std::fs::read_to_string(snap.join("manifest.json")).unwrap();
    for name in ["../call_logs.parquet", "/etc/passwd", ".."] {
        std::fs::write(
            snap.join("manifest.json"),
            text.replace("\"call_logs.parquet\"", &format!("{name:?}")),
        )
        .unwrap();
        let output = TestDb::cmd_without_db()
            .args(["run", "--date", "2026-03-08", "--source"])
            .arg(&snap)
            .arg("--out")
            .arg(scratch.path().join("r"))
            .output()
            .unwrap();
        assert_fails(&output, 2, "not a plain file name");
    }
}

const TINY_GENERATE: [&str; 8] = [
    "generate",
    "--replace",
    "--calls",
    "100",
    "--days",
    "2",
    "--tenants",
    "3",
];

#[test]
fn generate_replace_refuses_platform_tables_it_did_not_create() {
    let db = TestDb::with_fixture();
    let calls = db.scalar_i64("SELECT count(*) FROM call_logs");
    let output = db.cmd().args(TINY_GENERATE).output().unwrap();
    assert_fails(&output, 2, "not created by callrollup generate");
    assert_eq!(db.scalar_i64("SELECT count(*) FROM call_logs"), calls);

    // Its own tables it may replace.
    let generated = TestDb::empty();
    for _ in 0..2 {
        ok(generated.cmd().args(TINY_GENERATE).output().unwrap());
    }
    assert_eq!(generated.scalar_i64("SELECT count(*) FROM call_logs"), 100);
}

#[test]
fn postgres_and_the_engine_put_every_day_boundary_of_2026_in_the_same_place() {
    use callrollup::rollup::timezone::{canonical_zone, day_probes};
    let db = TestDb::empty();
    let mut client = db.client();
    let window = callrollup::window::Window {
        from: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        to: chrono::NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
        partial: false,
    };
    // Every zone both sides know, not only the fixture's.
    let zones: Vec<String> = db.rows("SELECT name FROM pg_timezone_names ORDER BY name");
    let known: Vec<&str> = zones.iter().filter_map(|z| canonical_zone(z)).collect();
    assert!(known.len() > 300, "{}", known.len());
    let (from, to) = window.utc_range();
    let probes: Vec<_> = known
        .iter()
        .flat_map(|z| day_probes(z, from.timestamp_micros(), to.timestamp_micros()))
        .collect();
    callrollup::zone_check::verify(&mut client, &probes, &[]).unwrap();

    // Names as Postgres matches them: any case; abbreviations, POSIX
    // strings and junk are invalid for both (UTC and a finding).
    let declared = [
        Some("America/New_York"),
        Some("america/chicago"),
        Some("ASIA/KATHMANDU"),
        Some("PST"),
        Some("UTC+5"),
        Some("<+03>-3"),
        Some("Mars/Olympus_Mons"),
        Some(""),
        None,
    ];
    callrollup::zone_check::check(&mut client, &declared, &window).unwrap();

    // A name only Postgres knows is a disagreement, named.
    let e = callrollup::zone_check::check(&mut client, &[Some("posix/Europe/Berlin")], &window)
        .unwrap_err();
    assert_eq!(e.exit_code(), 1);
    assert!(e.to_string().contains("posix/Europe/Berlin"), "{e}");

    // A day the engine got wrong is caught, with the zone and the instant.
    let mut wrong = day_probes(
        "Europe/Berlin",
        from.timestamp_micros(),
        to.timestamp_micros(),
    );
    wrong[7].day = wrong[7].day.succ_opt().unwrap();
    let e = callrollup::zone_check::verify(&mut client, &wrong, &[]).unwrap_err();
    assert!(
        e.to_string().contains("Europe/Berlin")
            && e.to_string().contains("but Postgres puts it on"),
        "{e}"
    );
}

#[test]
fn a_zone_only_postgres_knows_fails_the_run_before_anything_is_written() {
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    db.exec(&format!(
        "UPDATE tenants SET timezone = 'posix/Europe/Berlin' WHERE tenant_id = '{BERLIN}'"
    ));
    let output = db
        .cmd()
        .args(["run", "--date", "2026-03-08", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert_fails(&output, 1, "posix/Europe/Berlin");
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM analytics.rollup_runs"),
        0
    );
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM analytics.tenant_daily"),
        0
    );
    assert!(tree(out.path()).is_empty());
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(8))]

    /// Postgres' own binary numerics, in every dscale it sends (as typed,
    /// cast to numeric(38,10), after arithmetic), decode to the exact value.
    #[test]
    fn numeric_decode_equals_postgres_on_random_values(
        values in proptest::collection::vec(
            (proptest::bool::ANY, "[0-9]{1,17}", "[0-9]{0,10}"),
            1..200,
        )
    ) {
        use callrollup::source::pgcopy::{read_frame, FieldKind};
        use std::str::FromStr;
        let texts: Vec<String> = values
            .iter()
            .map(|(negative, int, frac)| {
                let sign = if *negative { "-" } else { "" };
                if frac.is_empty() { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") }
            })
            .collect();
        let db = TestDb::empty();
        let list = texts.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        let copy = format!(
            "COPY (SELECT v::numeric AS a, v::numeric(38, 10) AS b, v::numeric * 1.000 - 0 AS c
                   FROM unnest(ARRAY[{list}]::text[]) WITH ORDINALITY AS t(v, i) ORDER BY i)
             TO STDOUT (FORMAT binary)"
        );
        let mut client = db.client();
        let stream = client.copy_out(copy.as_str()).unwrap();
        let df = read_frame(stream, &[("a", FieldKind::Money), ("b", FieldKind::Money), ("c", FieldKind::Money)]).unwrap();
        for column in ["a", "b", "c"] {
            let got = callrollup::money::decimals(df.column(column).unwrap()).unwrap();
            for (text, value) in texts.iter().zip(got) {
                let expected = rust_decimal::Decimal::from_str(text).unwrap();
                proptest::prop_assert_eq!(value.unwrap().normalize(), expected.normalize(), "{} in {}", text, column);
            }
        }
    }
}

#[test]
fn a_numeric_with_eleven_decimals_from_postgres_is_refused_naming_the_column() {
    use callrollup::source::pgcopy::{read_frame, FieldKind};
    let db = TestDb::empty();
    let mut client = db.client();
    let stream = client
        .copy_out(
            "COPY (SELECT 0.00000000001::numeric AS total_cost_usd) TO STDOUT (FORMAT binary)",
        )
        .unwrap();
    let e = read_frame(stream, &[("total_cost_usd", FieldKind::Money)]).unwrap_err();
    assert!(
        e.to_string().contains("total_cost_usd") && e.to_string().contains("more than 10 decimals"),
        "{e}"
    );
}
