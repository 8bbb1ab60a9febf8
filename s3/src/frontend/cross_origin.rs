//! The front door's CORS hooks: a preflight answered from its bucket's rules, and the CORS headers a request
//! with an `Origin` gets on its response. Both read the rules from the local state machine.

use hoard_protocol::BucketSetting;
use http::Request;
use http::Response;
use http::StatusCode;
use s3s::Body;

use super::plain;
use super::Frontend;
use crate::access::meta;
use crate::cors;
use crate::error::OrS3;

impl Frontend {
    /// The answer to a preflight naming `bucket`, from the rules in the local state machine (a preflight is a
    /// browser asking before each cross-origin request: no Raft round trip for it).
    pub(super) fn preflight(&self, bucket: &str, headers: &http::HeaderMap) -> Response<Body> {
        let answer = cors::Preflight::of(headers).and_then(|preflight| {
            let reader = self.ctx.meta.local().or_s3()?;
            let exists = meta(reader.bucket(bucket))?.is_some();
            let stored = if exists { meta(reader.bucket_setting(bucket, BucketSetting::Cors))? } else { None };
            preflight.answer(exists, stored.as_deref())
        });
        match answer {
            Ok(cors_headers) => {
                let mut r = Response::new(Body::empty());
                r.headers_mut().extend(cors_headers);
                r
            }
            Err(e) => e.to_http_response().unwrap_or_else(|_| plain(StatusCode::FORBIDDEN, "forbidden\n")),
        }
    }

    /// Adds to a response the CORS headers its bucket's rules give the request, if any match. Nothing is added
    /// when the rules cannot be read: a browser then refuses the response, which is the safe side.
    pub(super) fn add_cors_headers(&self, asked: &cors::CrossOrigin, response: &mut http::HeaderMap) {
        let stored =
            self.ctx.meta.local().or_s3().and_then(|r| meta(r.bucket_setting(&asked.bucket, BucketSetting::Cors)));
        let rules = match stored {
            Ok(None) => return,
            Ok(Some(text)) => cors::CorsRules::from_json(&text),
            Err(e) => Err(e),
        };
        match rules {
            Ok(rules) => response.extend(asked.headers(&rules).unwrap_or_default()),
            Err(e) => tracing::error!(bucket = %asked.bucket, error = %e, "the bucket's CORS rules cannot be read"),
        }
    }
}

/// The bucket a preflight names: an `OPTIONS` of `/bucket` or `/bucket/key`. `None` for any other request
/// (an `OPTIONS /` goes on to s3s, which knows no such operation).
pub(super) fn preflight_bucket<B>(req: &Request<B>) -> Option<String> {
    (req.method() == http::Method::OPTIONS).then(|| cors::path_bucket(req.uri().path())).flatten()
}
