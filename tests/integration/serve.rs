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
        ("/costs?top=99999999999999999999", 400, "top"),
        ("/errors?top=0", 400, "top"),
        (
            "/errors?spike-k=NaN",
            400,
            "--spike-k must be a positive number",
        ),
        ("/errors?timezone=%00%FF&bucket=hour", 400, ""),
        ("/tenants/%E2%80%AE", 404, "no such tenant"),
        ("/costs?from=9999-12-31&to=9999-12-31", 200, ""),
        ("/errors?from=0001-01-01&to=0001-01-02", 200, ""),
        ("/errors?from=9999-12-30&to=9999-12-31", 200, ""),
        (
            &format!("/tenants/{BERLIN}?from=0001-01-01&to=0001-01-31"),
            200,
            "",
        ),
        ("/costs?sort=%3Cscript%3E", 400, "sort"),
    ] {
        if status == 200 {
            // The calendar's edges are answered, not a panic.
            assert_eq!(server.get(page).status, 200, "{page}");
            continue;
        }
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
    // The handler's catch (a panic is a 500) is a last resort: none of
    // these reached it.
    assert!(!server.log().contains("panicked"), "{}", server.log());
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
/// guide (then the README) promised.
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
fn the_sessions_role_could_list_every_session_hash() {
    let (db, _scratch) = with_operators(1);
    db.exec(include_str!("../../deploy/roles.sql"));
    db.exec(include_str!("../../deploy/roles.sql"));
    let url = db.url.replacen("postgres@", "callrollup_sessions@", 1);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    // One hash in, at most one row out.
    let hash = session_hash(&db, "operator-1");
    let found = client
        .query("SELECT user_id, role FROM callrollup_session($1)", &[&hash])
        .unwrap();
    assert_eq!(found.len(), 1);
    assert!(client
        .query("SELECT * FROM callrollup_session('x')", &[])
        .unwrap()
        .is_empty());
    crate::util::assert_refused(
        &mut client,
        &[
            "SELECT session_hash FROM sessions",
            "SELECT expires_at, user_id FROM sessions",
            "SELECT role, tenant_id FROM users",
            "SELECT email FROM users",
            "SELECT password_hash FROM users",
            "SELECT * FROM sessions",
            "SELECT call_id FROM call_logs",
        ],
    );
    // `serve` signs in through the function with that role.
    let server = Server::start(
        Some(&db),
        &[
            "--auth",
            "platform",
            "--database-url",
            &url,
            "--target-url",
            &db.url,
        ],
        &[],
    );
    let answer = server.request("GET", "/runs", &[("Authorization", "Bearer operator-1")]);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let unknown = server.request("GET", "/runs", &[("Authorization", "Bearer operator-9")]);
    assert_eq!(unknown.status, 401);
    assert!(server.stop().success());
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
    assert!(
        log.contains("access: anonymous from 127.0.0.1 GET /costs 401"),
        "{log}"
    );
    assert!(!log.contains("/healthz"), "{log}");
    assert!(!log.contains(&token), "the token is never logged: {log}");
}

/// A raw HTTP/1.1 exchange on a fresh connection: everything the server
/// sent until it closed the connection (or `read_for` passed).
fn raw_exchange(server: &Server, request: &str, read_for: std::time::Duration) -> Vec<u8> {
    use std::io::{Read, Write};
    let address = &server.base["http://".len()..];
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(read_for)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    raw
}

/// A generated platform of 120 tenants over 45 days (about 5,400 tenant
/// days), rolled up: a report by day has more lines than a page shows or
/// a workbook is built with.
fn many_tenant_days() -> (TestDb, tempfile::TempDir) {
    let db = crate::util::generated_platform("120", "30000", "45", "2026-03-31", "7");
    let scratch = tempfile::tempdir().unwrap();
    run(
        &db,
        &scratch.path().join("reports"),
        &["--from", "2026-02-15", "--to", "2026-03-31"],
    );
    (db, scratch)
}

#[test]
fn one_request_for_every_line_took_the_server_past_its_memory() {
    let (db, scratch) = many_tenant_days();
    let server = Server::start(Some(&db), &[], &[]);
    let period = "from=2026-02-15&to=2026-03-31&by=day";
    // Every line is in the CSV (its header and TOTAL aside).
    let csv = server.get(&format!("/costs.csv?{period}")).text();
    let lines = csv.lines().count() - 2;
    assert!(lines > 5_000, "{lines} lines");
    // The page: 200 lines, one line for the rest, the TOTAL; and it says so.
    let page = server.get(&format!("/costs?{period}"));
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert_eq!(
        html.matches("<tr").count(),
        1 + 200 + 2,
        "header, 200 lines, other, TOTAL"
    );
    assert!(
        html.contains(&format!("Other ({} rows)", lines - 200)),
        "{html}"
    );
    assert!(html.contains(&format!("this page shows 200 of the {lines} lines")));
    // No link to a workbook the server would refuse.
    assert!(!html.contains("/costs.xlsx?"), "{html}");
    assert!(html.contains("XLSX (over 5000 lines: the CLI writes it)"));
    // CSV and JSON: every line, streamed (chunked, no length known ahead),
    // and the bytes `costs` writes.
    for format in ["csv", "json"] {
        let answer = server.get(&format!("/costs.{format}?{period}"));
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(
            answer.header("transfer-encoding"),
            Some("chunked"),
            "{format}"
        );
        let file = scratch.path().join(format!("all.{format}"));
        ok(db
            .cmd()
            .args(["costs", "--from=2026-02-15", "--to=2026-03-31", "--by=day"])
            .args(["--format", format, "-o"])
            .arg(&file)
            .output()
            .unwrap());
        assert!(std::fs::read(&file).unwrap() == answer.body, "{format}");
    }
    // A workbook is built whole: past 5,000 lines it is the command's.
    let refused = server.get(&format!("/costs.xlsx?{period}"));
    assert_eq!(refused.status, 422, "{}", refused.text());
    assert!(
        refused
            .text()
            .contains("callrollup costs --format xlsx --from 2026-02-15 --to 2026-03-31 --by day --output FILE.xlsx"),
        "{}",
        refused.text()
    );
    assert_eq!(
        server.get(&format!("/costs.xlsx?{period}&top=50")).status,
        200
    );
    assert_eq!(
        server
            .get("/costs.xlsx?from=2026-02-15&to=2026-03-31")
            .status,
        200
    );
    assert!(server.stop().success());
}

/// A server whose downloads pause once their head is sent, until
/// `resume` exists.
fn paused_after_a_download_head(db: &TestDb, args: &[&str], resume: &std::path::Path) -> Server {
    Server::start(
        Some(db),
        args,
        &[
            ("CALLROLLUP_TEST_PAUSE_AT", "serve-download-headed"),
            ("CALLROLLUP_TEST_RESUME_FILE", resume.to_str().unwrap()),
        ],
    )
}

#[test]
fn a_download_cut_by_its_deadline_ended_like_a_whole_file() {
    let (db, scratch) = rolled_up();
    let resume = scratch.path().join("resume");
    let server = paused_after_a_download_head(&db, &["--request-timeout", "3"], &resume);
    let token = server.token.clone().unwrap();
    let resumer = {
        let resume = resume.clone();
        std::thread::spawn(move || {
            // Past the download's time (3 s to build, 3 s more to send),
            // then the writing goes on.
            std::thread::sleep(std::time::Duration::from_secs(8));
            std::fs::write(resume, "").unwrap();
        })
    };
    let raw = raw_exchange(
        &server,
        &format!(
            "GET /costs.csv?month=2026-03 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        ),
        std::time::Duration::from_secs(30),
    );
    resumer.join().unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{text}"
    );
    // No last chunk: every HTTP client sees a broken download.
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "the cut download ended whole: {text}"
    );
    wait_for_log(&server, "a download was cut before its end");
    wait_for_log(&server, "(cut before its end)");
    // Over HTTP/1.0 a cut would look like an end: no stream there.
    let old = raw_exchange(
        &server,
        &format!("GET /costs.csv?month=2026-03 HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n"),
        std::time::Duration::from_secs(30),
    );
    let old = String::from_utf8_lossy(&old);
    assert!(old.starts_with("HTTP/1.0 505"), "{old}");
    assert!(old.contains("proxy_http_version 1.1"), "{old}");
    assert!(server.stop().success());
}

