//! The time a web request may take, as the work done for it sees it.
//!
//! `serve` answers 504 once a request's time limit has passed, but the
//! work behind the answer runs on a blocking thread that nothing can stop
//! from outside: four whole-period downloads that had been answered 504
//! kept computing and took the server to 12.9 GB. So the work checks, at
//! the places where it goes on for long (each day read, each chunk
//! written), whether its request still wants it: [`check`] fails once
//! the deadline has passed or the client has gone. The commands never
//! set a deadline, and for them [`check`] is one thread-local read.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// When a request's work must stop, and whether its client went away.
#[derive(Clone, Debug)]
pub struct Deadline {
    until: Instant,
    /// Set when the request is dropped (the client closed the connection)
    /// or answered 504.
    abandoned: Arc<AtomicBool>,
}

impl Deadline {
    pub fn after(limit: Duration) -> Deadline {
        Deadline {
            until: Instant::now() + limit,
            abandoned: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The same request's deadline, `more` later (abandoned with it).
    pub fn extended(&self, more: Duration) -> Deadline {
        Deadline {
            until: self.until + more,
            abandoned: self.abandoned.clone(),
        }
    }

    /// Whether the work should stop.
    pub fn is_past(&self) -> bool {
        self.abandoned.load(Ordering::Relaxed) || Instant::now() >= self.until
    }

    /// The time left (zero once past).
    pub fn remaining(&self) -> Duration {
        if self.abandoned.load(Ordering::Relaxed) {
            return Duration::ZERO;
        }
        self.until.saturating_duration_since(Instant::now())
    }

    pub fn abandon(&self) {
        self.abandoned.store(true, Ordering::Relaxed);
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Deadline>> = const { RefCell::new(None) };
}

/// Runs `work` with `deadline` as this thread's: every [`check`] inside
/// it fails once the deadline is past.
pub fn within<T>(deadline: &Deadline, work: impl FnOnce() -> T) -> T {
    struct Reset(Option<Deadline>);
    impl Drop for Reset {
        fn drop(&mut self) {
            CURRENT.with(|c| *c.borrow_mut() = self.0.take());
        }
    }
    let _reset = Reset(CURRENT.with(|c| c.borrow_mut().replace(deadline.clone())));
    work()
}

/// The deadline of the work on this thread, if it has one.
pub fn current() -> Option<Deadline> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Fails once the work on this thread has outlived its request.
pub fn check() -> Result<()> {
    match current() {
        Some(d) if d.is_past() => Err(Error::RunFailed(
            "the request's time limit passed (or its client left); the work was stopped".into(),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_fails_only_inside_a_past_deadline() {
        assert!(check().is_ok());
        let past = Deadline::after(Duration::ZERO);
        assert!(within(&past, check).is_err());
        // Outside it again, nothing is checked.
        assert!(check().is_ok());
        let later = Deadline::after(Duration::from_secs(60));
        assert!(within(&later, check).is_ok());
        later.abandon();
        assert!(within(&later, check).is_err());
    }
}
