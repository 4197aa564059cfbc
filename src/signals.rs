//! SIGINT and SIGTERM during a run (Ctrl-C, a cron timeout, Kubernetes
//! stopping a pod): the first one asks the run to stop cleanly at its next
//! check — before each chunk and before the commit — so the write
//! transaction rolls back, the staged files are removed and the ledger row
//! becomes `failed` with the reason, exit 1. A second signal ends the
//! process at once (exit 130 or 143), which the next run repairs like any
//! kill. After the commit no check is made: the files are moved into place.

use std::sync::atomic::{AtomicI32, Ordering};

use crate::error::{Error, Result};

/// The first signal received (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

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
