//! Restatements: a run that changes a figure an earlier run wrote records
//! it in `restatements`, in its own transaction, and `callrollup changes`
//! and `costs` tell finance.

use crate::util::{assert_fails, ok, run, spawn_paused, stderr_of, stdout_of, TestDb};

const BERLIN: &str = "a0000000-0000-0000-0000-000000000002";
const NY: &str = "a0000000-0000-0000-0000-000000000001";
const QUIET: &str = "a0000000-0000-0000-0000-00000000000b";
const WINDOW: [&str; 4] = ["--from", "2026-03-07", "--to", "2026-03-10"];

/// The first call of Berlin's 2026-03-08 (Berlin time) with every cost.
const BERLIN_CALL: &str = "(SELECT call_id FROM call_logs
    WHERE tenant_id = 'a0000000-0000-0000-0000-000000000002'
      AND created_at >= '2026-03-08 12:00+00' AND created_at < '2026-03-08 18:00+00'
      AND total_cost_usd IS NOT NULL AND llm_cost_usd IS NOT NULL
    ORDER BY created_at, call_id LIMIT 1)";

/// Postgres' own sums of one tenant-local day of Berlin's calls: calls,
/// total and LLM cost, as text.
fn berlin_day_sums(db: &TestDb) -> Vec<String> {
    db.rows(
        "SELECT count(*) AS calls, coalesce(sum(total_cost_usd), 0)::numeric(20, 6)::text AS total,
                coalesce(sum(llm_cost_usd), 0)::numeric(20, 6)::text AS llm
         FROM call_logs
         WHERE tenant_id = 'a0000000-0000-0000-0000-000000000002'
           AND (created_at AT TIME ZONE 'Europe/Berlin')::date = '2026-03-08'",
    )
}

fn restatement_count(db: &TestDb) -> i64 {
    db.scalar_i64("SELECT count(*) FROM analytics.restatements")
}

