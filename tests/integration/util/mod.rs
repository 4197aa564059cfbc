//! Helpers shared by the integration tests: a database per test, the real
//! binary, scratch folders.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use assert_cmd::Command;
use postgres::{Client, NoTls};

pub const PLATFORM_SCHEMA: &str = include_str!("../../fixtures/platform_schema.sql");
pub const PLATFORM_INDEXES: &str = include_str!("../../fixtures/platform_indexes.sql");
pub const PLATFORM_DATA: &str = include_str!("../../fixtures/platform_data.sql");

fn admin_url() -> String {
    std::env::var("CALLROLLUP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Replaces the database name of a libpq URL.
fn with_database(url: &str, name: &str) -> String {
    let mut u = url::Url::parse(url).expect("CALLROLLUP_TEST_DATABASE_URL is a URL");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

/// A database created for one test and dropped when it ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestDb {
    /// An empty database.
    pub fn empty() -> TestDb {
        let name = format!(
            "callrollup_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            uuid::Uuid::new_v4().simple().to_string().get(..8).unwrap()
        );
        let mut admin =
            Client::connect(&admin_url(), NoTls).expect("connect to CALLROLLUP_TEST_DATABASE_URL");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create test database");
        let url = with_database(&admin_url(), &name);
        TestDb { name, url }
    }

    /// The platform tables, empty.
    pub fn with_platform() -> TestDb {
        let db = TestDb::empty();
        db.exec(PLATFORM_SCHEMA);
        db.exec(PLATFORM_INDEXES);
        db
    }

    /// The platform tables with the shared fixture data, migrated.
    pub fn with_fixture() -> TestDb {
        let db = TestDb::with_platform();
        db.exec(PLATFORM_DATA);
        db.migrate();
        db
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.url, NoTls).expect("connect to test database")
    }

    pub fn exec(&self, sql: &str) {
        self.client()
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{e:?}\nin SQL: {sql}"));
    }

    /// Rows of a query, each rendered as its columns' text joined by `|`.
    pub fn rows(&self, sql: &str) -> Vec<String> {
        let wrapped = format!("SELECT concat_ws('|', VARIADIC ARRAY(SELECT coalesce(v, '∅') FROM json_each_text(row_to_json(q)) AS j(k, v))) FROM ({sql}) q");
        self.client()
            .query(&wrapped, &[])
            .unwrap_or_else(|e| panic!("{e:?}\nin SQL: {sql}"))
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
    }

    pub fn scalar_i64(&self, sql: &str) -> i64 {
        self.client().query_one(sql, &[]).unwrap().get(0)
    }

    /// Waits (up to 2 minutes) until a session of this database named
    /// `application` waits on a lock; `what` says where, for the failure.
    pub fn wait_for_lock_wait(&self, application: &str, what: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while self.scalar_i64(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND application_name = '{application}' AND wait_event_type = 'Lock'",
            self.name
        )) == 0
        {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// `callrollup` with DATABASE_URL pointing at this database.
    pub fn cmd(&self) -> Command {
        let mut cmd = Self::cmd_without_db();
        cmd.env("DATABASE_URL", &self.url);
        cmd
    }

    /// `callrollup` with no database configured.
    pub fn cmd_without_db() -> Command {
        let mut cmd = Command::cargo_bin("callrollup").expect("binary built");
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        cmd
    }

    pub fn migrate(&self) {
        self.cmd().arg("migrate").assert().success();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = Client::connect(&admin_url(), NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Every file under `dir` (relative path → bytes), for comparing whole
/// outputs; but the report folder's lock files, which runs leave behind
/// empty (removing a lock file would race the next run that opens it).
pub fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy();
            if name.starts_with(".callrollup") && name.ends_with(".lock") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// `tree` without what readers ignore: dot-named locks, journals and
/// staged temporaries.
pub fn visible(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    tree(dir)
        .into_iter()
        .filter(|(p, _)| {
            !p.components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
        })
        .collect()
}

/// Waits up to `seconds` for `child` to end (a liveness bound, not a
/// timing: what it waits behind would hold it far longer); returns its output.
pub fn ends_within(child: std::process::Child, seconds: u64, what: &str) -> std::process::Output {
    let mut child = child;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// The summary tables' columns that a run computes (no run_id, no computed_at).
pub const SUMMARY_TABLES: [(&str, &str); 3] = [
    ("tenant_daily", "tenant_id, day, business_name, timezone, calls, completed_calls, failed_calls, billable_seconds, stt_cost_usd, llm_cost_usd, tts_cost_usd, total_cost_usd, calls_missing_cost, cost_mismatch_calls, errors, critical_errors, errored_calls, error_rate"),
    ("tenant_daily_outcomes", "tenant_id, day, status, outcome, calls, billable_seconds, total_cost_usd"),
    ("tenant_daily_errors", "tenant_id, day, error_type, severity, errors, unresolved_errors, calls_affected, first_seen_at, last_seen_at"),
];

/// Every computed row of the three summary tables of `schema`.
pub fn summary_rows(db: &TestDb, schema: &str) -> Vec<String> {
    summary_rows_where(db, schema, "true", "")
}

/// The computed rows matching `filter`, with `extra` columns (e.g. `, run_id`).
pub fn summary_rows_where(db: &TestDb, schema: &str, filter: &str, extra: &str) -> Vec<String> {
    SUMMARY_TABLES
        .iter()
        .flat_map(|(table, columns)| {
            db.rows(&format!(
                "SELECT '{table}', {columns}{extra} FROM {schema}.{table} WHERE {filter} ORDER BY {columns}"
            ))
        })
        .collect()
}

/// `callrollup run <args> --out <out>` against `db`, which must succeed.
pub fn run(db: &TestDb, out: &Path, args: &[&str]) -> std::process::Output {
    ok(db
        .cmd()
        .arg("run")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap())
}

/// Each statement, run by `client`, is refused by Postgres' privileges
/// (SQLSTATE 42501), whatever else it would have done.
pub fn assert_refused(client: &mut Client, statements: &[&str]) {
    for sql in statements {
        let e = client.batch_execute(sql).unwrap_err();
        assert_eq!(
            e.code(),
            Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "not refused: {sql}: {e:?}"
        );
    }
}

/// A platform `generate` made (`tenants`, `calls` over `days` ending on
/// `end`, `seed`; no transcripts) in a database of its own, migrated.
pub fn generated_platform(tenants: &str, calls: &str, days: &str, end: &str, seed: &str) -> TestDb {
    generated_platform_shaped(tenants, calls, days, end, seed, &[])
}

/// `generated_platform` with more of `generate`'s shape options.
pub fn generated_platform_shaped(
    tenants: &str,
    calls: &str,
    days: &str,
    end: &str,
    seed: &str,
    shape: &[&str],
) -> TestDb {
    let db = TestDb::empty();
    ok(db
        .cmd()
        .args([
            "generate",
            "--tenants",
            tenants,
            "--calls",
            calls,
            "--days",
            days,
        ])
        .args(["--end", end, "--seed", seed, "--transcript-bytes", "0"])
        .args(shape)
        .output()
        .unwrap());
    db.migrate();
    db
}

/// `callrollup extract <args> --out <dir>` against `db`, which must succeed.
pub fn extract(db: &TestDb, args: &[&str], dir: &Path) {
    ok(db
        .cmd()
        .arg("extract")
        .args(args)
        .arg("--out")
        .arg(dir)
        .output()
        .unwrap());
}

/// A snapshot of `db`'s window (`--from A --to B`), then a file-only run
/// of it into `scratch/reports`, no database: the run's output and the
/// report folder.
pub fn file_only_run(
    db: &TestDb,
    window: &[&str],
    scratch: &Path,
) -> (std::process::Output, PathBuf) {
    let snapshot = scratch.join("snapshot");
    extract(db, window, &snapshot);
    let reports = scratch.join("reports");
    let output = ok(TestDb::cmd_without_db()
        .arg("run")
        .args(window)
        .arg("--source")
        .arg(&snapshot)
        .arg("--out")
        .arg(&reports)
        .output()
        .unwrap());
    (output, reports)
}

/// Asserts that a command failed with `code` and that its stderr holds
/// `needle`; returns stderr.
pub fn assert_fails(output: &std::process::Output, code: i32, needle: &str) -> String {
    let err = stderr_of(output);
    assert_eq!(output.status.code(), Some(code), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    err
}

/// Asserts success, showing stderr otherwise.
pub fn ok(output: std::process::Output) -> std::process::Output {
    assert!(output.status.success(), "{}", stderr_of(&output));
    output
}

/// Starts `callrollup` with `args` and this test's environment, paused
/// at the test-only pause point `point`: returns once it says so.
pub fn spawn_paused(db: Option<&TestDb>, args: &[&str], point: &str) -> std::process::Child {
    spawn_paused_with_stderr(db, args, point, &[]).0
}

/// `spawn_paused`, and the rest of the child's stderr, read on a thread
/// (so the child never writes into a closed pipe) and returned when it
/// ends.
pub fn spawn_paused_with_stderr(
    db: Option<&TestDb>,
    args: &[&str],
    point: &str,
    env: &[(&str, &std::path::Path)],
) -> (std::process::Child, std::thread::JoinHandle<String>) {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("callrollup"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CALLROLLUP_TEST_PAUSE_AT", point)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if let Some(db) = db {
        cmd.env("DATABASE_URL", &db.url);
    }
    for (name, value) in env {
        cmd.env(name, value);
    }
    let mut child = cmd.spawn().expect("start callrollup");
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line == format!("paused at {point}") {
            let rest = std::thread::spawn(move || {
                let mut rest = String::new();
                for line in lines.map_while(|l| l.ok()) {
                    rest.push_str(&line);
                    rest.push('\n');
                }
                rest
            });
            return (child, rest);
        }
    }
    let status = child.wait();
    panic!("callrollup never reached pause point {point} ({status:?}): {seen}");
}

pub fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A `callrollup serve` started for one test, stopped (SIGTERM) when it
/// is dropped.
pub struct Server {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The token it printed, if any.
    pub token: Option<String>,
    /// Where its stderr (the log) goes.
    log: tempfile::NamedTempFile,
}

/// An HTTP answer: status, headers (lower-case names), body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Server {
    /// `callrollup serve --listen 127.0.0.1:0 <args>` with `env`.
    pub fn start(db: Option<&TestDb>, args: &[&str], env: &[(&str, &str)]) -> Server {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("callrollup"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(std::process::Stdio::piped());
        let log = tempfile::NamedTempFile::new().unwrap();
        cmd.stderr(log.reopen().unwrap());
        if let Some(db) = db {
            cmd.env("DATABASE_URL", &db.url);
        }
        for (name, value) in env {
            cmd.env(name, value);
        }
        let mut child = cmd.spawn().expect("start callrollup serve");
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let first = first.trim();
        assert!(first.starts_with("http://"), "serve printed {first:?}");
        let rest = &first["http://".len()..];
        let address = rest.split('/').next().unwrap();
        let token = first.split_once("?token=").map(|(_, t)| t.to_string());
        Server {
            child,
            base: format!("http://{address}"),
            token,
            log,
        }
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// A request with `headers` (e.g. a cookie) over a fresh connection.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        use std::io::{Read, Write};
        let address = &self.base["http://".len()..];
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(120)))
            .unwrap();
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP answer");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut body = raw[split + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        if headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
        {
            body = dechunk(&body);
        }
        Answer {
            status,
            headers,
            body,
        }
    }

    /// GET with the token's cookie.
    pub fn get(&self, path: &str) -> Answer {
        let cookie = format!("callrollup_token={}", self.token.as_deref().unwrap_or(""));
        self.request("GET", path, &[("Cookie", &cookie)])
    }

    /// GET without any credential.
    pub fn get_anonymous(&self, path: &str) -> Answer {
        self.request("GET", path, &[])
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate();
        self.child.wait().unwrap()
    }

    /// SIGTERM, without waiting.
    pub fn terminate(&self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&body[..end]).unwrap().trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[end + 2..end + 2 + size]);
        body = &body[end + 2 + size + 2..];
    }
}
