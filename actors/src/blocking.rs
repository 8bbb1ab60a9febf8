//! Running blocking work (disk I/O, CPU-heavy coding) off the async runtime, or inline in the deterministic
//! simulation ([`hoard_storage::exec`]).
//!
//! A panic inside the blocking closure is resumed in the calling task, so it fails the actor on whose
//! behalf the work ran, exactly as if the actor had panicked itself, and its supervisor sees it.

use hoard_storage::exec;

use crate::error::ActorError;
use crate::error::Result;

pub async fn run<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    match exec::blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(ActorError::Unavailable("blocking pool")),
    }
}
