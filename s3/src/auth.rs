//! Credentials: who may sign requests.
//!
//! Secret keys are compared only inside s3s's SigV4 check; they are never logged.

use std::collections::HashMap;

use s3s::auth::S3Auth;
use s3s::auth::SecretKey;
use s3s::s3_error;
use s3s::S3Result;

pub struct Credentials {
    keys: HashMap<String, SecretKey>,
}

impl Credentials {
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Credentials { keys: pairs.into_iter().map(|(a, s)| (a, SecretKey::from(s))).collect() }
    }
}

#[async_trait::async_trait]
impl S3Auth for Credentials {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        self.keys.get(access_key).cloned().ok_or_else(|| {
            s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records.")
        })
    }
}