/// `callrollup changes <args> --format json`, parsed.
fn changes_json(db: &TestDb, args: &[&str]) -> serde_json::Value {
    let out = ok(db
        .cmd()
        .arg("changes")
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_cost_corrected_after_the_run_is_one_restatement_with_postgres_old_and_new_sums() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("reports");
    run(&db, &out, &WINDOW);
    let first_run = db.rows("SELECT run_id FROM analytics.rollup_runs")[0].clone();
    let before = berlin_day_sums(&db);
    db.exec(&format!(
        "UPDATE call_logs SET total_cost_usd = total_cost_usd + 0.500000,
                              llm_cost_usd = llm_cost_usd + 0.500000
         WHERE call_id = {BERLIN_CALL}"
    ));
    let after = berlin_day_sums(&db);
    let rerun = run(&db, &out, &WINDOW);
    assert!(
        stdout_of(&rerun).contains("restated    tenant_daily 1, tenant_daily_outcomes 1"),
        "{}",
        stdout_of(&rerun)
    );
    let second_run = db.rows(&format!(
        "SELECT run_id FROM analytics.rollup_runs WHERE run_id <> '{first_run}'"
    ))[0]
        .clone();

    // The history: the tenant day and its outcome row, nothing else.
    assert_eq!(
        db.rows(
            "SELECT table_name, tenant_id, day, change, changed_columns::text, row_key::text,
                    previous_run_id, run_id
             FROM analytics.restatements ORDER BY table_name"
        ),
        [
            format!("tenant_daily|{BERLIN}|2026-03-08|updated|{{llm_cost_usd,total_cost_usd}}|{{}}|{first_run}|{second_run}"),
            format!("tenant_daily_outcomes|{BERLIN}|2026-03-08|updated|{{total_cost_usd}}|{{\"status\": \"completed\", \"outcome\": \"callback\"}}|{first_run}|{second_run}"),
        ]
    );

    let report = changes_json(&db, &["--month", "2026-03"]);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "one line and the TOTAL: {report}");
    let line = &rows[0];
    assert_eq!(line["tenant_id"], BERLIN);
    assert_eq!(line["business_name"], "Berliner Kanzlei");
    assert_eq!(line["day"], "2026-03-08");
    let sums = |s: &str| s.split('|').map(str::to_string).collect::<Vec<_>>();
    let (before, after) = (sums(&before[0]), sums(&after[0]));
    assert_eq!(line["old_calls"].to_string(), before[0]);
    assert_eq!(line["new_calls"].to_string(), after[0]);
    assert_eq!(line["old_total_cost_usd"], before[1].as_str());
    assert_eq!(line["new_total_cost_usd"], after[1].as_str());
    assert_eq!(line["old_llm_cost_usd"], before[2].as_str());
    assert_eq!(line["new_llm_cost_usd"], after[2].as_str());
    assert_eq!(line["change_total_cost_usd"], "0.500000");
    assert_eq!(line["change_llm_cost_usd"], "0.500000");
    assert_eq!(line["change_stt_cost_usd"], "0.000000");
    assert_eq!(line["previous_run_id"], first_run.as_str());
    assert_eq!(line["run_id"], second_run.as_str());
    let total = &rows[1];
    assert_eq!(total["tenant_id"], serde_json::Value::Null);
    assert_eq!(total["business_name"], "TOTAL");
    assert_eq!(total["change_total_cost_usd"], "0.500000");
    assert_eq!(report["tenant_days"], 1);

    // The same line by run and by tenant; none for another tenant or run.
    assert_eq!(
        changes_json(&db, &["--run", &second_run])["restatements"],
        1
    );
    assert_eq!(changes_json(&db, &["--run", &first_run])["restatements"], 0);
    assert_eq!(changes_json(&db, &["--tenant", BERLIN])["restatements"], 1);
    assert_eq!(changes_json(&db, &["--tenant", NY])["restatements"], 0);
    assert_eq!(
        changes_json(&db, &["--from", "2026-03-09", "--to", "2026-03-10"])["restatements"],
        0
    );

    // CSV: the contract's columns, money with 6 decimals.
    let csv = stdout_of(&ok(db
        .cmd()
        .args(["changes", "--format", "csv"])
        .output()
        .unwrap()));
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "tenant_id,business_name,day,old_calls,new_calls,old_total_cost_usd,new_total_cost_usd,change_total_cost_usd,old_stt_cost_usd,new_stt_cost_usd,change_stt_cost_usd,old_llm_cost_usd,new_llm_cost_usd,change_llm_cost_usd,old_tts_cost_usd,new_tts_cost_usd,change_tts_cost_usd,previous_run_id,run_id,restated_at"
    );
    assert!(lines.next().unwrap().starts_with(&format!(
        "{BERLIN},Berliner Kanzlei,2026-03-08,{},{},{},{},0.500000,",
        before[0], after[0], before[1], after[1]
    )));
    assert_eq!(
        lines.next().unwrap(),
        ",TOTAL,,,,,,0.500000,,,0.000000,,,0.500000,,,0.000000,,,"
    );

    // The cost report of the month says so, in the table and in JSON.
    let costs = stdout_of(&ok(db
        .cmd()
        .args(["costs", "--month", "2026-03"])
        .output()
        .unwrap()));
    assert!(
        costs.contains("restated: 1 tenant day(s) of the period changed after their first run (1 restatement(s)), total_cost_usd by +0.500000 USD in all"),
        "{costs}"
    );
    let costs_json: serde_json::Value = serde_json::from_slice(
        &ok(db
            .cmd()
            .args(["costs", "--month", "2026-03", "--format", "json"])
            .output()
            .unwrap())
        .stdout,
    )
    .unwrap();
    assert_eq!(
        costs_json["restatements"],
        serde_json::json!({"tenant_days": 1, "restatements": 1, "change_total_cost_usd": "0.500000"})
    );
    // Report files carry no history: no restatement figure from them.
    let from_files: serde_json::Value = serde_json::from_slice(
        &ok(db
            .cmd()
            .args([
                "costs",
                "--month",
                "2026-03",
                "--format",
                "json",
                "--reports",
            ])
            .arg(&out)
            .output()
            .unwrap())
        .stdout,
    )
    .unwrap();
    assert_eq!(from_files["restatements"], serde_json::Value::Null);
    let refused = db
        .cmd()
        .args(["changes", "--reports"])
        .arg(&out)
        .output()
        .unwrap();
    assert_fails(&refused, 2, "report files carry no restatement history");
}

