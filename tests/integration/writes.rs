//! What a run writes into the summary tables: a cold window is copied in,
//! a window that already holds rows gets only the rows whose figures
//! changed, and either way the tables end exactly as a cold write leaves
//! them. Counted by Postgres itself (`pg_stat_user_tables`), not by the
//! engine's own report.

use std::time::{Duration, Instant};

use crate::util::{run, stdout_of, summary_rows, TestDb};

const TABLES: &str =
    "'tenant_daily', 'tenant_daily_outcomes', 'tenant_daily_errors', 'data_quality_findings'";

/// Rows inserted, updated and deleted in the summary tables since the
/// database was created, and their dead rows, as Postgres counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Written {
    inserted: i64,
    updated: i64,
    deleted: i64,
    dead: i64,
}

fn written(db: &TestDb) -> Written {
    let row = db.rows(&format!(
        "SELECT sum(n_tup_ins), sum(n_tup_upd), sum(n_tup_del), sum(n_dead_tup)
         FROM pg_stat_user_tables WHERE schemaname = 'analytics' AND relname IN ({TABLES})"
    ));
    let n: Vec<i64> = row[0].split('|').map(|v| v.parse().unwrap()).collect();
    Written {
        inserted: n[0],
        updated: n[1],
        deleted: n[2],
        dead: n[3],
    }
}

