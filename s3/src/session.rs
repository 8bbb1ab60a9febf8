//! The session actor: one per S3 request, the coordinator of that request's work.
//!
//! A session is temporary (OTP's `temporary` restart type): it lives for one request and is never
//! restarted, because its client is gone with it. When it panics, `s3_sup` records the failure and the
//! listener keeps serving; the client gets a 500, and since the metadata commit is the request's last
//! step, a session that dies before it leaves nothing visible (its shard files are orphans for scrub).

use std::future::Future;

use futures::future::BoxFuture;
use ractor::Actor;
use ractor::ActorCell;
use ractor::ActorProcessingErr;
use ractor::ActorRef;
use s3s::s3_error;
use s3s::S3Result;
use tokio::sync::oneshot;
use tracing::Instrument as _;

pub struct Session;

/// A request's work and the sending of its answer, as one boxed future (the work itself is boxed apart, as
/// soon as [`run`] is given it).
pub type Job = BoxFuture<'static, ()>;

pub enum SessionMsg {
    Run,
}

impl Actor for Session {
    type Msg = SessionMsg;
    type State = Option<Job>;
    type Arguments = Job;

    async fn pre_start(&self, me: ActorRef<SessionMsg>, job: Job) -> Result<Option<Job>, ActorProcessingErr> {
        me.cast(SessionMsg::Run)?;
        Ok(Some(job))
    }

    async fn handle(
        &self,
        me: ActorRef<SessionMsg>,
        _msg: SessionMsg,
        job: &mut Option<Job>,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(job) = job.take() {
            job.await;
        }
        me.stop(None);
        Ok(())
    }
}

/// Runs one request's work in a fresh session actor supervised by `parent`, and returns its answer.
///
/// The work is boxed here, before any future holds it: a request's future is kilobytes, and every future
/// that held it by value (this one, and the operation's around it) would be that much larger, and copied
/// whole each time it moves.
pub fn run<T, F>(parent: &ActorCell, work: F) -> impl Future<Output = S3Result<T>> + Send + use<T, F>
where
    T: Send + 'static,
    F: Future<Output = S3Result<T>> + Send + 'static,
{
    // The work runs on the session actor's task: it carries the caller's span (the operation's) along.
    let work = Box::pin(work).instrument(tracing::Span::current());
    let parent = parent.clone();
    async move {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::pin(async move {
            let _ = tx.send(work.await);
        });
        Session::spawn_linked(None, Session, job, parent)
            .await
            .map_err(|e| s3_error!(ServiceUnavailable, "could not start a session: {e}"))?;
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(s3_error!(InternalError, "The request failed inside the server; nothing was stored. Retry.")),
        }
    }
}
