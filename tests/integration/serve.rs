//! `callrollup serve` over HTTP: against a real Postgres and against a
//! report folder, with the token and with the platform's sessions.

use crate::util::{ok, run, stdout_of, Server, TestDb};

const NY: &str = "a0000000-0000-0000-0000-000000000001";
const BERLIN: &str = "a0000000-0000-0000-0000-000000000002";
const WINDOW: [&str; 4] = ["--from", "2026-03-07", "--to", "2026-03-10"];

/// The pages, with parameters that select the fixture's days.
fn pages() -> Vec<String> {
    vec![
        "/costs?month=2026-03".to_string(),
        "/costs?from=2026-03-07&to=2026-03-10&by=day".to_string(),
        "/errors?from=2026-03-07&to=2026-03-10".to_string(),
        "/errors?from=2026-03-07&to=2026-03-10&by=tenant".to_string(),
        "/runs".to_string(),
        format!("/tenants/{BERLIN}?month=2026-03"),
    ]
}

/// A database with the fixture rolled up for the window.
fn rolled_up() -> (TestDb, tempfile::TempDir) {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    run(&db, &scratch.path().join("reports"), &WINDOW);
    (db, scratch)
}

fn assert_secure_headers(answer: &crate::util::Answer, what: &str) {
    let csp = answer.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{what}: {csp}"
    );
    assert_eq!(
        answer.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        answer.header("referrer-policy"),
        Some("no-referrer"),
        "{what}"
    );
    assert_eq!(answer.header("cache-control"), Some("no-store"), "{what}");
}