#[test]
fn deleting_a_tenants_only_call_of_a_day_is_a_restatement_to_zero() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("reports");
    db.exec(&format!(
        "INSERT INTO call_logs (call_id, tenant_id, status, outcome, stt_cost_usd, llm_cost_usd,
                                tts_cost_usd, total_cost_usd, duration_seconds, created_at)
         VALUES ('quiet-1', '{QUIET}', 'completed', 'booked', 0.100000, 0.200000, 0.300000,
                 0.600000, 90, '2026-03-08 12:00+00')"
    ));
    run(&db, &out, &WINDOW);
    let first_run = db.rows("SELECT run_id FROM analytics.rollup_runs")[0].clone();
    db.exec("DELETE FROM call_logs WHERE call_id = 'quiet-1'");
    run(&db, &out, &WINDOW);
    assert_eq!(
        db.scalar_i64(&format!(
            "SELECT count(*) FROM analytics.tenant_daily WHERE tenant_id = '{QUIET}'"
        )),
        0
    );
    // In the history the row is gone (no new values); its outcome row too.
    assert_eq!(
        db.rows(
            "SELECT table_name, change, new_values IS NULL, old_values ->> 'calls',
                    old_values ->> 'total_cost_usd'
             FROM analytics.restatements ORDER BY table_name"
        ),
        [
            "tenant_daily|deleted|true|1|0.600000",
            "tenant_daily_outcomes|deleted|true|1|0.600000"
        ]
    );
    // `changes` shows the day's figures now: 0.
    let report = changes_json(&db, &["--tenant", QUIET]);
    let line = &report["rows"][0];
    assert_eq!(line["day"], "2026-03-08");
    assert_eq!(line["old_calls"], 1);
    assert_eq!(line["new_calls"], 0);
    assert_eq!(line["old_total_cost_usd"], "0.600000");
    assert_eq!(line["new_total_cost_usd"], "0.000000");
    assert_eq!(line["change_total_cost_usd"], "-0.600000");
    assert_eq!(line["change_tts_cost_usd"], "-0.300000");
    assert_eq!(line["previous_run_id"], first_run.as_str());
}

#[test]
fn an_unchanged_rerun_another_tenants_run_and_new_days_record_nothing() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("reports");
    run(&db, &out, &WINDOW);
    // A first run over days no run wrote: inserts, no restatement.
    run(&db, &out, &["--from", "2026-03-11", "--to", "2026-03-12"]);
    // The same window again, nothing changed in the source.
    run(&db, &out, &WINDOW);
    assert_eq!(restatement_count(&db), 0);

    // Berlin's cost changes; a run of New York alone records nothing.
    db.exec(&format!(
        "UPDATE call_logs SET total_cost_usd = total_cost_usd + 0.500000
         WHERE call_id = {BERLIN_CALL}"
    ));
    let mut ny = WINDOW.to_vec();
    ny.extend(["--tenant", NY]);
    run(&db, &out, &ny);
    assert_eq!(restatement_count(&db), 0);
    // Berlin's run records Berlin's, only.
    let mut berlin = WINDOW.to_vec();
    berlin.extend(["--tenant", BERLIN]);
    run(&db, &out, &berlin);
    assert_eq!(
        db.rows("SELECT DISTINCT tenant_id FROM analytics.restatements"),
        [BERLIN]
    );
    let recorded = restatement_count(&db);
    assert!(recorded >= 1);
    // A whole run afterwards: Berlin's figures are already the new ones.
    run(&db, &out, &WINDOW);
    assert_eq!(restatement_count(&db), recorded);
}

