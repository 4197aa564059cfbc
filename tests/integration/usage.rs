//! The usage text people read comes from clap alone: docs/USAGE.md is every
//! command's `--help`, and this test fails when the two drift apart.
//! `CALLROLLUP_BLESS=1 cargo test usage` rewrites the file from the parser.

use crate::util::{ok, stdout_of, TestDb};

const COMMANDS: [&str; 12] = [
    "migrate",
    "run",
    "runs",
    "costs",
    "anomalies",
    "changes",
    "errors",
    "query",
    "extract",
    "generate",
    "demo",
    "serve",
];

fn help(command: Option<&str>) -> String {
    let mut cmd = TestDb::cmd_without_db();
    if let Some(command) = command {
        cmd.arg(command);
    }
    stdout_of(&ok(cmd.arg("--help").output().unwrap()))
}

#[test]
fn docs_usage_is_the_parsers_help() {
    let mut text = String::from(
        "# callrollup — usage\n\n\
         Generated from `callrollup --help` and each command's `--help` by\n\
         `tests/integration/usage.rs`, which fails when this file drifts from\n\
         the parser (`CALLROLLUP_BLESS=1 cargo test usage` rewrites it). The\n\
         definitions behind the flags are in [CONTRACT.md](CONTRACT.md).\n",
    );
    let mut section = |title: &str, body: String| {
        text.push_str(&format!(
            "\n## {title}\n\n```text\n{}\n```\n",
            body.trim_end()
        ));
    };
    section("callrollup", help(None));
    for command in COMMANDS {
        section(&format!("callrollup {command}"), help(Some(command)));
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/USAGE.md");
    if std::env::var_os("CALLROLLUP_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        written == text,
        "docs/USAGE.md differs from the parser's --help: run `CALLROLLUP_BLESS=1 cargo test usage` and review the diff"
    );
}
