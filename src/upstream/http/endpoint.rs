//! How an upstream is reached, from the config: its URL, bearer token, timeout and concurrency.

use std::time::Duration;

use http::{HeaderValue, Uri};

/// How an upstream is reached (from the config), independent of any session.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub uri: Uri,
    pub auth: Option<HeaderValue>,
    pub timeout: Duration,
    pub max_concurrent_requests: usize,
}

impl Endpoint {
    /// Validates the URL and resolves the bearer token from `token_env`.
    pub fn new(
        url: &str,
        token_env: Option<&str>,
        timeout: Duration,
        max_concurrent_requests: usize,
    ) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("invalid upstream URL {url:?}: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "upstream URL scheme {other:?} is not supported (this build speaks plain http)"
                ));
            }
            None => return Err(format!("upstream URL {url:?} has no scheme")),
        }
        let auth = match token_env {
            Some(var) => {
                let token = std::env::var(var).map_err(|_| {
                    format!("environment variable {var} (upstream bearer token) is not set")
                })?;
                let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| format!("environment variable {var} is not a valid token"))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Self {
            uri,
            auth,
            timeout,
            max_concurrent_requests: max_concurrent_requests.max(1),
        })
    }
}
