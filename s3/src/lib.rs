//! `hoard-s3`: the S3 front door — the HTTP listener, SigV4 and XML through s3s, the per-request
//! session actor, and the mapping of hoard's errors to S3 error codes.

pub mod access;
pub mod acl;
pub mod admin;
pub mod auth;
pub mod cluster;
pub mod cors;
pub mod error;
pub mod frontend;
pub mod gate;
pub mod keys;
pub mod listener;
pub mod ops;
pub mod policy;
pub mod post;
pub mod session;
pub mod sse;
pub mod tls;

use std::sync::Arc;

use hoard_actors::faults::FaultAdmin;
use hoard_actors::NodeContext;
use ractor::ActorCell;
use s3s::config::S3Config;
use s3s::config::StaticConfigProvider;
use s3s::service::S3ServiceBuilder;

use crate::admin::AdminRoute;
use crate::auth::Credentials;
use crate::frontend::Frontend;
use crate::ops::HoardS3;

/// Builds the request handler of a node: S3 with the given credentials, sessions under `sessions`.
/// `faults` is `Some` only on nodes started with fault injection enabled. `secure` says whether the
/// requests it serves arrived over TLS (or through a TLS-terminating proxy the operator trusts).
pub fn frontend(
    ctx: NodeContext,
    sessions: ActorCell,
    credentials: Credentials,
    faults: Option<Arc<dyn FaultAdmin>>,
    secure: bool,
) -> Arc<Frontend> {
    let s3 = HoardS3 { ctx: ctx.clone(), sessions };
    let credentials = auth::SharedCredentials::new(credentials, Some(ctx.clone()));
    let post = post::PostObject { s3: s3.clone(), credentials: credentials.clone() };
    let mut builder = S3ServiceBuilder::new(s3);
    let mut config = S3Config::default();
    config.xml_max_body_size = gate::MAX_XML_BODY;
    builder.set_config(Arc::new(StaticConfigProvider::new(Arc::new(config))));
    let root_given = credentials.root.is_given();
    builder.set_auth(credentials.clone());
    builder.set_access(access::Authorize { ctx: ctx.clone(), credentials: credentials.clone() });
    builder.set_route(AdminRoute { ctx: ctx.clone(), faults, root_given, credentials });
    Arc::new(Frontend { ctx, s3: builder.build(), post, secure: sse::Secure(secure), refusals: Default::default() })
}