/// Waits (up to 20 s) until the server's log holds `needle`.
fn wait_for_log(server: &Server, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let log = server.log();
        if log.contains(needle) {
            return log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {needle:?} in {log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn one_reader_could_take_every_slot() {
    let (db, scratch) = rolled_up();
    let resume = scratch.path().join("resume");
    let server = paused_after_a_download_head(&db, &["--max-requests", "2"], &resume);
    let token = server.token.clone().unwrap();
    // A download held open (paused after its head) is this reader's one
    // share of the two slots.
    let held = {
        let address = server.base["http://".len()..].to_string();
        let token = token.clone();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            stream
                .write_all(format!("GET /costs.csv?month=2026-03 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").as_bytes())
                .unwrap();
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).unwrap();
            raw
        })
    };
    wait_for_log(&server, "paused at serve-download-headed");
    let second = server.get("/runs");
    assert_eq!(second.status, 429, "{}", second.text());
    assert_eq!(second.header("retry-after"), Some("5"));
    std::fs::write(&resume, "").unwrap();
    let raw = held.join().unwrap();
    assert!(
        String::from_utf8_lossy(&raw).ends_with("0\r\n\r\n"),
        "the held download ends whole"
    );
    // The share is back once the download's thread has let it go.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.get("/runs").status != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the share never came back"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(server.stop().success());
}

