//! `callrollup costs`: every figure reconciles to Postgres' own sums, in
//! every format, and the files open safely and usefully in Excel.

use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use polars::prelude::*;
use rust_decimal::Decimal;

use crate::util::{assert_fails, ok, run, stderr_of, stdout_of, TestDb};

const NY: &str = "a0000000-0000-0000-0000-000000000001";
const PERIOD: [&str; 4] = ["--from", "2026-03-05", "--to", "2026-03-18"];

/// The fixture with a tenant whose costs are negative and one with a very
/// large cost, rolled up over the period and the 14 days before it.
fn rolled_up(out: &Path) -> TestDb {
    let db = TestDb::with_fixture();
    db.exec(
        "ALTER TABLE call_logs ALTER COLUMN total_cost_usd TYPE numeric(20, 6);
         UPDATE call_logs SET total_cost_usd = -1234.567891
          WHERE tenant_id = 'a0000000-0000-0000-0000-000000000009' AND call_id LIKE 's-%';
         UPDATE call_logs SET total_cost_usd = 98765432109.123457 WHERE call_id = 's-5-300';",
    );
    run(&db, out, &["--from", "2026-02-19", "--to", "2026-03-18"]);
    db
}

fn costs(db: &TestDb, args: &[&str]) -> std::process::Output {
    db.cmd().arg("costs").args(args).output().unwrap()
}

/// `costs <args> --format xlsx -o dir/name`, which must succeed: the
/// workbook's path.
fn costs_workbook(db: &TestDb, dir: &Path, name: &str, args: &[&str]) -> std::path::PathBuf {
    let path = dir.join(name);
    ok(costs(
        db,
        &[args, &["--format", "xlsx", "-o", path.to_str().unwrap()]].concat(),
    ));
    path
}

/// Postgres' own sums of the stored values per tenant, and the total.
fn expected(db: &TestDb) -> Vec<(Option<String>, [Decimal; 4])> {
    let rows = db.rows(
        "SELECT tenant_id::text, sum(stt_cost_usd), sum(llm_cost_usd), sum(tts_cost_usd), sum(total_cost_usd)
         FROM analytics.tenant_daily WHERE day BETWEEN '2026-03-05' AND '2026-03-18'
           -- zero-cost platform rows are no line of a cost report
           AND NOT (tenant_id = '00000000-0000-0000-0000-000000000000' AND calls = 0 AND total_cost_usd = 0)
         GROUP BY ROLLUP (tenant_id)
         -- the report's order: largest total cost first, the TOTAL last
         ORDER BY tenant_id IS NULL, sum(total_cost_usd) DESC, tenant_id",
    );
    rows.iter()
        .map(|r| {
            let cells: Vec<&str> = r.split('|').collect();
            let id = (cells[0] != "∅").then(|| cells[0].to_string());
            let money = |i: usize| Decimal::from_str(cells[i]).unwrap();
            (id, [money(1), money(2), money(3), money(4)])
        })
        .collect()
}

const MONEY: [&str; 4] = [
    "stt_cost_usd",
    "llm_cost_usd",
    "tts_cost_usd",
    "total_cost_usd",
];

