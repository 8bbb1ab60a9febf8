//! The execution-mode seam: where blocking work (file I/O, fsyncs, CPU-heavy coding) runs.
//!
//! A running node runs it off the async runtime, on tokio's blocking pool or on threads of its own (a disk's
//! I/O threads, the metadata fsync thread). The deterministic simulation runs a whole cluster on one
//! current-thread runtime with paused time; there, work on another thread would take real time while virtual
//! time races ahead (elections fire early, deadlines pass), and its finishing order would be the OS's. So the
//! simulation switches its thread to *inline* mode, and blocking work runs on the calling task instead.
//!
//! Invariants:
//! - Inline mode is for the deterministic simulation only. It is per thread ([`set_inline`]), off unless set,
//!   and nothing that serves clients sets it.
//! - Outside inline mode every function here does exactly what the tokio call it wraps does.
//! - In inline mode no blocking work leaves the calling thread: it runs to its end before the caller goes on,
//!   so virtual time stands still while it runs and the same seed schedules the same steps.
//! - Blocking work is started through [`blocking`]; code that owns threads instead (the disk I/O threads, the
//!   fsync thread) asks [`is_inline`] when it is built and starts none in inline mode. `clippy.toml` forbids
//!   `spawn_blocking` everywhere else.

use std::cell::Cell;

use tokio::task::JoinError;

thread_local! {
    /// Whether blocking work started on this thread runs inline.
    static INLINE: Cell<bool> = const { Cell::new(false) };
}

/// Makes blocking work started on this thread run inline, on the calling task (`true`), or off the async
/// runtime as usual (`false`). For the deterministic simulation only, which calls it on its one thread before
/// it starts any node.
pub fn set_inline(on: bool) {
    INLINE.with(|inline| inline.set(on));
}

/// Whether blocking work started on this thread runs inline.
pub fn is_inline() -> bool {
    INLINE.with(Cell::get)
}

/// Runs blocking `f` and waits for it: on tokio's blocking pool (`spawn_blocking`), or inline on the calling
/// task in inline mode. The mode is that of the thread the returned future is first polled on.
///
/// The error is `spawn_blocking`'s: `f` panicked, or the runtime is shutting down. Inline there is none: a
/// panic in `f` unwinds the caller, as if the caller had panicked itself.
pub async fn blocking<T, F>(f: F) -> Result<T, JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if is_inline() {
        return Ok(f());
    }
    // The seam itself: the one place allowed to start work on the blocking pool.
    #[allow(clippy::disallowed_methods)]
    let spawned = tokio::task::spawn_blocking(f);
    spawned.await
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn blocking_work_leaves_the_calling_thread_unless_inline() {
        let me = thread::current().id();
        assert!(!is_inline(), "off unless set");
        let ran_on = blocking(|| thread::current().id()).await.unwrap();
        assert_ne!(ran_on, me, "on the blocking pool");
        assert!(blocking::<(), _>(|| panic!("boom")).await.unwrap_err().is_panic());
    }

    #[test]
    fn inline_mode_runs_blocking_work_on_the_calling_thread_and_is_per_thread() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        set_inline(true);
        let me = thread::current().id();
        assert_eq!(rt.block_on(blocking(|| thread::current().id())).unwrap(), me);
        assert!(!thread::spawn(is_inline).join().unwrap(), "another thread is not inline");
        set_inline(false);
        assert_ne!(rt.block_on(blocking(|| thread::current().id())).unwrap(), me);
    }
}