#[test]
fn unauthenticated_connections_starved_health_checks() {
    let (db, _scratch) = rolled_up();
    let server = Server::start(Some(&db), &["--health-listen", "127.0.0.1:0"], &[]);
    let log = wait_for_log(&server, "health checks on http://");
    let health = log
        .split("health checks on http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no health address in {log}"))
        .to_string();
    // Forty connections from one address, each with half a request head:
    // past 32 the server closes them at once.
    use std::io::{Read, Write};
    let address = &server.base["http://".len()..];
    let mut slow = Vec::new();
    for _ in 0..40 {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .write_all(b"GET /costs HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        slow.push(stream);
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut closed = 0;
    for stream in slow.iter_mut() {
        stream
            .set_read_timeout(Some(std::time::Duration::from_millis(50)))
            .unwrap();
        // Closed (an end, or a reset: the half head was never read).
        match stream.read(&mut [0u8; 16]) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            _ => {}
        }
    }
    assert_eq!(closed, 8, "the connections past 32 are closed");
    // The probes' own address answers at once.
    let started = std::time::Instant::now();
    let mut probe = std::net::TcpStream::connect(&health).unwrap();
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    probe.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"),
        "{answer}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    drop(slow);
    assert!(server.stop().success());
}

#[test]
fn an_idle_keep_alive_connection_was_closed_before_the_ingress_let_go_of_it() {
    use std::io::{Read, Write};
    let (db, _scratch) = rolled_up();
    let server = Server::start(Some(&db), &[], &[]);
    let token = server.token.clone().unwrap();
    let address = &server.base["http://".len()..];
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let request =
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let n = stream.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Idle for longer than the 10 s a request head may take.
    std::thread::sleep(std::time::Duration::from_secs(12));
    stream.write_all(request.as_bytes()).unwrap();
    let n = stream.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "the kept connection was closed"
    );
    assert!(server.stop().success());
}