#[test]
fn every_money_cell_of_every_format_equals_postgres_sums() {
    let scratch = tempfile::tempdir().unwrap();
    let db = rolled_up(&scratch.path().join("reports"));
    let want = expected(&db);
    assert!(
        want.iter().any(|(_, m)| m[3].is_sign_negative()),
        "a negative tenant"
    );
    assert!(
        want.iter()
            .any(|(_, m)| m[3] > Decimal::from(98_765_432_109i64)),
        "a very large one"
    );

    // JSON: money as exact decimal strings.
    let json: serde_json::Value = serde_json::from_slice(
        &ok(costs(&db, &[&PERIOD[..], &["--format", "json"]].concat())).stdout,
    )
    .unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), want.len());
    for (row, (id, money)) in rows.iter().zip(&want) {
        assert_eq!(row["tenant_id"].as_str(), id.as_deref());
        for (name, expected) in MONEY.iter().zip(money) {
            let text = row[name]
                .as_str()
                .unwrap_or_else(|| panic!("{name} is a string: {row}"));
            assert_eq!(
                Decimal::from_str(text).unwrap(),
                *expected,
                "{name} of {id:?}"
            );
        }
    }

    // CSV and Parquet: the same columns, 6 decimals.
    let csv_path = scratch.path().join("costs.csv");
    let parquet_path = scratch.path().join("costs.parquet");
    for (format, path) in [("csv", &csv_path), ("parquet", &parquet_path)] {
        ok(costs(
            &db,
            &[
                &PERIOD[..],
                &["--format", format, "-o", path.to_str().unwrap()],
            ]
            .concat(),
        ));
    }
    let csv = CsvReadOptions::default()
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(csv_path.clone()))
        .unwrap()
        .finish()
        .unwrap();
    let parquet = ParquetReader::new(std::fs::File::open(&parquet_path).unwrap())
        .finish()
        .unwrap();
    for name in MONEY {
        let csv_cells: Vec<Decimal> = csv
            .column(name)
            .unwrap()
            .str()
            .unwrap()
            .into_iter()
            .map(|v| Decimal::from_str(v.unwrap()).unwrap())
            .collect();
        let parquet_cells: Vec<Decimal> =
            callrollup::money::decimals(parquet.column(name).unwrap())
                .unwrap()
                .into_iter()
                .map(Option::unwrap)
                .collect();
        let expected: Vec<Decimal> = want
            .iter()
            .map(|(_, m)| m[MONEY.iter().position(|n| *n == name).unwrap()])
            .collect();
        assert_eq!(csv_cells, expected, "csv {name}");
        assert_eq!(parquet_cells, expected, "parquet {name}");
    }

    // XLSX: the exact figures as numbers (a spreadsheet number holds 15
    // significant digits), the TOTAL a SUM of the cells above it.
    let xlsx_path = costs_workbook(&db, scratch.path(), "costs.xlsx", &PERIOD);
    use calamine::{open_workbook, Data, Reader, Xlsx};
    let mut workbook: Xlsx<_> = open_workbook(&xlsx_path).unwrap();
    let sheet = workbook.worksheet_range("Costs").unwrap();
    let header = sheet_header(&sheet);
    let headers = [
        "STT cost (USD)",
        "LLM cost (USD)",
        "TTS cost (USD)",
        "Total cost (USD)",
    ];
    for (i, (_, money)) in want.iter().enumerate() {
        for ((name, exact), title) in MONEY.iter().zip(money).zip(headers) {
            let col = header.iter().position(|h| h == title).unwrap();
            match sheet.get((i + 1, col)) {
                Some(Data::Float(v)) => {
                    let exact_f64: f64 = exact.to_string().parse().unwrap();
                    if exact.abs() < Decimal::from(1_000_000_000) {
                        assert_eq!(
                            Decimal::from_f64_retain(*v).unwrap().round_dp(6),
                            *exact,
                            "{name} of row {i}"
                        );
                    } else {
                        assert!(
                            (v - exact_f64).abs() <= exact_f64.abs() * 1e-15,
                            "{name}: {v} vs {exact}"
                        );
                    }
                }
                other => panic!("{name} is a number, not {other:?}"),
            }
        }
    }
    // The TOTAL row's money cells are SUMs of the lines above.
    let formulas = workbook.worksheet_formula("Costs").unwrap();
    let total_row = want.len();
    for title in headers {
        let col = header.iter().position(|h| h == title).unwrap();
        let letter = (b'A' + col as u8) as char;
        assert_eq!(
            formulas
                .get_value((total_row as u32, col as u32))
                .map(String::as_str),
            Some(format!("SUM({letter}2:{letter}{total_row})").as_str()),
            "{title}"
        );
    }
}

/// A sheet's header row, as people read it.
fn sheet_header(sheet: &calamine::Range<calamine::Data>) -> Vec<String> {
    (0..sheet.width())
        .map(|c| sheet.get((0, c)).unwrap().to_string())
        .collect()
}