#[test]
fn every_page_answers_with_the_token_and_refuses_without_it() {
    let (db, _scratch) = rolled_up();
    let server = Server::start(Some(&db), &[], &[]);
    let token = server.token.clone().expect("a token printed");
    assert!(token.len() >= 32);
    for page in pages() {
        let refused = server.get_anonymous(&page);
        assert_eq!(refused.status, 401, "{page}");
        assert_secure_headers(&refused, &page);
        assert!(
            !refused.text().contains("<"),
            "a refusal is one line of text"
        );

        // ?token= lets the page in and sets the cookie.
        let separator = if page.contains('?') { '&' } else { '?' };
        let first = server.get_anonymous(&format!("{page}{separator}token={token}"));
        assert_eq!(first.status, 200, "{page}: {}", first.text());
        let cookie = first.header("set-cookie").unwrap_or_default();
        assert!(
            cookie.starts_with(&format!("callrollup_token={token}"))
                && cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        // The cookie alone is enough afterwards.
        let page_answer = server.get(&page);
        assert_eq!(page_answer.status, 200, "{page}");
        assert_eq!(
            page_answer.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_secure_headers(&page_answer, &page);
        let html = page_answer.text();
        assert!(html.starts_with("<!DOCTYPE html>"), "{page}");
        assert!(!html.contains("<script"), "{page}: no script");
        // A wrong token is no token.
        let wrong = server.request("GET", &page, &[("Cookie", "callrollup_token=guess")]);
        assert_eq!(wrong.status, 401, "{page}");
    }
    // The chart is there, inline.
    assert!(server.get("/costs?month=2026-03").text().contains("<svg"));
    assert!(server
        .get("/errors?from=2026-03-07&to=2026-03-10")
        .text()
        .contains("<svg"));
    // The orchestrator's probe needs no token and says nothing of the data.
    let health = server.get_anonymous("/healthz");
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    // Only GET and HEAD.
    let cookie = format!("callrollup_token={token}");
    for method in ["POST", "PUT", "DELETE"] {
        let answer = server.request(method, "/costs", &[("Cookie", &cookie)]);
        assert_eq!(answer.status, 405, "{method}");
    }
    let head = server.request("HEAD", "/costs?month=2026-03", &[("Cookie", &cookie)]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert!(server.stop().success(), "SIGTERM exits 0");
}

#[test]
fn bad_parameters_are_400_and_unknown_tenants_404_in_one_line() {
    let (db, _scratch) = rolled_up();
    let server = Server::start(Some(&db), &[], &[]);
    for (page, status, reason) in [
        ("/costs?by=week", 400, "invalid value 'week'"),
        ("/costs?month=2026-13", 400, "is not a month"),
        ("/costs?output=/tmp/x", 400, "unknown parameter \"output\""),
        (
            "/costs.csv?reports=/etc",
            400,
            "unknown parameter \"reports\"",
        ),
        ("/costs?month=--reports%3D%2Fetc", 400, "is not a month"),
        // A byte slice inside a character (500), a date past chrono's
        // arithmetic (500): refused as input now.
        ("/errors?since=1%C3%A9", 400, "is not a length"),
        (
            "/costs?from=-262143-01-01&to=2026-01-01",
            400,
            "is not a calendar date",
        ),
        (
            "/errors?from=-262143-01-01&to=2026-01-01",
            400,
            "is not a calendar date",
        ),
        ("/costs?month=0000-01", 400, "is not a month"),
        ("/errors?bucket=minute", 400, "invalid value 'minute'"),
        ("/errors?bucket=hour", 400, "start serve with --source DIR"),
        (
            "/costs?tenant=f0000000-0000-0000-0000-000000000001",
            404,
            "unknown --tenant",
        ),
        (
            "/tenants/f0000000-0000-0000-0000-000000000001",
            404,
            "no tenant",
        ),
        ("/tenants/not-a-uuid", 404, "no such tenant"),
        ("/nowhere", 404, "no such page"),
    ] {
        let answer = server.get(page);
        assert_eq!(answer.status, status, "{page}: {}", answer.text());
        let text = answer.text();
        assert_eq!(text.lines().count(), 1, "{page}: {text}");
        assert!(text.contains(reason), "{page}: {text}");
        assert_eq!(
            answer.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
    }
}

#[test]
fn downloads_are_the_bytes_costs_writes() {
    let (db, scratch) = rolled_up();
    let server = Server::start(Some(&db), &[], &[]);
    for (format, query) in [
        ("csv", "month=2026-03"),
        (
            "json",
            "month=2026-03&by=day&tenant=a0000000-0000-0000-0000-000000000002",
        ),
        ("xlsx", "month=2026-03&by=outcome"),
        ("csv", "from=2026-03-07&to=2026-03-10&sort=calls&top=3"),
    ] {
        let answer = server.get(&format!("/costs.{format}?{query}"));
        assert_eq!(answer.status, 200, "{format} {query}: {}", answer.text());
        assert!(answer
            .header("content-disposition")
            .unwrap_or_default()
            .starts_with("attachment; filename=\"costs-"));
        let file = scratch.path().join(format!("cli.{format}"));
        let mut cli = db.cmd();
        cli.args(["costs", "--format", format, "-o"]).arg(&file);
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap();
            cli.arg(format!("--{name}={value}"));
        }
        ok(cli.output().unwrap());
        assert!(
            std::fs::read(&file).unwrap() == answer.body,
            "{format} {query}: the download differs from `costs`"
        );
    }
}

#[test]
fn a_hostile_business_name_is_text_on_every_page() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    const HOSTILE: &str = "<img src=x onerror=alert(1)>\"'&";
    db.exec(&format!(
        "UPDATE tenants SET business_name = $${HOSTILE}$$ WHERE tenant_id = '{BERLIN}'"
    ));
    db.exec(&format!(
        "UPDATE system_errors SET error_type = '<script>alert(2)</script>'
         WHERE tenant_id = '{NY}'"
    ));
    run(&db, &scratch.path().join("reports"), &WINDOW);
    let server = Server::start(Some(&db), &[], &[]);
    for page in pages() {
        let html = server.get(&page).text();
        assert!(!html.contains("<img src=x"), "{page}");
        assert!(!html.contains("<script"), "{page}");
    }
    let costs = server.get("/costs?month=2026-03").text();
    assert!(
        costs.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{costs}"
    );
    let errors = server.get("/errors?from=2026-03-07&to=2026-03-10").text();
    assert!(errors.contains("&lt;script&gt;alert(2)&lt;/script&gt;"));
}

#[test]
fn a_report_folder_is_served_without_a_database() {
    let db = TestDb::with_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let (_, reports) = crate::util::file_only_run(&db, &WINDOW, scratch.path());
    drop(db);
    let folder = reports.to_str().unwrap();
    let server = Server::start(None, &["--reports", folder], &[]);
    // Every reader saw "read from report files under /srv/…": where the
    // server keeps its files is the operator's to know.
    let pages_and_json = pages()
        .into_iter()
        .chain(["/costs.json?month=2026-03".to_string()]);
    for page in pages_and_json {
        let answer = server.get(&page);
        assert_eq!(answer.status, 200, "{page}: {}", answer.text());
        assert!(!answer.text().contains(folder), "{page} shows the folder");
    }
    // A refusal too ("unknown --tenant …: not in … report files under /…").
    let refused = server.get("/costs?month=2026-03&tenant=f0000000-0000-0000-0000-000000000001");
    assert_eq!(refused.status, 404);
    assert!(!refused.text().contains(folder), "{}", refused.text());
    assert!(
        refused.text().contains("the report folder"),
        "{}",
        refused.text()
    );
    assert!(server
        .get("/runs")
        .text()
        .contains("report files keep no ledger"));
    let csv = server.get("/costs.csv?month=2026-03");
    let cli = ok(TestDb::cmd_without_db()
        .args([
            "costs",
            "--month",
            "2026-03",
            "--format",
            "csv",
            "--reports",
            folder,
        ])
        .output()
        .unwrap());
    assert!(cli.stdout == csv.body);
    // A folder that holds no reports is refused before serving.
    let empty = TestDb::cmd_without_db()
        .args(["serve", "--reports"])
        .arg(scratch.path())
        .output()
        .unwrap();
    crate::util::assert_fails(&empty, 2, "holds no reports");
}

#[test]
fn a_token_file_fixes_the_token_and_a_short_one_is_refused() {
    let (db, scratch) = rolled_up();
    let file = scratch.path().join("token");
    let refused_with = |token: &str, needle: &str| {
        std::fs::write(&file, format!("{token}\n")).unwrap();
        let output = db
            .cmd()
            .args(["serve", "--token-file"])
            .arg(&file)
            .output()
            .unwrap();
        crate::util::assert_fails(&output, 2, needle);
    };
    refused_with("short", "at least 32 characters");
    // Long but guessable: refused too.
    refused_with(&"ab".repeat(20), "a random token");
    let secret = "a-deployment-secret-0123456789-q7Xz";
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let server = Server::start(Some(&db), &["--token-file", file.to_str().unwrap()], &[]);
    // The token of a file is never printed (the pod's log, the journal).
    assert_eq!(server.token, None);
    let answer = server.request(
        "GET",
        "/runs",
        &[("Cookie", &format!("callrollup_token={secret}"))],
    );
    assert_eq!(answer.status, 200);
    // A header, which no access log keeps, works as well.
    let answer = server.request(
        "GET",
        "/runs",
        &[("Authorization", &format!("Bearer {secret}"))],
    );
    assert_eq!(answer.status, 200);
    let answer = server.request("GET", "/runs", &[("Authorization", "Bearer wrong")]);
    assert_eq!(answer.status, 401);
}

/// The printed token was two UUIDv4s: 244 random bits, not the 256 the
/// README promised.
#[test]
fn the_random_token_held_244_bits() {
    let (db, _scratch) = rolled_up();
    let server = Server::start(Some(&db), &[], &[]);
    let token = server.token.clone().unwrap();
    assert_eq!(token.len(), 64, "{token}");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    // Two UUIDv4s fix hex digits 12 and 44 at '4' (and 16 and 48 to
    // 8..b); src/cmd/serve.rs's unit test draws many.
    let others = Server::start(Some(&db), &[], &[]);
    assert_ne!(Some(token), others.token);
}

/// SHA-256 of a session token, hex, as the platform stores it.
fn session_hash(db: &TestDb, token: &str) -> String {
    db.rows(&format!("SELECT encode(sha256('{token}'::bytea), 'hex')"))[0].clone()
}

#[test]
fn platform_sessions_let_operators_in_and_keep_customers_to_their_tenant() {
    let (db, _scratch) = rolled_up();
    db.exec(include_str!("../fixtures/platform_sessions.sql"));
    let (operator, customer, expired) = (
        session_hash(&db, "operator-token"),
        session_hash(&db, "customer-token"),
        session_hash(&db, "expired-token"),
    );
    db.exec(&format!(
        "INSERT INTO users VALUES
           ('b0000000-0000-0000-0000-000000000001', NULL, 'ops@example.com', 'x', 'operator'),
           ('b0000000-0000-0000-0000-000000000002', '{BERLIN}', 'kanzlei@example.com', 'x', 'customer');
         INSERT INTO sessions (user_id, session_hash, expires_at) VALUES
           ('b0000000-0000-0000-0000-000000000001', '{operator}', now() + interval '1 hour'),
           ('b0000000-0000-0000-0000-000000000002', '{customer}', now() + interval '1 hour'),
           ('b0000000-0000-0000-0000-000000000001', '{expired}', now() - interval '1 minute');"
    ));
    let server = Server::start(Some(&db), &["--auth", "platform"], &[]);
    assert!(server.token.is_none());
    let bearer = |token: &str, page: &str| {
        server.request(
            "GET",
            page,
            &[("Authorization", &format!("Bearer {token}"))],
        )
    };
    for page in pages() {
        assert_eq!(server.get_anonymous(&page).status, 401, "{page}");
        assert_eq!(bearer("expired-token", &page).status, 401, "{page}");
        assert_eq!(bearer("unknown-token", &page).status, 401, "{page}");
        assert_eq!(bearer("operator-token", &page).status, 200, "{page}");
    }
    // The platform's session cookie works as well.
    let by_cookie = server.request("GET", "/runs", &[("Cookie", "session=operator-token")]);
    assert_eq!(by_cookie.status, 200);

    // A customer: its own tenant, its own costs; nothing else.
    assert_eq!(
        bearer(
            "customer-token",
            &format!("/tenants/{BERLIN}?month=2026-03")
        )
        .status,
        200
    );
    for page in [
        format!("/tenants/{NY}"),
        "/errors".to_string(),
        "/runs".to_string(),
        format!("/costs?month=2026-03&tenant={NY}"),
    ] {
        assert_eq!(bearer("customer-token", &page).status, 403, "{page}");
    }
    let csv = bearer("customer-token", "/costs.csv?month=2026-03").text();
    let tenants: Vec<&str> = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(tenants, [BERLIN], "{csv}");
    // Who read what: the platform user and its tenant, refused or not,
    // never the session's secret.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = server.log();
    assert!(
        log.contains(&format!(
            "access: user b0000000-0000-0000-0000-000000000002 customer of {BERLIN}"
        )) && log.contains("GET /costs.csv?month=2026-03 200"),
        "{log}"
    );
    assert!(log.contains(" 403 "), "the refusals are logged: {log}");
    assert!(!log.contains("customer-token") && !log.contains("operator-token"));
}

#[test]
fn the_sessions_role_reads_three_columns_and_nothing_personal() {
    let db = TestDb::with_platform();
    db.exec(include_str!("../fixtures/platform_sessions.sql"));
    db.exec(include_str!("../../deploy/roles.sql"));
    let url = db.url.replacen("postgres@", "callrollup_sessions@", 1);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    assert!(client
        .query(
            "SELECT u.role, u.tenant_id FROM sessions s JOIN users u ON u.user_id = s.user_id
             WHERE s.session_hash = 'x' AND s.expires_at > now()",
            &[]
        )
        .is_ok());
    for sql in [
        "SELECT email FROM users",
        "SELECT password_hash FROM users",
        "SELECT user_agent FROM sessions",
        "SELECT ip_address FROM sessions",
        "SELECT * FROM sessions",
        "SELECT call_id FROM call_logs",
    ] {
        let e = client.query(sql, &[]).unwrap_err();
        assert_eq!(
            e.code(),
            Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}"
        );
    }
}

#[test]
fn serve_says_what_to_do_without_anything_to_read() {
    let out = TestDb::cmd_without_db().arg("serve").output().unwrap();
    crate::util::assert_fails(&out, 2, "nothing to serve");
    let (db, _scratch) = rolled_up();
    let taken = Server::start(Some(&db), &[], &[]);
    let address = &taken.base["http://".len()..];
    let busy = db
        .cmd()
        .args(["serve", "--listen", address])
        .output()
        .unwrap();
    crate::util::assert_fails(&busy, 2, "pick another --listen");
    assert!(
        stdout_of(&busy).is_empty(),
        "no link printed for a server that never ran"
    );
}

/// Debian's Chromium, when this machine has it; `.ci/run` installs it, so
/// on CI a missing browser fails the test instead of skipping it.
fn chromium() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("CALLROLLUP_CHROMIUM")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromium".into());
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI has no {}: .ci/run installs Debian's chromium",
        path.display()
    );
    eprintln!("no {}: the browser test is skipped here", path.display());
    None
}