#[test]
fn the_token_cookie_was_not_secure_behind_an_https_ingress() {
    let (db, _scratch) = rolled_up();
    let server = Server::start(Some(&db), &["--trusted-proxy", "127.0.0.1"], &[]);
    let token = server.token.clone().unwrap();
    let set_cookie = |headers: &[(&str, &str)]| {
        server
            .request("GET", &format!("/runs?token={token}"), headers)
            .header("set-cookie")
            .unwrap_or_default()
            .to_string()
    };
    let https = set_cookie(&[
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-For", "203.0.113.5"),
    ]);
    assert!(https.starts_with("__Host-callrollup_token="), "{https}");
    assert!(
        https.contains("; Secure") && https.contains("Path=/"),
        "{https}"
    );
    let http = set_cookie(&[]);
    assert!(
        http.starts_with("callrollup_token=") && !http.contains("Secure"),
        "{http}"
    );
    // The https cookie is the one read over https.
    let over_https = server.request(
        "GET",
        "/runs",
        &[
            ("X-Forwarded-Proto", "https"),
            ("Cookie", &format!("__Host-callrollup_token={token}")),
        ],
    );
    assert_eq!(over_https.status, 200);
    // The client's own address, from the trusted proxy, in the access line.
    wait_for_log(&server, "from 203.0.113.5 GET /runs?…");
    // Not from an untrusted peer: a client cannot claim https or an address.
    let direct = Server::start(Some(&db), &[], &[]);
    let token = direct.token.clone().unwrap();
    let cookie = direct
        .request(
            "GET",
            &format!("/runs?token={token}"),
            &[
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-For", "203.0.113.5"),
            ],
        )
        .header("set-cookie")
        .unwrap_or_default()
        .to_string();
    assert!(cookie.starts_with("callrollup_token="), "{cookie}");
    wait_for_log(&direct, "from 127.0.0.1 GET");
    let bad = TestDb::cmd_without_db()
        .args([
            "serve",
            "--reports",
            "/nonexistent",
            "--trusted-proxy",
            "ingress",
        ])
        .output()
        .unwrap();
    crate::util::assert_fails(&bad, 2, "--trusted-proxy \"ingress\" is not an address");
    let bad = TestDb::cmd_without_db()
        .args([
            "serve",
            "--reports",
            "/nonexistent",
            "--public-url",
            "https://u:p@x/",
        ])
        .output()
        .unwrap();
    crate::util::assert_fails(&bad, 2, "--public-url");
}

