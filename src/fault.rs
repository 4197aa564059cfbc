//! Test-only pause points. With `CALLROLLUP_TEST_PAUSE_AT=<name>` in the
//! environment, the process says `paused at <name>` on stderr when it
//! reaches that point and then sleeps (at most ten minutes), so a fault
//! test can kill it at exactly that moment instead of guessing with
//! timers. Without the variable a pause point costs one environment look-up.

/// The variable that names the pause point to stop at.
pub const PAUSE_VARIABLE: &str = "CALLROLLUP_TEST_PAUSE_AT";

/// When set, a paused process goes on as soon as this file exists (a test
/// can change the world while it waits, then let it continue).
pub const RESUME_VARIABLE: &str = "CALLROLLUP_TEST_RESUME_FILE";

/// What a paused process prints, followed by the point's name.
pub const PAUSED: &str = "paused at ";

/// Stops here when the environment asks for `name`.
pub fn pause_point(name: &str) {
    if std::env::var(PAUSE_VARIABLE).is_ok_and(|wanted| wanted == name) {
        eprintln!("{PAUSED}{name}");
        // Wakes for a stop signal, so a test can stop the run here.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(600);
        let resume = std::env::var_os(RESUME_VARIABLE).map(std::path::PathBuf::from);
        while std::time::Instant::now() < until
            && crate::signals::check().is_ok()
            && !resume.as_ref().is_some_and(|f| f.exists())
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// The variable that names a failure point to fail at.
pub const FAIL_VARIABLE: &str = "CALLROLLUP_TEST_FAIL_AT";

/// Whether the environment asks the code at `name` to fail as if the
/// condition it guards had happened (a test of a path no small fixture
/// reaches on its own, such as a one-pass read outgrowing its limit after
/// it handed chunks on). One environment look-up.
pub fn fail_point(name: &str) -> bool {
    std::env::var(FAIL_VARIABLE).is_ok_and(|wanted| wanted == name)
}