fn zip_text(path: &Path, member: &str) -> String {
    let mut archive = ::zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut text = String::new();
    archive
        .by_name(member)
        .unwrap_or_else(|_| panic!("{member} in the workbook"))
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn the_workbook_has_currency_cells_dates_a_chart_and_an_about_sheet() {
    let scratch = tempfile::tempdir().unwrap();
    let db = rolled_up(&scratch.path().join("reports"));
    let path = costs_workbook(
        &db,
        scratch.path(),
        "by-day.xlsx",
        &[&PERIOD[..], &["--by", "day"]].concat(),
    );
    use calamine::{open_workbook, Data, Reader, Xlsx};
    let mut workbook: Xlsx<_> = open_workbook(&path).unwrap();
    assert_eq!(workbook.sheet_names(), ["Costs", "Daily", "About"]);
    let sheet = workbook.worksheet_range("Costs").unwrap();
    let header = sheet_header(&sheet);
    let day_col = header.iter().position(|h| h == "Day").unwrap();
    let name_col = header.iter().position(|h| h == "Tenant").unwrap();
    assert!(
        matches!(sheet.get((1, day_col)), Some(Data::DateTime(_))),
        "days are dates"
    );
    let names: Vec<String> = (1..sheet.height())
        .map(|r| sheet.get((r, name_col)).unwrap().to_string())
        .collect();
    assert!(
        names.contains(&"'=HYPERLINK(\"http://x\")".to_string()),
        "formula guard: {names:?}"
    );
    assert_eq!(names.last().unwrap(), "TOTAL");
    let about = workbook.worksheet_range("About").unwrap();
    let text: Vec<String> = about.rows().map(|r| r[0].to_string()).collect();
    assert!(
        text.iter()
            .any(|l| l.starts_with("coverage: every day covered")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|l| l.starts_with("rounding: the total_cost_usd lines")),
        "{text:?}"
    );

    // Money cells carry a currency number format; the chart is native.
    let styles = zip_text(&path, "xl/styles.xml");
    assert!(
        styles.contains("formatCode=\"&quot;$&quot;#,##0.00\""),
        "{styles}"
    );
    let chart = zip_text(&path, "xl/charts/chart1.xml");
    assert!(
        chart.contains("<c:lineChart>") && chart.contains("Daily!$B$1"),
        "{chart}"
    );
    let frozen = zip_text(&path, "xl/worksheets/sheet1.xml");
    assert!(
        frozen.contains("state=\"frozen\"") && frozen.contains("<autoFilter"),
        "{frozen}"
    );
}

#[test]
fn csv_guards_text_cells_and_leaves_negative_numbers_alone() {
    let scratch = tempfile::tempdir().unwrap();
    let db = rolled_up(&scratch.path().join("reports"));
    let csv = stdout_of(&ok(costs(
        &db,
        &[&PERIOD[..], &["--format", "csv"]].concat(),
    )));
    assert!(csv.contains(",\"'=HYPERLINK(\"\"http://x\"\")\","), "{csv}");
    let bogus = csv.lines().find(|l| l.contains("Bogus Zone LLC")).unwrap();
    assert!(bogus.contains(",-") && !bogus.contains("'-"), "{bogus}");
    assert!(
        csv.starts_with("tenant_id,business_name,timezone,calls,"),
        "{csv}"
    );
}

#[test]
fn the_table_is_aligned_with_awkward_names() {
    let scratch = tempfile::tempdir().unwrap();
    let db = rolled_up(&scratch.path().join("reports"));
    db.exec(&format!(
        "UPDATE analytics.tenant_daily SET business_name = E'Zürich Ärzte, \"Süd\"\\nFiliale' WHERE tenant_id = '{NY}'"
    ));
    let table = stdout_of(&ok(costs(&db, &PERIOD)));
    let lines: Vec<&str> = table
        .lines()
        .take_while(|l| !l.starts_with("period"))
        .collect();
    let width = lines[0].chars().count();
    assert!(
        lines.iter().all(|l| l.chars().count() == width),
        "aligned:\n{table}"
    );
    assert!(
        table.contains("Zürich Ärzte, \"Süd\"") && table.contains("Filiale"),
        "{table}"
    );
    assert!(
        table.contains("rounding: the total_cost_usd lines add up to"),
        "{table}"
    );
}

#[test]
fn missing_and_partial_days_are_listed_and_require_complete_exits_3() {
    let out = tempfile::tempdir().unwrap();
    let db = rolled_up_to_the_10th(out.path());
    // The run started before the 7th had ended everywhere.
    db.exec("UPDATE analytics.rollup_runs SET started_at = '2026-03-08 00:00+00'");
    let period = ["--from", "2026-03-05", "--to", "2026-03-12"];
    let output = ok(costs(&db, &[&period[..], &["--format", "json"]].concat()));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        json["coverage"]["missing_days"],
        serde_json::json!(["2026-03-11", "2026-03-12"])
    );
    assert_eq!(
        json["coverage"]["partial_days"],
        serde_json::json!(["2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10"])
    );
    assert!(stderr_of(&output)
        .contains("2 day(s) not covered by a succeeded run: 2026-03-11, 2026-03-12"));
    let table = stdout_of(&ok(costs(&db, &period)));
    assert!(
        table.contains("coverage: 4 day(s) rolled up before they had ended everywhere"),
        "{table}"
    );
    let output = costs(&db, &[&period[..], &["--require-complete"]].concat());
    assert_fails(&output, 3, "--require-complete");
    assert!(
        stdout_of(&output).contains("TOTAL"),
        "the report is still printed"
    );
}

#[test]
fn reconcile_catches_a_summary_row_altered_by_hand() {
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    run(&db, out.path(), &PERIOD);
    let clean = ok(costs(&db, &[&PERIOD[..], &["--reconcile"]].concat()));
    assert!(
        stdout_of(&clean).contains("reconciliation: the summary equals the source"),
        "{}",
        stdout_of(&clean)
    );
    db.exec(&format!(
        "UPDATE analytics.tenant_daily SET total_cost_usd = total_cost_usd + 0.000001
         WHERE tenant_id = '{NY}' AND day = '2026-03-08'"
    ));
    let output = costs(
        &db,
        &[&PERIOD[..], &["--reconcile", "--format", "json"]].concat(),
    );
    let err = assert_fails(&output, 3, NY);
    assert!(
        err.contains("2026-03-08") && err.contains("difference 0.000001"),
        "{err}"
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["reconciliation"]["differences"][0]["tenant_id"], NY);
}

#[test]
fn reports_folder_gives_the_same_figures_as_the_database() {
    let scratch = tempfile::tempdir().unwrap();
    let reports = scratch.path().join("reports");
    let db = rolled_up(&reports);
    for by in ["tenant", "day", "month", "outcome"] {
        let args = [&PERIOD[..], &["--format", "json", "--by", by]].concat();
        let from_db: serde_json::Value =
            serde_json::from_slice(&ok(costs(&db, &args)).stdout).unwrap();
        let from_files: serde_json::Value = serde_json::from_slice(
            &ok(TestDb::cmd_without_db()
                .arg("costs")
                .args(&args)
                .arg("--reports")
                .arg(&reports)
                .output()
                .unwrap())
            .stdout,
        )
        .unwrap();
        assert!(from_db["rows"].as_array().unwrap().len() > 10, "{by}");
        assert_eq!(from_db["rows"], from_files["rows"], "--by {by}");
    }
}