#[test]
fn a_call_moved_to_a_new_outcome_records_the_new_outcome_row_as_inserted() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("reports");
    run(&db, &out, &WINDOW);
    db.exec(&format!(
        "UPDATE call_logs SET outcome = 'escalated' WHERE call_id = {BERLIN_CALL}"
    ));
    run(&db, &out, &WINDOW);
    let history = db.rows(
        "SELECT table_name, change, row_key ->> 'outcome', new_values ->> 'calls'
         FROM analytics.restatements ORDER BY table_name, change",
    );
    assert!(
        history.contains(&"tenant_daily_outcomes|inserted|escalated|1".to_string()),
        "{history:?}"
    );
    // The tenant day bills the same: no line in `changes`.
    assert!(history.iter().all(|h| !h.starts_with("tenant_daily|")));
    assert_eq!(changes_json(&db, &[])["restatements"], 0);
}

#[test]
fn closed_before_exits_3_exactly_when_a_closed_day_changed() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("reports");
    run(&db, &out, &WINDOW);
    let closed = |date: &str| {
        db.cmd()
            .args(["changes", "--closed-before", date, "--format", "csv"])
            .output()
            .unwrap()
    };
    // Nothing restated yet: books closed anywhere are fine.
    assert_eq!(closed("2026-04-01").status.code(), Some(0));
    db.exec(&format!(
        "UPDATE call_logs SET total_cost_usd = total_cost_usd + 0.500000
         WHERE call_id = {BERLIN_CALL}"
    ));
    run(&db, &out, &WINDOW);
    // Berlin's 2026-03-08 changed: closed from the 9th on, it alerts.
    let alert = closed("2026-03-09");
    let err = assert_fails(&alert, 3, "--closed-before 2026-03-09: 1 restatement(s)");
    assert!(err.contains("+0.500000 USD"), "{err}");
    assert!(stdout_of(&alert).contains(&format!("{BERLIN},Berliner Kanzlei,2026-03-08")));
    // Books closed before the 8th: the change is in an open day.
    let open = closed("2026-03-08");
    assert_eq!(open.status.code(), Some(0), "{}", stderr_of(&open));
    assert_eq!(stdout_of(&open).lines().count(), 2, "header and TOTAL only");
    // A period after the closing day holds no closed day at all.
    let later = db
        .cmd()
        .args([
            "changes",
            "--month",
            "2026-04",
            "--closed-before",
            "2026-04-01",
        ])
        .output()
        .unwrap();
    assert_eq!(later.status.code(), Some(0), "{}", stderr_of(&later));
    // --since: the alert of a later day no longer sees it.
    let since = db
        .cmd()
        .args([
            "changes",
            "--closed-before",
            "2026-03-09",
            "--since",
            "2100-01-01",
        ])
        .output()
        .unwrap();
    assert_eq!(since.status.code(), Some(0), "{}", stderr_of(&since));
}

#[test]
fn a_run_killed_at_any_pause_point_before_its_commit_leaves_no_history() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("reports");
    run(&db, &out, &WINDOW);
    db.exec(&format!(
        "UPDATE call_logs SET total_cost_usd = total_cost_usd + 0.500000
         WHERE call_id = {BERLIN_CALL}"
    ));
    let out_arg = out.to_str().unwrap();
    for point in ["between_chunks", "before_seal", "before_commit"] {
        let mut args = vec!["run"];
        args.extend(WINDOW);
        args.extend(["--chunk-days", "1", "--out", out_arg]);
        let mut child = spawn_paused(Some(&db), &args, point);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(restatement_count(&db), 0, "killed at {point}");
    }
    // The next run records the change once.
    run(&db, &out, &WINDOW);
    assert_eq!(
        db.scalar_i64(
            "SELECT count(*) FROM analytics.restatements WHERE table_name = 'tenant_daily'"
        ),
        1
    );
}

