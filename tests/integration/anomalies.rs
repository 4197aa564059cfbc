//! `callrollup anomalies` and the nightly run's anomaly lines: the injected
//! anomaly found with the excess Postgres computes from the same figures,
//! unknown days never shown as zeros, short histories not assessed, a
//! hostile name harmless in every format, the gate and the gauge.

use std::path::Path;

use serde_json::Value;

use crate::util::{assert_fails, generated_platform, ok, run, stderr_of, stdout_of, TestDb};

const INJECTED: [&str; 2] = ["2026-11-15", "2026-11-16"];
const HOSTILE: &str = "=HYPERLINK(\"http://x\")\u{1b}[2J <b>Loop</b>";

/// A generated platform (45 days to 2026-11-20) whose largest tenant with a
/// time zone had its LLM cost per call tripled on two local days (its
/// total with it), by SQL straight into `call_logs`, and a hostile name;
/// rolled up whole. The tenant's id.
fn platform_with_an_llm_loop(out: &Path) -> (TestDb, String) {
    let db = generated_platform("30", "60000", "45", "2026-11-20", "5");
    let tenant = db.rows(
        "SELECT t.tenant_id FROM tenants t JOIN call_logs c USING (tenant_id)
         WHERE t.timezone IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
    )[0]
    .clone();
    db.exec(&format!(
        "UPDATE call_logs c
            SET llm_cost_usd = c.llm_cost_usd * 3,
                total_cost_usd = c.total_cost_usd + coalesce(2 * c.llm_cost_usd, 0)
           FROM tenants t
          WHERE t.tenant_id = c.tenant_id AND t.tenant_id = '{tenant}'
            AND (c.created_at AT TIME ZONE t.timezone)::date IN ('{}', '{}');
         UPDATE tenants SET business_name = $${HOSTILE}$$ WHERE tenant_id = '{tenant}';",
        INJECTED[0], INJECTED[1]
    ));
    run(&db, out, &["--from", "2026-10-07", "--to", "2026-11-20"]);
    (db, tenant)
}

fn anomalies(db: &TestDb, args: &[&str]) -> std::process::Output {
    db.cmd().arg("anomalies").args(args).output().unwrap()
}

/// `anomalies` over the injected days' fortnight, with `extra`.
fn fortnight(db: &TestDb, extra: &[&str]) -> std::process::Output {
    anomalies(
        db,
        &[&["--from", "2026-11-08", "--to", "2026-11-20"], extra].concat(),
    )
}

fn json(output: std::process::Output) -> Value {
    serde_json::from_slice(&ok(output).stdout).unwrap()
}

/// Postgres' answer for the tenant's LLM line of `day`: the median of the
/// LLM cost per billable minute over the 14 days before, at the day's
/// minutes, rounded to the micro-dollar; and the day's cost minus it.
fn postgres_excess(db: &TestDb, tenant: &str, day: &str) -> (String, String) {
    let row = db.rows(&format!(
        "WITH before AS (
             SELECT (llm_cost_usd * 60)::numeric(60, 30) / billable_seconds AS per_minute,
                    row_number() OVER (ORDER BY (llm_cost_usd * 60)::numeric(60, 30) / billable_seconds) AS n
               FROM analytics.tenant_daily
              WHERE tenant_id = '{tenant}' AND calls > 0
                AND day BETWEEN date '{day}' - 14 AND date '{day}' - 1),
         median AS (SELECT avg(per_minute) AS m FROM before WHERE n IN (7, 8))
         SELECT round(m * billable_seconds / 60, 6),
                llm_cost_usd - round(m * billable_seconds / 60, 6)
           FROM analytics.tenant_daily, median
          WHERE tenant_id = '{tenant}' AND day = '{day}'"
    ));
    let cells: Vec<&str> = row[0].split('|').collect();
    (cells[0].to_string(), cells[1].to_string())
}

