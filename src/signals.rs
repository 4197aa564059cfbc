//! SIGINT and SIGTERM during a run (Ctrl-C, a cron timeout, Kubernetes
//! stopping a pod): the first one asks the run to stop cleanly at its next
//! check — before each chunk and before the commit — so the write
//! transaction rolls back, the staged files are removed and the ledger row
//! becomes `failed` with the reason, exit 1. A second signal ends the
//! process at once (exit 130 or 143), which the next run repairs like any
//! kill. After the commit no check is made: the files are moved into place.
//!
//! A run blocked in a statement (a row lock an analyst holds, a long COPY,
//! the merge) would not reach its next check: a watcher thread sends every
//! connection of the process a cancel request as soon as a signal arrives,
//! so the statement fails at once on the server and the run stops.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};

/// The first signal received (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// Cleared when the commit is about to be sent: from then on a signal no
/// longer stops the run, so nothing of it is cancelled.
static MAY_CANCEL: AtomicBool = AtomicBool::new(true);

/// The run is about to commit: signals no longer cancel statements.
pub fn entering_commit() {
    MAY_CANCEL.store(false, Ordering::SeqCst);
}

/// Set for reports (`costs`, `errors`, `query`): a stop ends them within
/// seconds even in the middle of a computation that never checks.
static REPORT: AtomicBool = AtomicBool::new(false);

/// Temporary files and folders a stopped report removes (spill folders,
/// a half-written `-o` file).
static REMOVE_ON_STOP: std::sync::Mutex<Vec<std::path::PathBuf>> =
    std::sync::Mutex::new(Vec::new());

/// Removes `path` (a file or a folder) if the process is stopped.
pub fn remove_on_stop(path: &std::path::Path) {
    if let Ok(mut paths) = REMOVE_ON_STOP.lock() {
        paths.push(path.to_path_buf());
    }
}

/// Waits for the first signal and cancels the process's statements.
fn watch() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("stop-watcher".into())
            .spawn(|| loop {
                let signal = RECEIVED.load(Ordering::SeqCst);
                if signal != 0 {
                    if MAY_CANCEL.load(Ordering::SeqCst) {
                        crate::db::cancel_all();
                    }
                    if REPORT.load(Ordering::SeqCst) {
                        // Time to stop through the error path (a cancelled
                        // statement, the check before a chunk); a report
                        // deep in a computation is ended here instead.
                        std::thread::sleep(Duration::from_secs(2));
                        remove_temporaries();
                        crate::log::error(
                            &format!("stopped by {}; nothing was written", name(signal)),
                            128 + signal,
                        );
                        std::process::exit(128 + signal);
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            });
    });
}

fn remove_temporaries() {
    let paths = match REMOVE_ON_STOP.lock() {
        Ok(paths) => paths.clone(),
        Err(_) => return,
    };
    for path in paths {
        if path.is_dir() {
            let _ = std::fs::remove_dir_all(&path);
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// `install` for a report: a stop ends it within seconds, removing what
/// `remove_on_stop` named.
pub fn install_for_report() {
    REPORT.store(true, Ordering::SeqCst);
    install();
}

extern "C" fn on_signal(signal: libc::c_int) {
    // Only async-signal-safe work here: an atomic swap, and _exit.
    if RECEIVED.swap(signal, Ordering::SeqCst) != 0 {
        // SAFETY: _exit is async-signal-safe and ends the process.
        unsafe { libc::_exit(128 + signal) };
    }
}

/// Catches SIGINT and SIGTERM from here on, and turns a file-size limit
/// (`ulimit -f`) into a failed write (EFBIG, exit 1 with a clean rollback)
/// instead of SIGXFSZ killing the process mid-file.
pub fn install() {
    // SAFETY: ignoring a signal is always sound.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only touches an atomic and calls _exit;
        // SA_RESTART lets interrupted reads and writes carry on, so the
        // run stops at its own checks rather than in the middle of I/O.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
    watch();
}

fn name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Fails once a stop was asked for.
pub fn check() -> Result<()> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => Ok(()),
        signal => Err(Error::RunFailed(format!(
            "stopped by {} before the commit: nothing was written (the transaction rolled back, the staged report files were removed); run it again",
            name(signal)
        ))),
    }
}

/// Whether a stop signal arrived.
pub fn received() -> bool {
    RECEIVED.load(Ordering::SeqCst) != 0
}

/// The error a run ends with: once a stop signal arrived, whatever failed
/// afterwards (most often a statement it cancelled) is reported as the stop.
pub fn explain(error: Error) -> Error {
    match check() {
        Err(stopped) if !matches!(error, Error::Check(_)) => stopped,
        _ => error,
    }
}

/// A report's error once a stop signal arrived: whatever failed after it
/// (a cancelled statement, the check before a chunk) is the stop.
pub fn explain_report(error: Error) -> Error {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => error,
        signal => Error::RunFailed(format!(
            "stopped by {}; nothing was written and the temporary files were removed",
            name(signal)
        )),
    }
}