#[test]
fn changes_refuses_an_unknown_run_a_bad_since_and_xlsx_without_a_file() {
    let db = TestDb::with_fixture();
    let unknown = db
        .cmd()
        .args(["changes", "--run", "00000000-0000-0000-0000-000000000001"])
        .output()
        .unwrap();
    assert_fails(&unknown, 2, "no such run in the ledger");
    let not_uuid = db
        .cmd()
        .args(["changes", "--run", "yesterday"])
        .output()
        .unwrap();
    assert_fails(&not_uuid, 2, "is not a run_id");
    let since = db
        .cmd()
        .args(["changes", "--since", "last week"])
        .output()
        .unwrap();
    assert_fails(
        &since,
        2,
        "--since \"last week\" is neither a day nor a moment",
    );
    let xlsx = db
        .cmd()
        .args(["changes", "--format", "xlsx"])
        .output()
        .unwrap();
    assert_fails(&xlsx, 2, "--format xlsx writes a file: add -o FILE");
    let unknown_tenant = db
        .cmd()
        .args([
            "changes",
            "--tenant",
            "f0000000-0000-0000-0000-000000000001",
        ])
        .output()
        .unwrap();
    assert_fails(&unknown_tenant, 2, "unknown --tenant");
}

#[test]
fn a_file_only_run_says_it_keeps_no_history() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let (out, _) = crate::util::file_only_run(&db, &WINDOW, scratch.path());
    assert!(stdout_of(&out).contains(
        "history     none: report files carry no restatement history (the database is the record)"
    ));
}

#[test]
fn first_calls_of_a_tenant_day_that_had_only_errors_are_restatements() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("reports");
    db.exec(&format!(
        "INSERT INTO system_errors (error_id, tenant_id, error_type, severity, resolved, created_at)
         VALUES (gen_random_uuid(), '{QUIET}', 'stt_timeout', 'critical', false, '2026-03-08 12:00+00')"
    ));
    let mut quiet = WINDOW.to_vec();
    quiet.extend(["--tenant", QUIET]);
    run(&db, &out, &WINDOW);
    assert_eq!(
        db.rows(&format!(
            "SELECT calls, errors FROM analytics.tenant_daily WHERE tenant_id = '{QUIET}'"
        )),
        ["0|1"]
    );
    // The tenant's first call of that day: its outcome rows are copied
    // straight in (the tenant's outcome window was empty), and still
    // recorded, as the tenant day's figures were billed before.
    db.exec(&format!(
        "INSERT INTO call_logs (call_id, tenant_id, status, outcome, stt_cost_usd, llm_cost_usd,
                                tts_cost_usd, total_cost_usd, duration_seconds, created_at)
         VALUES ('quiet-1', '{QUIET}', 'completed', 'booked', 0.100000, 0.200000, 0.300000,
                 0.600000, 90, '2026-03-08 13:00+00')"
    ));
    run(&db, &out, &quiet);
    assert_eq!(
        db.rows(
            "SELECT table_name, change, old_values ->> 'calls', new_values ->> 'calls'
             FROM analytics.restatements ORDER BY table_name"
        ),
        [
            "tenant_daily|updated|0|1",
            "tenant_daily_outcomes|inserted|∅|1"
        ]
    );
    let line = &changes_json(&db, &[])["rows"][0];
    assert_eq!(line["change_total_cost_usd"], "0.600000");
}