#[test]
fn the_injected_llm_loop_is_found_with_the_excess_postgres_computes() {
    let scratch = tempfile::tempdir().unwrap();
    let reports = scratch.path().join("reports");
    let (db, tenant) = platform_with_an_llm_loop(&reports);
    let found = json(fortnight(&db, &["--format", "json"]));
    let rises = found["rises"].as_array().unwrap();
    let mut lines: Vec<(String, String, String, String)> = rises
        .iter()
        .map(|l| {
            (
                l["tenant_id"].as_str().unwrap_or("platform").to_string(),
                l["day"].as_str().unwrap().to_string(),
                l["component"].as_str().unwrap().to_string(),
                l["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    lines.sort();
    let want: Vec<(String, String, String, String)> = INJECTED
        .iter()
        .map(|d| {
            (
                tenant.clone(),
                d.to_string(),
                "llm".to_string(),
                "unit_cost".to_string(),
            )
        })
        .collect();
    assert_eq!(lines, want, "{found:#}");
    for line in rises {
        let day = line["day"].as_str().unwrap();
        let (expected, excess) = postgres_excess(&db, &tenant, day);
        assert_eq!(line["expected_cost_usd"], expected.as_str(), "{line:#}");
        assert_eq!(line["excess_usd"], excess.as_str(), "{line:#}");
        assert_eq!(line["unit"], "minute");
        assert_eq!(line["unit_baseline_days"].as_array().unwrap().len(), 14);
        assert_eq!(line["business_name"], HOSTILE);
    }
    // Ranked by excess, largest first.
    let excess: Vec<rust_decimal::Decimal> = rises
        .iter()
        .map(|l| l["excess_usd"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(excess.windows(2).all(|w| w[0] >= w[1]), "{excess:?}");
    assert!(found["unknown_days"].as_array().unwrap().is_empty());

    // The report files say the same as the tables.
    let from_files = json(fortnight(
        &db,
        &["--reports", reports.to_str().unwrap(), "--format", "json"],
    ));
    assert_eq!(from_files["rises"], found["rises"]);
    assert_eq!(from_files["falls"], found["falls"]);
    assert_eq!(from_files["not_assessed"], found["not_assessed"]);

    // The hostile name: no control character on a terminal, a text cell
    // (never a formula) in CSV and in the workbook.
    let table = stdout_of(&ok(fortnight(&db, &[])));
    assert!(!table.contains('\u{1b}'), "{table}");
    assert!(table.contains("\u{fffd}[2J"), "{table}");
    let csv = stdout_of(&ok(fortnight(&db, &["--format", "csv"])));
    assert!(csv.contains("\"'=HYPERLINK(\"\"http://x\"\")"), "{csv}");
    assert_eq!(
        csv.lines().filter(|l| l.contains(",rise,")).count(),
        2,
        "{csv}"
    );
    let book = scratch.path().join("anomalies.xlsx");
    ok(fortnight(
        &db,
        &["--format", "xlsx", "-o", book.to_str().unwrap()],
    ));
    use calamine::{open_workbook, Data, Reader, Xlsx};
    let mut workbook: Xlsx<_> = open_workbook(&book).unwrap();
    let sheet = workbook.worksheet_range("Rises").unwrap();
    let header: Vec<String> = (0..sheet.width())
        .map(|c| sheet.get((0, c)).unwrap().to_string())
        .collect();
    let name_col = header.iter().position(|h| h == "Tenant").unwrap();
    let excess_col = header.iter().position(|h| h == "Excess (USD)").unwrap();
    assert_eq!(sheet.height(), 4, "header, two lines, TOTAL");
    assert!(
        matches!(sheet.get((1, name_col)), Some(Data::String(s)) if s.starts_with("'=HYPERLINK")),
        "{:?}",
        sheet.get((1, name_col))
    );
    // The lines hold the exact excess; the TOTAL is a SUM of them.
    for (row, want) in excess.iter().enumerate() {
        match sheet.get((row + 1, excess_col)) {
            Some(Data::Float(v)) => assert_eq!(
                rust_decimal::Decimal::from_f64_retain(*v)
                    .unwrap()
                    .round_dp(6),
                *want
            ),
            other => panic!("the excess is a number, not {other:?}"),
        }
    }
    let letter = (b'A' + excess_col as u8) as char;
    let formulas = workbook.worksheet_formula("Rises").unwrap();
    assert_eq!(
        formulas
            .get_value((3, excess_col as u32))
            .map(String::as_str),
        Some(format!("SUM({letter}2:{letter}3)").as_str())
    );

    // The pages list them and ring them on the charts; the name is text.
    let server = crate::util::Server::start(Some(&db), &[], &[]);
    for page in [
        format!("/tenants/{tenant}?from=2026-11-08&to=2026-11-20"),
        "/costs?from=2026-11-08&to=2026-11-20".to_string(),
    ] {
        let html = server.get(&page).text();
        assert!(html.contains("<h2>Cost anomalies</h2>"), "{page}: {html}");
        assert!(
            html.contains("cost anomaly (2)"),
            "{page}: the chart's rings"
        );
        assert!(html.contains("2 line(s) rose"), "{page}");
        assert!(!html.contains("<b>Loop"), "{page}: the name is escaped");
        assert!(html.contains("&lt;b&gt;Loop"), "{page}");
    }
    server.stop();
}

#[test]
fn the_nightly_run_names_the_anomalies_it_wrote_trips_its_gate_and_sets_its_gauge() {
    let scratch = tempfile::tempdir().unwrap();
    let reports = scratch.path().join("reports");
    let (db, tenant) = platform_with_an_llm_loop(&reports);
    let metrics = scratch.path().join("callrollup.prom");
    let output = db
        .cmd()
        .args([
            "run",
            "--from",
            "2026-11-14",
            "--to",
            "2026-11-17",
            "--fail-on",
            "cost_anomaly",
        ])
        .arg("--out")
        .arg(&reports)
        .arg("--metrics-file")
        .arg(&metrics)
        .output()
        .unwrap();
    assert_fails(&output, 3, "cost_anomaly has 2 lines (> 0)");
    let summary = stdout_of(&output);
    assert!(
        summary.contains("anomalies   2 cost rise(s)")
            && summary.contains("callrollup anomalies --from 2026-11-14 --to 2026-11-17"),
        "{summary}"
    );
    let lines: Vec<&str> = summary
        .lines()
        .filter(|l| l.contains(" llm unit_cost +"))
        .collect();
    assert_eq!(lines.len(), 2, "{summary}");
    assert!(lines.iter().all(|l| l.contains("\u{fffd}[2J")), "{summary}");
    assert!(!summary.contains('\u{1b}'));
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        prom.contains("callrollup_last_run_cost_anomalies{direction=\"rise\"} 2"),
        "{prom}"
    );
    // The same days without the gate: exit 0, the lines still shown.
    let output = ok(db
        .cmd()
        .args(["run", "--from", "2026-11-14", "--to", "2026-11-17"])
        .arg("--out")
        .arg(&reports)
        .output()
        .unwrap());
    assert!(stdout_of(&output).contains("anomalies   2 cost rise(s)"));
    let _ = tenant;
}

#[test]
fn unknown_days_stay_unknown_and_short_histories_are_not_assessed() {
    let scratch = tempfile::tempdir().unwrap();
    let db = TestDb::with_fixture();
    // A gap: 2026-03-10 is rolled up by no run.
    run(
        &db,
        &scratch.path().join("a"),
        &["--from", "2026-02-19", "--to", "2026-03-09"],
    );
    run(
        &db,
        &scratch.path().join("b"),
        &["--from", "2026-03-11", "--to", "2026-03-18"],
    );
    let found = json(anomalies(
        &db,
        &[
            "--from",
            "2026-03-05",
            "--to",
            "2026-03-18",
            "--format",
            "json",
        ],
    ));
    assert_eq!(found["unknown_days"], serde_json::json!(["2026-03-10"]));
    for line in found["rises"]
        .as_array()
        .unwrap()
        .iter()
        .chain(found["falls"].as_array().unwrap())
    {
        assert_ne!(line["day"], "2026-03-10", "{line:#}");
    }
    // The fixture's tenants have a few calls a day: each one not assessed,
    // with its reason.
    let not_assessed = found["not_assessed"].as_array().unwrap();
    assert!(!not_assessed.is_empty(), "{found:#}");
    for n in not_assessed {
        let reason = n["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("too few calls") || reason.starts_with("too short a history"),
            "{reason}"
        );
    }
    // The table says the day is unknown, and why nothing was assessed.
    let table = ok(anomalies(
        &db,
        &["--from", "2026-03-05", "--to", "2026-03-18"],
    ));
    let text = stdout_of(&table);
    assert!(
        text.contains("unknown, not assessed: 1 day(s) not covered by a succeeded run")
            && text.contains("2026-03-10"),
        "{text}"
    );
    assert!(text.contains("not assessed:"), "{text}");
    // Other formats say it on stderr.
    let csv = ok(anomalies(
        &db,
        &[
            "--from",
            "2026-03-05",
            "--to",
            "2026-03-18",
            "--format",
            "csv",
        ],
    ));
    assert!(stderr_of(&csv).contains("2026-03-10"));
}

#[test]
fn anomalies_refuses_bad_input_with_what_to_do() {
    let db = TestDb::with_fixture();
    assert_fails(
        &anomalies(&db, &["--last", "2x"]),
        2,
        "--last \"2x\" is not a length",
    );
    assert_fails(&anomalies(&db, &["--k", "-1"]), 2, "not a positive number");
    assert_fails(&anomalies(&db, &["--min-excess", "-5"]), 2, "0 or more");
    assert_fails(
        &anomalies(&db, &["--min-excess", "abc"]),
        2,
        "not an amount of dollars",
    );
    assert_fails(&anomalies(&db, &["--format", "xlsx"]), 2, "add -o FILE");
    assert_fails(
        &anomalies(&db, &["--tenant", "b0000000-0000-0000-0000-0000000000ff"]),
        2,
        "unknown --tenant",
    );
    assert_fails(
        &anomalies(&db, &["--last", "14d", "--month", "2026-03"]),
        2,
        "cannot be used with",
    );
}