#[test]
fn bad_input_gets_a_clear_error_and_empty_periods_an_empty_report() {
    let scratch = tempfile::tempdir().unwrap();
    let db = rolled_up(&scratch.path().join("reports"));
    assert_fails(
        &costs(&db, &["--month", "2026-13"]),
        2,
        "is not a month; use YYYY-MM",
    );
    assert_fails(
        &costs(&db, &["--from", "2026-02-30", "--to", "2026-03-01"]),
        2,
        "not a calendar date",
    );
    assert_fails(
        &costs(&db, &["--month", "2026-03", "--tenant", "nope"]),
        2,
        "is not a UUID",
    );
    assert_fails(
        &costs(&db, &["--month", "2026-03", "--format", "xlsx"]),
        2,
        "add -o FILE",
    );
    let empty = ok(costs(&db, &["--month", "2025-01"]));
    assert!(
        stderr_of(&empty).contains("the report is empty"),
        "{}",
        stderr_of(&empty)
    );

    let unwritable = scratch.path().join("no/such/folder/costs.csv");
    assert_fails(
        &costs(
            &db,
            &[
                &PERIOD[..],
                &["--format", "csv", "-o", unwritable.to_str().unwrap()],
            ]
            .concat(),
        ),
        1,
        "nothing was written",
    );
    assert!(!unwritable.exists());

    let fresh = TestDb::with_platform();
    assert_fails(
        &costs(&fresh, &["--month", "2026-03"]),
        2,
        "`callrollup run`",
    );
    let nothing = tempfile::tempdir().unwrap();
    assert_fails(
        &TestDb::cmd_without_db()
            .args(["costs", "--month", "2026-03", "--reports"])
            .arg(nothing.path())
            .output()
            .unwrap(),
        2,
        "holds no reports",
    );
}

/// The workbook's Daily sheet: the rows of `days`, each tenant column's
/// cells (None for an empty cell).
fn daily_cells(path: &Path) -> Vec<(String, Vec<Option<f64>>)> {
    use calamine::{open_workbook, Data, Reader, Xlsx};
    let mut workbook: Xlsx<_> = open_workbook(path).unwrap();
    let daily = workbook.worksheet_range("Daily").unwrap();
    let (height, width) = (daily.height(), daily.width());
    (1..height)
        .map(|r| {
            let day = match daily.get((r, 0)) {
                Some(Data::DateTime(d)) => (chrono::NaiveDate::from_ymd_opt(1899, 12, 30).unwrap()
                    + chrono::Days::new(d.as_f64() as u64))
                .to_string(),
                other => panic!("day {r} is a date, not {other:?}"),
            };
            let cells = (1..width)
                .map(|c| match daily.get((r, c)) {
                    Some(Data::Float(v)) => Some(*v),
                    None | Some(Data::Empty) => None,
                    other => panic!("a number or empty, not {other:?}"),
                })
                .collect();
            (day, cells)
        })
        .collect()
}

fn about_lines(path: &Path) -> Vec<String> {
    use calamine::{open_workbook, Reader, Xlsx};
    let mut workbook: Xlsx<_> = open_workbook(path).unwrap();
    let about = workbook.worksheet_range("About").unwrap();
    about.rows().map(|r| r[0].to_string()).collect()
}

/// Rolled up 2026-03-05..10 only: the 11th and 12th are no run's.
fn rolled_up_to_the_10th(out: &Path) -> TestDb {
    let db = TestDb::with_fixture();
    run(&db, out, &["--from", "2026-03-05", "--to", "2026-03-10"]);
    db
}

#[test]
fn costs_workbook_leaves_uncovered_days_blank() {
    let scratch = tempfile::tempdir().unwrap();
    let db = rolled_up_to_the_10th(&scratch.path().join("reports"));
    let path = costs_workbook(
        &db,
        scratch.path(),
        "days.xlsx",
        &["--from", "2026-03-05", "--to", "2026-03-12", "--by", "day"],
    );
    let days = daily_cells(&path);
    assert_eq!(days.len(), 8);
    for (day, cells) in &days {
        assert!(!cells.is_empty());
        if day.as_str() >= "2026-03-11" {
            assert!(
                cells.iter().all(Option::is_none),
                "{day} no run covered is blank, not 0.00: {cells:?}"
            );
        } else {
            assert!(cells.iter().all(Option::is_some), "{day}: {cells:?}");
        }
    }
    let about = about_lines(&path);
    assert!(
        about.iter().any(|l| l.starts_with(
            "Daily sheet: the 2 day(s) no succeeded run covered are left blank and the chart shows gaps"
        )),
        "{about:?}"
    );
    let chart = zip_text(&path, "xl/charts/chart1.xml");
    assert!(chart.contains("<c:dispBlanksAs val=\"gap\"/>"), "{chart}");
}

#[test]
fn costs_chart_axis_shows_dates_not_serial_numbers() {
    let scratch = tempfile::tempdir().unwrap();
    let db = rolled_up_to_the_10th(&scratch.path().join("reports"));
    let path = costs_workbook(
        &db,
        scratch.path(),
        "days.xlsx",
        &["--from", "2026-03-05", "--to", "2026-03-10"],
    );
    let chart = zip_text(&path, "xl/charts/chart1.xml");
    let axis = chart
        .split("<c:dateAx>")
        .nth(1)
        .unwrap_or_else(|| panic!("a date axis: {chart}"));
    let axis = axis.split("</c:dateAx>").next().unwrap();
    assert!(
        axis.contains("formatCode=\"yyyy-mm-dd\"") && axis.contains("sourceLinked=\"0\""),
        "{axis}"
    );
}