#[test]
fn a_hostile_business_name_is_guarded_in_every_changes_format() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("reports");
    const FORMULA: &str = "a0000000-0000-0000-0000-00000000000a";
    db.exec(&format!(
        "UPDATE tenants SET business_name = E'=HYPERLINK(\"http://x\")\\u001b[31m'
         WHERE tenant_id = '{FORMULA}'"
    ));
    run(&db, &out, &WINDOW);
    db.exec(&format!(
        "UPDATE call_logs SET total_cost_usd = total_cost_usd + 0.000001
         WHERE call_id = (SELECT call_id FROM call_logs WHERE tenant_id = '{FORMULA}'
                            AND created_at >= '2026-03-08 12:00+00' AND total_cost_usd IS NOT NULL
                          ORDER BY created_at, call_id LIMIT 1)"
    ));
    run(&db, &out, &WINDOW);
    let format = |f: &str| {
        stdout_of(&ok(db
            .cmd()
            .args(["changes", "--format", f])
            .output()
            .unwrap()))
    };
    let csv = format("csv");
    assert!(
        csv.contains(&format!(
            "{FORMULA},\"'=HYPERLINK(\"\"http://x\"\")\u{1b}[31m\","
        )),
        "{csv}"
    );
    assert!(csv.contains(",0.000001,"), "a micro-dollar shows: {csv}");
    let table = format("table");
    assert!(!table.contains('\u{1b}'), "no escape reaches a terminal");
    assert!(table.contains("+0.000001"), "{table}");
    let xlsx = scratch.path().join("changes.xlsx");
    ok(db
        .cmd()
        .args(["changes", "--format", "xlsx", "-o"])
        .arg(&xlsx)
        .output()
        .unwrap());
    assert!(std::fs::metadata(&xlsx).unwrap().len() > 1000);
    // The workbook ties out: human headers, the micro-dollar kept in the
    // cell, the TOTAL's change a SUM of the changes above it.
    use calamine::{open_workbook, Data, Reader, Xlsx};
    let mut workbook: Xlsx<_> = open_workbook(&xlsx).unwrap();
    let sheet = workbook.worksheet_range("Changes").unwrap();
    let header: Vec<String> = (0..sheet.width())
        .map(|c| sheet.get((0, c)).unwrap().to_string())
        .collect();
    let change = header
        .iter()
        .position(|h| h == "Change total cost (USD)")
        .unwrap_or_else(|| panic!("{header:?}"));
    let last = sheet.height() - 1;
    let lines: f64 = (1..last)
        .filter_map(|r| match sheet.get((r, change)) {
            Some(Data::Float(v)) => Some(*v),
            _ => None,
        })
        .sum();
    assert!(matches!(sheet.get((last, change)), Some(Data::Float(v)) if (v - lines).abs() < 1e-9));
    let formulas = workbook.worksheet_formula("Changes").unwrap();
    let formula = formulas
        .get_value((last as u32, change as u32))
        .cloned()
        .unwrap_or_default();
    assert!(formula.starts_with("SUM("), "{formula:?}");
    let styles = {
        let mut archive = ::zip::ZipArchive::new(std::fs::File::open(&xlsx).unwrap()).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut archive.by_name("xl/styles.xml").unwrap(), &mut text)
            .unwrap();
        text
    };
    assert!(
        styles.contains("#,##0.00####"),
        "cents and sub-cents: {styles}"
    );
}