/// Headless Chromium on `url` with `what` (e.g. --screenshot=FILE):
/// its stderr.
fn browse(
    browser: &std::path::Path,
    profile: &std::path::Path,
    url: &str,
    what: &[&str],
) -> (Vec<u8>, String) {
    let out = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(what)
        .arg(url)
        .output()
        .expect("run chromium");
    (
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_real_browser_shows_every_page_without_a_console_error() {
    let Some(browser) = chromium() else {
        return;
    };
    let (db, scratch) = rolled_up();
    let server = Server::start(Some(&db), &[], &[]);
    let token = server.token.clone().unwrap();
    for (i, page) in [
        "/costs?month=2026-03".to_string(),
        "/errors?from=2026-03-05&to=2026-03-12".to_string(),
        "/runs".to_string(),
        format!("/tenants/{BERLIN}?month=2026-03"),
    ]
    .iter()
    .enumerate()
    {
        let separator = if page.contains('?') { '&' } else { '?' };
        let url = format!("{}{page}{separator}token={token}", server.base);
        let profile = scratch.path().join(format!("profile-{i}"));
        let shot = scratch.path().join(format!("page-{i}.png"));
        let (_, log) = browse(
            &browser,
            &profile,
            &url,
            &[&format!("--screenshot={}", shot.display())],
        );
        // A blocked style, a failed load, a script: each is a console line.
        let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
        assert!(console.is_empty(), "{page}: {console:?}");
        let picture = image::open(&shot)
            .unwrap_or_else(|e| panic!("{page}: no screenshot ({e}): {log}"))
            .to_rgb8();
        let colours: std::collections::BTreeSet<[u8; 3]> =
            picture.pixels().map(|p| p.0).step_by(7).collect();
        assert!(
            colours.len() > 20,
            "{page}: a blank page ({} colours)",
            colours.len()
        );
        let (dom, _) = browse(&browser, &profile, &url, &["--dump-dom"]);
        let dom = String::from_utf8_lossy(&dom);
        if page != "/runs" {
            assert!(dom.contains("<svg"), "{page}: no chart in the DOM");
        }
        assert!(dom.contains("<table"), "{page}: no table in the DOM");
    }
}

#[test]
fn the_tenant_page_charts_daily_cost_and_calls() {
    let (db, _scratch) = rolled_up();
    let server = Server::start(Some(&db), &[], &[]);
    let calls = db.scalar_i64(&format!(
        "SELECT sum(calls)::bigint FROM analytics.tenant_daily WHERE tenant_id = '{BERLIN}'"
    ));
    assert!(calls > 0);
    let html = server
        .get(&format!("/tenants/{BERLIN}?month=2026-03"))
        .text();
    let chart = &html[html.find("<svg").expect("a chart")..];
    assert!(chart.contains("Daily cost and calls"), "the chart's title");
    // The calls' axis and the legend's total, beside the cost line.
    assert!(chart.contains(">calls<"), "a calls axis");
    assert!(
        chart.contains(&format!("calls ({calls})")),
        "the calls' total"
    );
    // One bar per covered day of the month (four rolled-up days).
    assert!(
        chart.matches("fill=\"#C9D6E3\"").count() >= 4,
        "a bar per day"
    );
    // The costs page keeps its cost-only chart.
    let costs = server.get("/costs?month=2026-03").text();
    let costs_chart = &costs[costs.find("<svg").unwrap()..costs.find("</svg>").unwrap()];
    assert!(!costs_chart.contains(">calls<"));
}

#[test]
fn a_client_slow_to_send_its_request_is_cut_off_while_others_are_answered() {
    use std::io::{Read, Write};
    let (db, _scratch) = rolled_up();
    let server = Server::start(Some(&db), &[], &[]);
    let address = &server.base["http://".len()..];
    // Half a request head, then nothing more.
    let mut slow = std::net::TcpStream::connect(address).unwrap();
    slow.write_all(b"GET /costs HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert_eq!(server.get("/runs").status, 200, "answered meanwhile");
    slow.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut rest = Vec::new();
    // The server closes the connection (after its 10 s for a head): the
    // read ends instead of timing out.
    let read = slow.read_to_end(&mut rest);
    assert!(read.is_ok(), "the slow connection was not closed: {read:?}");
    assert!(server.stop().success());
}

#[test]
fn kept_database_sessions_serve_the_next_requests_and_an_ended_one_is_replaced() {
    let (db, _scratch) = rolled_up();
    let server = Server::start(Some(&db), &[], &[]);
    let sessions = || {
        db.scalar_i64(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'callrollup-serve'",
        )
    };
    for _ in 0..3 {
        assert_eq!(server.get("/costs?month=2026-03").status, 200);
    }
    assert_eq!(sessions(), 1, "one session, kept between requests");
    // An administrator ends it: the next request opens a new one.
    db.exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'callrollup-serve'",
    );
    let answer = server.get("/costs?month=2026-03");
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(sessions(), 1);
    assert!(server.stop().success());
}

#[test]
fn sigterm_answers_the_request_in_flight_and_takes_no_new_one() {
    let (db, _scratch) = rolled_up();
    let server = Server::start(Some(&db), &[], &[]);
    // The errors page will wait on this lock until the test lets it go.
    let mut locker = db.client();
    let mut lock = locker.transaction().unwrap();
    lock.batch_execute("LOCK TABLE analytics.tenant_daily_errors IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let address = server.base["http://".len()..].to_string();
    std::thread::scope(|scope| {
        let in_flight = scope.spawn(|| server.get("/errors?from=2026-03-07&to=2026-03-10"));
        db.wait_for_lock_wait("callrollup-serve", "the errors page never reached the lock");
        server.terminate();
        // No new connection once SIGTERM is in.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(&address).is_ok() {
            assert!(std::time::Instant::now() < deadline, "still accepting");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        lock.rollback().unwrap();
        let answer = in_flight.join().unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert!(answer.text().contains("<svg"), "the whole page");
    });
    assert!(server.stop().success(), "exit 0 after the drain");
}

/// The style bolded every table's last row, so the last error type and
/// the last run read as totals; tenants were plain text (a reader typed
/// UUIDs); the incomplete-period note sat under 60 rows; the form had no
/// sort; the tenant page said "Download the month" for any period.
#[test]
fn the_last_row_looked_like_a_total_and_tenants_were_not_links() {
    let (db, _scratch) = rolled_up();
    let server = Server::start(Some(&db), &[], &[]);
    let costs = server.get("/costs?month=2026-03").text();
    assert!(!costs.contains("tr:last-child"), "no last-row rule");
    assert_eq!(
        costs.matches("<tr class=\"total\">").count(),
        1,
        "the TOTAL only"
    );
    assert!(
        costs.contains(&format!(
            "href=\"/tenants/{NY}?from=2026-03-01&amp;to=2026-03-31\""
        )),
        "a tenant links to its page"
    );
    assert!(costs.contains("name=\"sort\""), "the form has the sort");
    // March is mostly not rolled up: said before the table.
    let note = costs.find("period incomplete").expect("the note");
    assert!(note < costs.find("<table").unwrap(), "the note comes first");
    let errors = server
        .get("/errors?from=2026-03-07&to=2026-03-10&by=tenant")
        .text();
    assert_eq!(errors.matches("<tr class=\"total\">").count(), 1);
    assert!(errors.contains(&format!("href=\"/tenants/{NY}?from=2026-03-07")));
    let runs = server.get("/runs").text();
    assert!(!runs.contains("class=\"total\""), "runs have no total");
    let tenant = server
        .get(&format!("/tenants/{BERLIN}?from=2026-03-07&to=2026-03-10"))
        .text();
    assert!(tenant.contains("Download the period: "), "{tenant}");
    let month = server
        .get(&format!("/tenants/{BERLIN}?month=2026-03"))
        .text();
    assert!(month.contains("Download the month: "));
}

/// Nobody could answer "who downloaded this tenant's costs": one access
/// line per request now, with an id of the token, never the token.
#[test]
fn who_read_what_was_not_logged() {
    let (db, _scratch) = rolled_up();
    let server = Server::start(Some(&db), &[], &[]);
    let token = server.token.clone().unwrap();
    let answer = server.get(&format!("/costs.csv?month=2026-03&tenant={NY}"));
    assert_eq!(answer.status, 200);
    assert_eq!(server.get_anonymous("/costs").status, 401);
    assert_eq!(server.get_anonymous("/healthz").status, 200);
    // The lines are written as the answers go out.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("access: token ") && l.contains("/costs.csv"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains(&format!("tenant={NY}")), "{line}");
    assert!(line.contains(" 200 "), "{line}");
    assert!(
        line.contains(&format!("{} bytes", answer.body.len())),
        "{line}"
    );
    assert!(log.contains("access: anonymous GET /costs 401"), "{log}");
    assert!(!log.contains("/healthz"), "{log}");
    assert!(!log.contains(&token), "the token is never logged: {log}");
}