#[test]
fn costs_change_is_not_shown_against_an_incomplete_previous_period() {
    let db = TestDb::with_fixture();
    let out = tempfile::tempdir().unwrap();
    // The previous period of PERIOD is 02-19..03-04: 4 of its 14 days.
    run(
        &db,
        out.path(),
        &["--from", "2026-03-01", "--to", "2026-03-18"],
    );
    for by in ["tenant", "day", "month"] {
        let json: serde_json::Value = serde_json::from_slice(
            &ok(costs(
                &db,
                &[&PERIOD[..], &["--format", "json", "--by", by]].concat(),
            ))
            .stdout,
        )
        .unwrap();
        assert_eq!(json["previous_period_complete"], false, "{by}");
        // Every grouping compares with the same previous period.
        assert_eq!(json["previous_coverage"]["days_covered"], 4, "{by}");
        let rows = json["rows"].as_array().unwrap();
        let total = rows.last().unwrap();
        assert!(
            total["previous_total_cost_usd"].is_string(),
            "what was read is shown: {total}"
        );
        assert!(total["change_total_cost_pct"].is_null(), "{total}");
        assert!(total["change_total_cost_usd"].is_null(), "{total}");
        assert_eq!(total["comparable"], false);
        for row in rows {
            if row["comparable"] == false {
                assert!(row["change_total_cost_pct"].is_null(), "{by}: {row}");
                assert!(row["change_calls"].is_null(), "{by}: {row}");
            }
        }
        if by == "day" {
            // 03-05..08 compare with 02-19..22, no run's; 03-15..18 with
            // 03-01..04, which are covered.
            let on = |d: &str| rows.iter().find(|r| r["day"] == d).unwrap();
            assert_eq!(on("2026-03-05")["comparable"], false);
            assert_eq!(on("2026-03-18")["comparable"], true);
        }
    }
    let table = stdout_of(&ok(costs(&db, &PERIOD)));
    assert!(
        table.contains(
            "previous period 2026-02-19..2026-03-04 incomplete: 4 of 14 days covered; no change shown"
        ),
        "{table}"
    );
    let total_line = table.lines().find(|l| l.contains("TOTAL")).unwrap();
    assert!(
        total_line.trim_end().ends_with("n/a │"),
        "no change against the missing days: {total_line}"
    );
    let csv = stdout_of(&ok(costs(
        &db,
        &[&PERIOD[..], &["--format", "csv"]].concat(),
    )));
    assert!(
        csv.lines().next().unwrap().contains(",comparable,"),
        "{csv}"
    );

    // Once the previous period is rolled up, the change is shown.
    run(
        &db,
        out.path(),
        &["--from", "2026-02-19", "--to", "2026-02-28"],
    );
    let json: serde_json::Value = serde_json::from_slice(
        &ok(costs(&db, &[&PERIOD[..], &["--format", "json"]].concat())).stdout,
    )
    .unwrap();
    assert_eq!(json["previous_period_complete"], true);
    let total = json["rows"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(total["comparable"], true);
    assert!(total["change_total_cost_pct"].is_string(), "{total}");
}

#[test]
fn costs_for_a_month_without_rolled_up_days_says_so() {
    let scratch = tempfile::tempdir().unwrap();
    let db = rolled_up(&scratch.path().join("reports"));
    // March has figures; April none at all.
    let output = ok(costs(&db, &["--month", "2026-04"]));
    let note =
        "no rolled-up days in 2026-04: run `callrollup run --from 2026-04-01 --to 2026-04-30`";
    let table = stdout_of(&output);
    assert!(table.contains(note), "{table}");
    assert!(!table.contains("-100"), "no -100 % change: {table}");
    assert!(stderr_of(&output).contains(note), "{}", stderr_of(&output));
    let json: serde_json::Value =
        serde_json::from_slice(&ok(costs(&db, &["--month", "2026-04", "--format", "json"])).stdout)
            .unwrap();
    let total = &json["rows"][0];
    assert!(total["tenant_id"].is_null());
    assert!(total["change_total_cost_pct"].is_null(), "{total}");
    assert!(
        json["notes"][0].as_str().unwrap().starts_with(note),
        "{json}"
    );
}

#[test]
fn costs_state_the_calls_with_missing_or_mismatched_costs() {
    let scratch = tempfile::tempdir().unwrap();
    let reports = scratch.path().join("reports");
    let db = rolled_up(&reports);
    let sums = db.rows(
        "SELECT sum(calls_missing_cost), sum(cost_mismatch_calls)
         FROM analytics.tenant_daily WHERE day BETWEEN '2026-03-05' AND '2026-03-18'",
    );
    let sums: Vec<i64> = sums[0].split('|').map(|v| v.parse().unwrap()).collect();
    assert!(sums[0] > 0 && sums[1] > 0, "{sums:?}");
    let args = [&PERIOD[..], &["--format", "json"]].concat();
    let from_db: serde_json::Value = serde_json::from_slice(&ok(costs(&db, &args)).stdout).unwrap();
    let from_files: serde_json::Value = serde_json::from_slice(
        &ok(TestDb::cmd_without_db()
            .arg("costs")
            .args(&args)
            .arg("--reports")
            .arg(&reports)
            .output()
            .unwrap())
        .stdout,
    )
    .unwrap();
    for json in [&from_db, &from_files] {
        let quality = &json["data_quality"];
        assert_eq!(quality["calls_missing_cost"], sums[0], "{quality}");
        assert_eq!(quality["cost_mismatch_calls"], sums[1], "{quality}");
        let total = json["rows"].as_array().unwrap().last().unwrap();
        assert_eq!(total["calls_missing_cost"], sums[0]);
        assert_eq!(total["cost_mismatch_calls"], sums[1]);
    }
    let table = stdout_of(&ok(costs(&db, &PERIOD)));
    assert!(
        table.contains(&format!(
            "data quality: behind the total, {} call(s) had a missing cost component (calls_missing_cost) and {} call(s) had components that do not add up to their total (cost_mismatch_calls)",
            sums[0], sums[1]
        )) && table.contains("data_quality_findings, kinds missing_cost and cost_mismatch"),
        "{table}"
    );
    let path = costs_workbook(&db, scratch.path(), "costs.xlsx", &PERIOD);
    assert!(
        about_lines(&path)
            .iter()
            .any(|l| l.starts_with("data quality: behind the total")),
        "{:?}",
        about_lines(&path)
    );
}

#[test]
fn an_unknown_tenant_exits_2_in_costs_and_errors() {
    let scratch = tempfile::tempdir().unwrap();
    let reports = scratch.path().join("reports");
    let db = rolled_up(&reports);
    let stranger = "b0000000-0000-0000-0000-0000000000ff";
    assert_fails(
        &costs(&db, &[&PERIOD[..], &["--tenant", stranger]].concat()),
        2,
        &format!("unknown --tenant {stranger}"),
    );
    assert_fails(
        &TestDb::cmd_without_db()
            .arg("costs")
            .args(PERIOD)
            .args(["--tenant", NY, "--tenant", stranger, "--reports"])
            .arg(&reports)
            .output()
            .unwrap(),
        2,
        &format!("unknown --tenant {stranger}"),
    );
    // `errors` answered a typo with an empty report.
    assert_fails(
        &db.cmd()
            .arg("errors")
            .args(PERIOD)
            .args(["--tenant", stranger])
            .output()
            .unwrap(),
        2,
        &format!("unknown --tenant {stranger}"),
    );
    assert_fails(
        &TestDb::cmd_without_db()
            .arg("errors")
            .args(PERIOD)
            .args(["--tenant", stranger, "--reports"])
            .arg(&reports)
            .output()
            .unwrap(),
        2,
        &format!("unknown --tenant {stranger}"),
    );
    // A known tenant with nothing in the period: an empty report, a note.
    let output = ok(costs(&db, &["--month", "2025-01", "--tenant", NY]));
    assert!(
        stderr_of(&output).contains(&format!("tenant {NY} has no rows")),
        "{}",
        stderr_of(&output)
    );
    assert!(stdout_of(&output).contains("TOTAL"));
}

#[test]
fn costs_table_is_ranked_and_trimmed_by_sort_and_top() {
    let scratch = tempfile::tempdir().unwrap();
    let db = rolled_up(&scratch.path().join("reports"));
    let all: serde_json::Value = serde_json::from_slice(
        &ok(costs(&db, &[&PERIOD[..], &["--format", "json"]].concat())).stdout,
    )
    .unwrap();
    let all_rows = all["rows"].as_array().unwrap();
    let mut by_calls: Vec<(i64, String)> = all_rows[..all_rows.len() - 1]
        .iter()
        .map(|r| {
            (
                r["calls"].as_i64().unwrap(),
                r["tenant_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    by_calls.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));

    let table = stdout_of(&ok(costs(
        &db,
        &[&PERIOD[..], &["--sort", "calls", "--top", "3", "--wide"]].concat(),
    )));
    let ids: Vec<&str> = table
        .split_whitespace()
        .filter(|w| w.len() == 36 && w.matches('-').count() == 4)
        .collect();
    let want: Vec<&str> = by_calls.iter().take(3).map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids, want, "{table}");
    assert!(table.contains("TOTAL"), "{table}");
    assert!(
        table.contains(&format!(
            "rows: the top 3 of {} by calls; the other {} are added up in one line (the CSV and JSON leave them out), the TOTAL is of all {}",
            by_calls.len(),
            by_calls.len() - 3,
            by_calls.len()
        )),
        "{table}"
    );
    // The lines shown add up to the TOTAL: the rest is one "Other" line.
    assert!(
        table.contains(&format!("Other ({} rows)", by_calls.len() - 3)),
        "{table}"
    );
    // The TOTAL is still the total of every row.
    let json: serde_json::Value = serde_json::from_slice(
        &ok(costs(
            &db,
            &[
                &PERIOD[..],
                &["--sort", "calls", "--top", "3", "--format", "json"],
            ]
            .concat(),
        ))
        .stdout,
    )
    .unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[3], *all_rows.last().unwrap());

    // Cost per call tells tenants apart: 4 decimals.
    let first = all_rows.iter().find(|r| r["tenant_id"] == want[0]).unwrap();
    // Rounded once, from the exact quotient (not from the 6 decimals).
    let per_call = (Decimal::from_str(first["total_cost_usd"].as_str().unwrap()).unwrap()
        / Decimal::from(first["calls"].as_i64().unwrap()))
    .round_dp_with_strategy(4, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    let mut per_call = per_call;
    per_call.rescale(4);
    let line = table.lines().find(|l| l.contains(want[0])).unwrap();
    assert!(
        line.split_whitespace().any(|w| w == per_call.to_string()),
        "{per_call} in {line}"
    );

    let err = assert_fails(
        &costs(&db, &[&PERIOD[..], &["--sort", "cost"]].concat()),
        2,
        "--sort \"cost\" is not a column of `costs --by tenant`; use one of:",
    );
    assert!(
        err.contains("total_cost_usd") && err.contains("cost_per_call_usd"),
        "{err}"
    );
}

#[test]
fn costs_leave_zero_cost_platform_rows_out() {
    let scratch = tempfile::tempdir().unwrap();
    let db = rolled_up(&scratch.path().join("reports"));
    let platform = "00000000-0000-0000-0000-000000000000";
    assert!(
        db.scalar_i64(&format!(
            "SELECT count(*) FROM analytics.tenant_daily WHERE tenant_id = '{platform}'
             AND day BETWEEN '2026-03-05' AND '2026-03-18' AND calls = 0 AND total_cost_usd = 0"
        )) > 0,
        "the fixture has platform rows"
    );
    for by in ["day", "tenant", "month", "outcome"] {
        let json: serde_json::Value = serde_json::from_slice(
            &ok(costs(
                &db,
                &[&PERIOD[..], &["--format", "json", "--by", by]].concat(),
            ))
            .stdout,
        )
        .unwrap();
        let rows = json["rows"].as_array().unwrap();
        assert!(
            rows.iter().all(|r| r["tenant_id"] != platform),
            "--by {by}: {rows:?}"
        );
    }
    let table = stdout_of(&ok(costs(&db, &[&PERIOD[..], &["--by", "day"]].concat())));
    assert!(!table.contains("(platform)"), "{table}");
}

/// `--by outcome` had no totals across tenants (a reader added them up by
/// hand), and a tenant billed on UTC because its zone was missing or
/// unknown looked like any other: both now, equal to Postgres' own answer.
#[test]
fn outcomes_had_no_totals_across_tenants_and_utc_billing_was_silent() {
    let scratch = tempfile::tempdir().unwrap();
    let db = rolled_up(&scratch.path().join("reports"));
    let json: serde_json::Value = serde_json::from_slice(
        &ok(costs(
            &db,
            &[&PERIOD[..], &["--by", "outcome", "--format", "json"]].concat(),
        ))
        .stdout,
    )
    .unwrap();
    assert_eq!(json["format_version"], 2);
    let ours: Vec<String> = json["outcome_totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}|{}|{}|{}",
                r["status"].as_str().unwrap(),
                r["outcome"].as_str().unwrap_or("∅"),
                r["calls"],
                r["total_cost_usd"].as_str().unwrap()
            )
        })
        .collect();
    let want = db.rows(
        "SELECT coalesce(status, 'TOTAL'), CASE WHEN status IS NULL THEN '∅' ELSE outcome END,
                sum(calls), sum(total_cost_usd)
         FROM analytics.tenant_daily_outcomes
         WHERE day BETWEEN '2026-03-05' AND '2026-03-18'
           AND NOT (tenant_id = '00000000-0000-0000-0000-000000000000' AND calls = 0 AND total_cost_usd = 0)
         GROUP BY GROUPING SETS ((status, outcome), ())
         ORDER BY status IS NULL, sum(total_cost_usd) DESC, status, outcome",
    );
    assert_eq!(ours, want);

    // Tenants billed on UTC days: those with invalid_timezone findings.
    let json: serde_json::Value = serde_json::from_slice(
        &ok(costs(&db, &[&PERIOD[..], &["--format", "json"]].concat())).stdout,
    )
    .unwrap();
    let mut flagged: Vec<String> = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["zone_unknown"] == true && !r["tenant_id"].is_null())
        .map(|r| r["tenant_id"].as_str().unwrap().to_string())
        .collect();
    flagged.sort();
    let want = db.rows(
        "SELECT DISTINCT tenant_id::text FROM analytics.data_quality_findings
         WHERE kind = 'invalid_timezone' AND day BETWEEN '2026-03-05' AND '2026-03-18'
         ORDER BY 1",
    );
    assert!(!want.is_empty(), "the fixture has tenants without a zone");
    assert_eq!(flagged, want);
    let table = stdout_of(&ok(costs(&db, &PERIOD)));
    assert!(table.contains("No Zone LLC†"), "{table}");
    assert!(table.contains("† zone missing or unknown"), "{table}");
}

/// `--by month --from 2026-03-10` labelled the 9 days of March "2026-03"
/// and compared them with other days than `--by tenant` did.
#[test]
fn a_partial_month_was_labelled_as_the_whole_month() {
    let scratch = tempfile::tempdir().unwrap();
    let db = rolled_up(&scratch.path().join("reports"));
    let args = ["--from", "2026-03-10", "--to", "2026-03-18"];
    let table = stdout_of(&ok(costs(&db, &[&args[..], &["--by", "month"]].concat())));
    assert!(table.contains("2026-03-10..2026-03-18"), "{table}");
    let json = |by: &str| -> serde_json::Value {
        serde_json::from_slice(
            &ok(costs(
                &db,
                &[&args[..], &["--by", by, "--format", "json"]].concat(),
            ))
            .stdout,
        )
        .unwrap()
    };
    let (month, tenant) = (json("month"), json("tenant"));
    assert_eq!(month["previous_period"], tenant["previous_period"]);
    let total = |j: &serde_json::Value| j["rows"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        total(&month)["previous_total_cost_usd"],
        total(&tenant)["previous_total_cost_usd"]
    );
    let row = &month["rows"][0];
    assert_eq!(row["month"], "2026-03");
    assert_eq!(row["first_day"], "2026-03-10");
    assert_eq!(row["last_day"], "2026-03-18");
}

/// Each line was stored rounded to cents and the TOTAL was the exact total
/// rounded: Excel's SUM of the lines gave 87528.01 where TOTAL said
/// 87528.04. Lines now hold the exact figure, the lines `--top` leaves out
/// are one "Other" line, and the TOTAL is a SUM of the cells above it.
#[test]
fn the_workbook_total_was_not_the_sum_of_its_rows() {
    use calamine::{open_workbook, Data, Reader, Xlsx};
    let scratch = tempfile::tempdir().unwrap();
    let db = TestDb::with_fixture();
    run(
        &db,
        &scratch.path().join("reports"),
        &["--from", "2026-02-19", "--to", "2026-03-18"],
    );
    let path = costs_workbook(
        &db,
        scratch.path(),
        "top.xlsx",
        &[&PERIOD[..], &["--top", "3"]].concat(),
    );
    let mut workbook: Xlsx<_> = open_workbook(&path).unwrap();
    let sheet = workbook.worksheet_range("Costs").unwrap();
    let header = sheet_header(&sheet);
    let col = |title: &str| header.iter().position(|h| h == title).unwrap();
    let (name, total) = (col("Tenant"), col("Total cost (USD)"));
    let names: Vec<String> = (1..sheet.height())
        .map(|r| sheet.get((r, name)).unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 5, "3 lines, Other, TOTAL: {names:?}");
    assert!(names[3].starts_with("Other ("), "{names:?}");
    assert_eq!(names[4], "TOTAL");
    let value = |r: usize| match sheet.get((r, total)) {
        Some(Data::Float(v)) => *v,
        other => panic!("row {r}: {other:?}"),
    };
    let lines: f64 = (1..=4).map(value).sum();
    assert!((lines - value(5)).abs() < 1e-6, "{lines} vs {}", value(5));
    // The exact total, as Postgres sums it.
    let exact: f64 = db.rows(
        "SELECT sum(total_cost_usd) FROM analytics.tenant_daily WHERE day BETWEEN '2026-03-05' AND '2026-03-18'",
    )[0]
        .parse()
        .unwrap();
    assert!((value(5) - exact).abs() < 1e-6, "{} vs {exact}", value(5));
    // Some line has sub-cent digits: the cells are not cents.
    assert!((1..=4).any(|r| ((value(r) * 100.0).round() - value(r) * 100.0).abs() > 1e-6));
    let formulas = workbook.worksheet_formula("Costs").unwrap();
    assert!(formulas
        .get_value((5, total as u32))
        .is_some_and(|f| f.starts_with("SUM(")));
    // Landscape, one page wide.
    let sheet_xml = zip_text(&path, "xl/worksheets/sheet1.xml");
    assert!(
        sheet_xml.contains("orientation=\"landscape\""),
        "{sheet_xml}"
    );
    assert!(sheet_xml.contains("fitToHeight=\"0\""), "{sheet_xml}");
}

/// `costs` read its figures, coverage and restatement lines in separate
/// statements: a run committing in between made a report that mixed the
/// old figures with the new run's restatement line (exit 0). One
/// `REPEATABLE READ` snapshot per report now.
#[test]
fn a_run_committing_mid_report_mixed_old_figures_with_new_restatements() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let window = ["--from", "2026-03-05", "--to", "2026-03-12"];
    run(&db, &scratch.path().join("reports"), &window);
    let before: serde_json::Value = serde_json::from_slice(
        &ok(costs(&db, &[&window[..], &["--format", "json"]].concat())).stdout,
    )
    .unwrap();
    let out = scratch.path().join("costs.json");
    let resume = scratch.path().join("resume");
    let (mut child, stderr) = crate::util::spawn_paused_with_stderr(
        Some(&db),
        &[
            &["costs"][..],
            &window,
            &["--format", "json", "-o", out.to_str().unwrap()],
        ]
        .concat(),
        "report_between_reads",
        &[("CALLROLLUP_TEST_RESUME_FILE", &resume)],
    );
    // A cost corrected in the source and rolled up again, committed
    // while the report is half read.
    db.exec(
        "UPDATE call_logs SET total_cost_usd = total_cost_usd + 1
         WHERE call_id = (SELECT call_id FROM call_logs
                          WHERE created_at >= '2026-03-08 12:00+00' AND created_at < '2026-03-09 00:00+00'
                          ORDER BY call_id LIMIT 1)",
    );
    run(&db, &scratch.path().join("reports"), &window);
    assert!(
        db.scalar_i64("SELECT count(*) FROM analytics.restatements") > 0,
        "the run restated the tenant day"
    );
    std::fs::write(&resume, b"").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{}", stderr.join().unwrap());
    let during: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    // The report is the state it started in: old figures, no restatement.
    assert_eq!(during["rows"], before["rows"]);
    assert_eq!(during["restatements"], before["restatements"]);
    assert_eq!(during["coverage"]["runs"], before["coverage"]["runs"]);
}