/// A database with the fixture rolled up, the platform's users and
/// sessions, and `n` operators each with a session `operator-<i>`.
fn with_operators(n: usize) -> (TestDb, tempfile::TempDir) {
    let (db, scratch) = rolled_up();
    db.exec(include_str!("../fixtures/platform_sessions.sql"));
    db.exec(&format!(
        "INSERT INTO users
           SELECT ('b1000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, NULL,
                  'ops' || i || '@example.com', 'x', 'operator'
           FROM generate_series(1, {n}) AS i;
         INSERT INTO sessions (user_id, session_hash, expires_at)
           SELECT ('b1000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid,
                  encode(sha256(('operator-' || i)::bytea), 'hex'), now() + interval '1 hour'
           FROM generate_series(1, {n}) AS i;"
    ));
    (db, scratch)
}

#[test]
fn made_up_tokens_denied_sign_in_to_everyone() {
    let (db, _scratch) = with_operators(40);
    let server = Server::start(
        Some(&db),
        &["--auth", "platform", "--trusted-proxy", "127.0.0.1"],
        &[],
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // 32 keep-alive clients behind the ingress, from one address, sending
    // made-up bearer tokens as fast as they are answered.
    let flood: Vec<_> = (0..32)
        .map(|n| {
            let address = server.base["http://".len()..].to_string();
            let stop = stop.clone();
            std::thread::spawn(move || {
                use std::io::{BufRead, BufReader, Read, Write};
                let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
                let Ok(stream) = std::net::TcpStream::connect(&address) else {
                    return statuses;
                };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let request = format!("GET /runs HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.66\r\nAuthorization: Bearer made-up-{n}-{i}\r\n\r\n");
                    if writer.write_all(request.as_bytes()).is_err() {
                        break;
                    }
                    let mut status = String::new();
                    if reader.read_line(&mut status).unwrap_or(0) == 0 {
                        break;
                    }
                    let code: u16 = status.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    *statuses.entry(code).or_default() += 1;
                }
                statuses
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Forty real readers, none remembered yet, from another address.
    for i in 1..=40 {
        let answer = server.request(
            "GET",
            "/runs",
            &[
                ("X-Forwarded-For", "198.51.100.7"),
                ("Authorization", &format!("Bearer operator-{i}")),
            ],
        );
        assert_eq!(answer.status, 200, "operator-{i}: {}", answer.text());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for thread in flood {
        for (code, n) in thread.join().unwrap() {
            *statuses.entry(code).or_default() += n;
        }
    }
    // The flood's address is told to wait after its first unknown sessions.
    // (The 32 lookups already under way when the limit is reached end
    // as 401s too.)
    assert!(
        statuses.get(&401).copied().unwrap_or(0) <= 30 + 32,
        "{statuses:?}"
    );
    assert!(statuses.get(&429).copied().unwrap_or(0) > 0, "{statuses:?}");
    assert!(server.stop().success());
}

#[test]
fn a_session_lookup_stuck_behind_a_lock_starved_every_page() {
    let (db, _scratch) = with_operators(2);
    let server = Server::start(
        Some(&db),
        &["--auth", "platform", "--request-timeout", "3"],
        &[],
    );
    let bearer = |token: &str, page: &str| {
        server.request(
            "GET",
            page,
            &[("Authorization", &format!("Bearer {token}"))],
        )
    };
    assert_eq!(
        bearer("operator-1", "/runs").status,
        200,
        "remembered from now on"
    );
    // Someone holds the sessions table.
    let mut locker = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let mut lock = locker.transaction().unwrap();
    lock.batch_execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    // A new sign-in waits at most its request's time, and says so.
    let started = std::time::Instant::now();
    let stuck = bearer("operator-2", "/runs");
    assert_eq!(stuck.status, 503, "{}", stuck.text());
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // The remembered operator's pages are not held up by it.
    for _ in 0..3 {
        let page = bearer("operator-1", "/runs");
        assert_eq!(page.status, 200, "{}", page.text());
    }
    lock.rollback().unwrap();
    // The lookup's statement ended with its request: nothing waits still.
    assert_eq!(
        db.scalar_i64(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'callrollup-serve-sessions'
                AND state = 'active'"
        ),
        0
    );
    assert_eq!(bearer("operator-2", "/runs").status, 200);
    assert!(server.stop().success());
}

#[test]
fn a_session_function_anyone_could_create_signed_in_everyone() {
    // A role with CREATE on the platform's schema makes a function of the
    // lookup's name that says "operator" for any token.
    let (db, _scratch) = with_operators(1);
    db.exec(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'callrollup_test_mallory') THEN
             CREATE ROLE callrollup_test_mallory;
           END IF;
         END $$;
         GRANT CREATE ON SCHEMA public TO callrollup_test_mallory;
         SET ROLE callrollup_test_mallory;
         CREATE FUNCTION public.callrollup_session(hash text)
         RETURNS TABLE (user_id uuid, role text, tenant_id uuid, expires_at timestamptz)
         LANGUAGE sql SECURITY DEFINER
         AS 'SELECT ''b1000000-0000-0000-0000-000000000001''::uuid, ''operator'', NULL::uuid, now() + interval ''1 hour''';
         RESET ROLE;",
    );
    let server = Server::start(Some(&db), &["--auth", "platform"], &[]);
    let forged = server.request("GET", "/runs", &[("Authorization", "Bearer anything")]);
    assert_eq!(forged.status, 401, "{}", forged.text());
    // The real session still signs in (the tables are read).
    let real = server.request("GET", "/runs", &[("Authorization", "Bearer operator-1")]);
    assert_eq!(real.status, 200, "{}", real.text());
    assert!(server.stop().success());
}