#[test]
fn a_tenant_day_deleted_and_back_is_restated_both_ways_and_an_errors_only_day_bills_nothing() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("reports");
    let quiet_call = format!(
        "INSERT INTO call_logs (call_id, tenant_id, status, outcome, stt_cost_usd, llm_cost_usd,
                                tts_cost_usd, total_cost_usd, duration_seconds, created_at)
         VALUES ('quiet-1', '{QUIET}', 'completed', 'booked', 0.100000, 0.200000, 0.300000,
                 0.600000, 90, '2026-03-08 12:00+00')"
    );
    db.exec(&quiet_call);
    // An errors-only day of the same tenant, deleted later: no billed figure.
    db.exec(&format!(
        "INSERT INTO system_errors (error_id, tenant_id, error_type, severity, resolved, created_at)
         VALUES (gen_random_uuid(), '{QUIET}', 'stt_timeout', 'critical', false, '2026-03-09 12:00+00')"
    ));
    run(&db, &out, &WINDOW);
    db.exec("DELETE FROM call_logs WHERE call_id = 'quiet-1'");
    db.exec(&format!(
        "DELETE FROM system_errors WHERE tenant_id = '{QUIET}'"
    ));
    run(&db, &out, &WINDOW);
    let deleting_run = db.rows(
        "SELECT run_id FROM analytics.rollup_runs WHERE status = 'succeeded' ORDER BY finished_at DESC LIMIT 1",
    )[0]
        .clone();
    // The call comes back; the tenant's window holds no row any more, so
    // this run copies its rows straight in, and still records them.
    db.exec(&quiet_call);
    let mut quiet = WINDOW.to_vec();
    quiet.extend(["--tenant", QUIET]);
    run(&db, &out, &quiet);
    assert_eq!(
        db.rows(&format!(
            "SELECT table_name, day, change, previous_run_id = '{deleting_run}'
             FROM analytics.restatements WHERE change = 'inserted' ORDER BY table_name"
        )),
        [
            "tenant_daily|2026-03-08|inserted|true",
            "tenant_daily_outcomes|2026-03-08|inserted|true"
        ]
    );
    // `changes`: the day's deletion and its return, not the errors-only day.
    let report = changes_json(&db, &["--tenant", QUIET]);
    let days: Vec<(String, String, String)> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["tenant_id"].is_null())
        .map(|r| {
            (
                r["day"].as_str().unwrap().to_string(),
                r["old_total_cost_usd"].as_str().unwrap().to_string(),
                r["new_total_cost_usd"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let day = |old: &str, new: &str| ("2026-03-08".to_string(), old.to_string(), new.to_string());
    assert_eq!(
        days,
        [day("0.600000", "0.000000"), day("0.000000", "0.600000")]
    );
    assert_eq!(report["change_total_cost_usd"], "0.000000");
    // The last run's changes alone: the return.
    assert_eq!(changes_json(&db, &["--run", "last"])["restatements"], 1);
}

#[test]
fn the_closed_books_alert_skipped_a_nights_changes_when_it_failed() {
    // The guide's `run && changes --run last --closed-before …` skipped
    // a night whose alert failed (or whose run exited 1 after its
    // commit): with --alert every run's changes are reported once, after
    // the report is written, whatever failed in between.
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("reports");
    run(&db, &out, &WINDOW);
    let alert = |output: &std::path::Path| {
        db.cmd()
            .args([
                "changes",
                "--alert",
                "closed-books",
                "--closed-before",
                "2026-03-09",
            ])
            .args(["--format", "csv", "-o"])
            .arg(output)
            .output()
            .unwrap()
    };
    let report = scratch.path().join("closed.csv");
    assert_eq!(
        alert(&report).status.code(),
        Some(0),
        "nothing restated yet"
    );
    db.exec(&format!(
        "UPDATE call_logs SET total_cost_usd = total_cost_usd + 0.500000
         WHERE call_id = {BERLIN_CALL}"
    ));
    run(&db, &out, &WINDOW);
    // The first night's alert cannot write its report: nothing is marked.
    let unwritable = scratch.path().join("no-such-folder").join("closed.csv");
    assert_ne!(alert(&unwritable).status.code(), Some(0));
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM analytics.restatement_alerts"),
        0
    );
    // Another run meanwhile (the "last" one), which changes nothing.
    run(&db, &out, &WINDOW);
    let reported = alert(&report);
    assert_fails(&reported, 3, "--closed-before 2026-03-09: 1 restatement(s)");
    let csv = std::fs::read_to_string(&report).unwrap();
    assert!(
        csv.contains(&format!("{BERLIN},Berliner Kanzlei,2026-03-08")),
        "{csv}"
    );
    // Reported once: the next night says nothing of it.
    let next = alert(&report);
    assert_eq!(next.status.code(), Some(0), "{}", stderr_of(&next));
    let csv = std::fs::read_to_string(&report).unwrap();
    assert!(!csv.contains(BERLIN), "{csv}");
    // Another alert has its own marks.
    let other = db
        .cmd()
        .args([
            "changes",
            "--alert",
            "audit",
            "--closed-before",
            "2026-03-09",
        ])
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(3), "{}", stderr_of(&other));
    let bad = db.cmd().args(["changes", "--alert", ""]).output().unwrap();
    assert_fails(&bad, 2, "--alert");
}
