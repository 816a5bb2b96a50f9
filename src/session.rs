//! Who is calling: a bearer token resolved, in constant time, to a [`Caller`]; nothing else.

use std::collections::HashMap;
use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::call::Caller;
use crate::config::{Config, ResolvedToken, TokenSource, token_digest};

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send Authorization: Bearer <token>")]
    Missing,
    #[error("unknown bearer token")]
    Unknown,
}

impl AuthError {
    /// Stable code for the 401 body and logs.
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "missing_token",
            Self::Unknown => "invalid_token",
        }
    }
}

/// The tenants' tokens cannot be used as configured (found at start-up).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "tenant {tenant:?}: environment variable {var} is not set (it holds the tenant's bearer token)"
    )]
    Unset { tenant: String, var: String },
    #[error(
        "tenant {tenant:?}: environment variable {var} is set but empty (it must hold the tenant's bearer token)"
    )]
    Empty { tenant: String, var: String },
    /// Two tenants with one token; the message names both, never the token.
    #[error("{0}")]
    Shared(crate::config::ConfigError),
}

/// Token digests of every tenant (and the admin), compared in constant time.
#[derive(Clone)]
pub struct Authenticator {
    tenants: Arc<[([u8; 32], Caller)]>,
    admin: Option<[u8; 32]>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tenants", &self.tenants.len())
            .field("admin", &self.admin.is_some())
            .finish()
    }
}

impl Authenticator {
    /// Resolves every tenant's token. `env` overrides the process environment (used for the
    /// token the embedded default generates); only digests are kept.
    pub fn from_config(cfg: &Config, env: &HashMap<String, String>) -> Result<Self, TokenError> {
        let lookup = |var: &str| env.get(var).cloned().or_else(|| std::env::var(var).ok());
        let mut tenants = Vec::with_capacity(cfg.tenants.len());
        for t in &cfg.tenants {
            let var = || match &t.token {
                TokenSource::Env(v) => v.clone(),
                TokenSource::Sha256(_) => String::new(),
            };
            let digest = match t.resolve_token(lookup) {
                ResolvedToken::Digest(d) => d,
                ResolvedToken::Unset => {
                    return Err(TokenError::Unset {
                        tenant: t.id.clone(),
                        var: var(),
                    });
                }
                ResolvedToken::Empty => {
                    return Err(TokenError::Empty {
                        tenant: t.id.clone(),
                        var: var(),
                    });
                }
            };
            tenants.push((
                digest,
                Caller {
                    tenant: t.id.as_str().into(),
                },
            ));
        }
        cfg.check_distinct_tokens(lookup)
            .map_err(TokenError::Shared)?;
        let admin = cfg
            .admin_token_env
            .as_deref()
            .and_then(lookup)
            .filter(|v| !v.is_empty())
            .map(|t| token_digest(&t));
        Ok(Self {
            tenants: tenants.into(),
            admin,
        })
    }

    /// Resolves an `Authorization` header value to the tenant it belongs to.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Caller, AuthError> {
        let token = bearer(authorization).ok_or(AuthError::Missing)?;
        let digest = token_digest(token);
        // Compare against every tenant without an early exit, so timing does not reveal
        // which (or whether any) tenant's digest shares a prefix with the presented one.
        let mut found = None;
        for (d, caller) in self.tenants.iter() {
            if bool::from(d.ct_eq(&digest)) {
                found = Some(caller);
            }
        }
        found.cloned().ok_or(AuthError::Unknown)
    }

    /// Whether the header carries the admin token. False when no admin token is configured.
    pub fn is_admin(&self, authorization: Option<&[u8]>) -> bool {
        match (self.admin, bearer(authorization)) {
            (Some(admin), Some(token)) => bool::from(admin.ct_eq(&token_digest(token))),
            _ => false,
        }
    }

    /// Whether an admin token is configured at all.
    pub fn has_admin(&self) -> bool {
        self.admin.is_some()
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(authorization: Option<&[u8]>) -> Option<&str> {
    let value = std::str::from_utf8(authorization?).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn auth() -> Authenticator {
        let yaml = format!(
            "version: 1\nadmin_token_env: ADM\ntenants:\n  - id: a\n    token_env: TOK_A\n  - id: b\n    token_sha256: {}\n",
            hex::encode(token_digest("secret-b"))
        );
        let cfg = Config::parse(&yaml, "t.yml", Path::new(".")).unwrap();
        let env = [("TOK_A", "secret-a"), ("ADM", "root")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Authenticator::from_config(&cfg, &env).unwrap()
    }

    #[test]
    fn resolves_tenants_by_token() {
        let a = auth();
        assert_eq!(
            &*a.authenticate(Some(b"Bearer secret-a")).unwrap().tenant,
            "a"
        );
        assert_eq!(
            &*a.authenticate(Some(b"bearer  secret-b ")).unwrap().tenant,
            "b"
        );
        assert_eq!(
            a.authenticate(Some(b"Bearer nope")),
            Err(AuthError::Unknown)
        );
        assert_eq!(
            a.authenticate(Some(b"Basic secret-a")),
            Err(AuthError::Missing)
        );
        assert_eq!(a.authenticate(None), Err(AuthError::Missing));
        assert_eq!(a.authenticate(Some(b"Bearer ")), Err(AuthError::Missing));
    }

    #[test]
    fn admin_token_is_separate() {
        let a = auth();
        assert!(a.is_admin(Some(b"Bearer root")));
        assert!(!a.is_admin(Some(b"Bearer secret-a")));
        assert!(a.authenticate(Some(b"Bearer root")).is_err());
    }

    #[test]
    fn missing_env_is_an_error() {
        let cfg = Config::parse(
            "version: 1\ntenants:\n  - id: a\n    token_env: TOOLGATE_TEST_SURELY_UNSET\n",
            "t.yml",
            Path::new("."),
        )
        .unwrap();
        let e = Authenticator::from_config(&cfg, &HashMap::new()).unwrap_err();
        assert!(
            matches!(&e, TokenError::Unset { var, .. } if var == "TOOLGATE_TEST_SURELY_UNSET"),
            "{e}"
        );
        let empty = [("TOOLGATE_TEST_SURELY_UNSET".to_string(), String::new())].into();
        let e = Authenticator::from_config(&cfg, &empty).unwrap_err();
        assert!(e.to_string().contains("set but empty"), "{e}");
    }

    #[test]
    fn two_tenants_with_one_token_are_refused() {
        let yaml = format!(
            "version: 1\ntenants:\n  - id: a\n    token_env: TOK_A\n  - id: b\n    token_env: TOK_B\n  - id: c\n    token_sha256: {}\n",
            hex::encode(token_digest("secret-c"))
        );
        let cfg = Config::parse(&yaml, "t.yml", Path::new(".")).unwrap();
        let env = |a: &str, b: &str| -> HashMap<String, String> {
            [("TOK_A", a), ("TOK_B", b)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(Authenticator::from_config(&cfg, &env("secret-a", "secret-b")).is_ok());
        let cases = [
            ("t0k-shared", "t0k-shared", "tenants[1].token_env", 5),
            ("secret-a", "secret-c", "tenants[2].token_sha256", 7),
        ];
        for (a, b, field, line) in cases {
            let e = Authenticator::from_config(&cfg, &env(a, b)).unwrap_err();
            let TokenError::Shared(e) = e else {
                panic!("{e}")
            };
            assert_eq!((e.field.as_str(), e.line), (field, line), "{e}");
            assert!(!e.to_string().contains(b), "the token leaks: {e}");
        }
    }
}