/// The counters once they show at least `until` (a backend reports its
/// counts when it ends, a moment after the engine exits), then held still
/// for a moment: a later report would show up as a difference.
fn written_at_least(db: &TestDb, until: impl Fn(&Written) -> bool) -> Written {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = written(db);
        if until(&now) {
            std::thread::sleep(Duration::from_millis(1500));
            return written(db);
        }
        assert!(Instant::now() < deadline, "counters stuck at {now:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A generated platform of 30 tenants over 6 days, migrated.
fn generated() -> TestDb {
    let db = TestDb::empty();
    crate::util::ok(
        db.cmd()
            .args([
                "generate",
                "--tenants",
                "30",
                "--calls",
                "6000",
                "--days",
                "6",
            ])
            .args([
                "--end",
                "2026-03-14",
                "--seed",
                "5",
                "--transcript-bytes",
                "0",
            ])
            .output()
            .unwrap(),
    );
    db.migrate();
    db
}

const WINDOW: [&str; 4] = ["--from", "2026-03-10", "--to", "2026-03-14"];

/// Every summary row of the window with its figures, findings included.
fn figures(db: &TestDb) -> Vec<String> {
    let mut rows = summary_rows(db, "analytics");
    rows.extend(db.rows(
        "SELECT kind, tenant_id, day, rows, example_id FROM analytics.data_quality_findings ORDER BY 1, 2, 3",
    ));
    rows
}

#[test]
fn rerun_with_nothing_changed_writes_no_rows_and_one_percent_changed_writes_only_those() {
    let db = generated();
    let out = tempfile::tempdir().unwrap();
    let cold = run(&db, out.path(), &WINDOW);
    let computed: i64 = db.scalar_i64(
        "SELECT (rows_tenant_daily + rows_tenant_daily_outcomes + rows_tenant_daily_errors + rows_data_quality_findings)::bigint FROM analytics.rollup_runs",
    );
    assert!(computed > 300, "{computed} rows");
    assert!(
        stdout_of(&cold).contains(&format!(
            "written     {computed} rows ({computed} inserted, 0 updated, 0 deleted)"
        )),
        "{}",
        stdout_of(&cold)
    );
    let after_cold = written_at_least(&db, |w| w.inserted >= computed);
    assert_eq!(
        after_cold,
        Written {
            inserted: computed,
            updated: 0,
            deleted: 0,
            dead: 0
        },
        "a cold write copies each row in once"
    );
    let first_figures = figures(&db);
    let first_runs = db.rows("SELECT run_id FROM analytics.tenant_daily ORDER BY 1");

    // Nothing changed: nothing written, the rows keep the run that wrote them.
    let rerun = run(&db, out.path(), &WINDOW);
    assert!(
        stdout_of(&rerun).contains("written     0 rows (0 inserted, 0 updated, 0 deleted); the tables already held these figures"),
        "{}",
        stdout_of(&rerun)
    );
    assert_eq!(figures(&db), first_figures);
    assert_eq!(
        db.rows("SELECT run_id FROM analytics.tenant_daily ORDER BY 1"),
        first_runs
    );
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM analytics.rollup_runs WHERE status = 'succeeded'"),
        2,
        "the re-run is still a succeeded run in the ledger"
    );

    // 1 % of the calls change their cost; one tenant day loses all its
    // calls of one outcome (a row to delete); one new call lands on a day
    // with an outcome the window did not have (a row to insert).
    db.exec(
        "UPDATE call_logs SET llm_cost_usd = llm_cost_usd + 0.25, total_cost_usd = total_cost_usd + 0.25
         WHERE abs(hashtext(call_id)) % 100 = 0 AND created_at >= '2026-03-10' AND created_at < '2026-03-14'",
    );
    let gone = &db.rows(
        "SELECT o.tenant_id, o.day, o.status, o.outcome, t.timezone
         FROM analytics.tenant_daily_outcomes o JOIN tenants t USING (tenant_id)
         WHERE o.calls = 1 AND o.outcome <> 'unknown' AND t.timezone IN (SELECT name FROM pg_timezone_names)
         ORDER BY 1, 2, 3, 4 LIMIT 1",
    )[0];
    let gone: Vec<&str> = gone.split('|').collect();
    let calls_of_gone = format!(
        "SELECT call_id FROM call_logs WHERE tenant_id = '{}' AND (created_at AT TIME ZONE '{}')::date = '{}'
           AND status = '{}' AND outcome = '{}'",
        gone[0], gone[4], gone[1], gone[2], gone[3]
    );
    db.exec(&format!(
        "DELETE FROM system_errors WHERE call_id IN ({calls_of_gone});
         DELETE FROM call_logs WHERE call_id IN ({calls_of_gone})"
    ));
    db.exec(
        "INSERT INTO call_logs (call_id, tenant_id, status, outcome, stt_cost_usd, llm_cost_usd, tts_cost_usd, total_cost_usd, created_at)
         SELECT 'new-outcome-1', tenant_id, 'completed', 'an outcome never seen', 0.01, 0.02, 0.03, 0.06, '2026-03-12 12:00+00'
         FROM tenants ORDER BY tenant_id LIMIT 1",
    );
    let before = written(&db);
    let changed_run = run(&db, out.path(), &WINDOW);
    let merged = figures(&db);
    // What changed, by comparing the rows before and after.
    let changed = merged.iter().filter(|r| !first_figures.contains(r)).count() as i64;
    let vanished = first_figures.iter().filter(|r| !merged.contains(r)).count() as i64;
    assert!(
        changed > 10 && changed < computed / 2,
        "{changed} of {computed}"
    );
    let after = written_at_least(&db, |w| {
        w.inserted + w.updated > before.inserted + before.updated
    });
    let delta = |f: fn(&Written) -> i64| f(&after) - f(&before);
    // Each changed row is one update or one insert; each vanished row
    // that was not updated is one delete; nothing else is written. Had
    // the nothing-changed re-run written anything, its counts (reported
    // long before) would show here too, against the cold run's.
    assert_eq!(delta(|w| w.inserted) + delta(|w| w.updated), changed);
    assert_eq!(delta(|w| w.deleted), vanished - delta(|w| w.updated));
    assert!(delta(|w| w.deleted) >= 1, "the emptied outcome row");
    assert!(delta(|w| w.inserted) >= 1, "the new outcome row");
    assert_eq!(before.inserted, after_cold.inserted);
    assert_eq!(before.updated + before.deleted + before.dead, 0);
    let said = format!(
        "written     {} rows ({} inserted, {} updated, {} deleted)",
        changed + delta(|w| w.deleted),
        delta(|w| w.inserted),
        delta(|w| w.updated),
        delta(|w| w.deleted)
    );
    assert!(
        stdout_of(&changed_run).contains(&said),
        "{said}\n{}",
        stdout_of(&changed_run)
    );

    // The merged tables are exactly what a cold write of the same data leaves.
    db.exec(
        "DELETE FROM analytics.tenant_daily; DELETE FROM analytics.tenant_daily_outcomes;
         DELETE FROM analytics.tenant_daily_errors; DELETE FROM analytics.data_quality_findings",
    );
    let cold_again = run(&db, out.path(), &WINDOW);
    assert!(stdout_of(&cold_again).contains("0 updated, 0 deleted"));
    assert_eq!(figures(&db), merged);
}

#[test]
fn merge_of_a_tenant_run_leaves_other_tenants_rows_alone() {
    let db = generated();
    let out = tempfile::tempdir().unwrap();
    run(&db, out.path(), &WINDOW);
    let tenants = db.rows(
        "SELECT tenant_id FROM analytics.tenant_daily JOIN tenants USING (tenant_id)
         GROUP BY 1 HAVING count(*) = 5 ORDER BY 1 LIMIT 2",
    );
    let (mine, other) = (&tenants[0], &tenants[1]);
    let first_run = db.rows("SELECT run_id FROM analytics.rollup_runs")[0].clone();
    // Both tenants' calls change; only `mine` is re-run.
    db.exec(&format!(
        "UPDATE call_logs SET stt_cost_usd = stt_cost_usd + 1, total_cost_usd = total_cost_usd + 1
         WHERE tenant_id IN ('{mine}', '{other}') AND created_at >= '2026-03-11' AND created_at < '2026-03-12'"
    ));
    let other_before = db.rows(&format!(
        "SELECT day, total_cost_usd, run_id FROM analytics.tenant_daily WHERE tenant_id = '{other}' ORDER BY 1"
    ));
    run(
        &db,
        out.path(),
        &[&WINDOW[..], &["--tenant", mine.as_str()]].concat(),
    );
    assert_eq!(
        db.rows(&format!(
            "SELECT day, total_cost_usd, run_id FROM analytics.tenant_daily WHERE tenant_id = '{other}' ORDER BY 1"
        )),
        other_before,
        "a tenant outside --tenant is neither updated nor deleted"
    );
    let mine_runs = db.rows(&format!(
        "SELECT DISTINCT run_id = '{first_run}' FROM analytics.tenant_daily WHERE tenant_id = '{mine}' ORDER BY 1"
    ));
    assert_eq!(
        mine_runs,
        ["false", "true"],
        "the changed days of the tenant come from the new run, the others keep the first"
    );
}
