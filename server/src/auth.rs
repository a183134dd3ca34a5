//! Who is asking: tokens, transports and the `?owner=` override.
//!
//! Over the unix socket a request without a token acts as the local admin
//! ([`Owner::local_admin`]); with a token, as that token's owner. Over TCP
//! every request needs `Authorization: Bearer TOKEN`. Tokens are known by
//! their SHA-256 and compared in constant time against every configured
//! one (no early exit), so timing says nothing about which byte differed.
//!
//! An admin may act in another owner's namespace with `?owner=NAME`;
//! without it an admin's listings show every owner.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use kiln_core::config::{TokenConfig, TokenSecret};
use kiln_core::service::Actor;
use kiln_core::Owner;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::error::ApiError;

/// The transport a request came in on, recorded by the listener as a
/// request extension. A request without one is treated as TCP, the
/// stricter of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The unix socket (mode 0600: only the daemon's user can connect).
    Unix,
    /// The TCP listener.
    Tcp,
}

/// The configured tokens, by hash.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    tokens: Vec<TokenConfig>,
}

/// The owner and admin flag a valid token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's owner.
    pub owner: Owner,
    /// Whether it may act for every owner.
    pub admin: bool,
}

impl Authenticator {
    /// An authenticator accepting `tokens`.
    pub fn new(tokens: Vec<TokenConfig>) -> Self {
        Self { tokens }
    }

    /// The principal `token` belongs to, if any. Every configured token is
    /// compared, whatever matched earlier.
    pub fn check(&self, token: &str) -> Option<Principal> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for t in &self.tokens {
            let TokenSecret::Sha256(known) = &t.secret;
            if bool::from(known.ct_eq(&presented)) && found.is_none() {
                found = Some(Principal {
                    owner: t.owner.clone(),
                    admin: t.admin,
                });
            }
        }
        found
    }

    /// Who a request is from, given its transport and `Authorization`
    /// header value.
    pub fn authenticate(
        &self,
        transport: Transport,
        authorization: Option<&str>,
    ) -> Result<Principal, ApiError> {
        let Some(header) = authorization else {
            return match transport {
                Transport::Unix => Ok(Principal {
                    owner: Owner::local_admin(),
                    admin: true,
                }),
                Transport::Tcp => Err(ApiError::Unauthorized {
                    reason: "a bearer token is required",
                }),
            };
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized {
                reason: "the Authorization header must be \"Bearer TOKEN\"",
            })?;
        self.check(token).ok_or(ApiError::Unauthorized {
            reason: "unknown token",
        })
    }
}

/// The caller of a route, as the service sees it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Whose namespace the request acts in, and whether it is an admin.
    pub actor: Actor,
    /// Whether listings show every owner (an admin without `?owner=`).
    pub all_owners: bool,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let transport = parts
            .extensions
            .get::<Transport>()
            .copied()
            .unwrap_or(Transport::Tcp);
        let authorization = match parts.headers.get(axum::http::header::AUTHORIZATION) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| ApiError::Unauthorized {
                reason: "the Authorization header is not ASCII",
            })?),
        };
        let principal = state.auth.authenticate(transport, authorization)?;

        let asked = query_owner(parts.uri.query())?;
        match asked {
            None => Ok(Caller {
                all_owners: principal.admin,
                actor: Actor {
                    owner: principal.owner,
                    admin: principal.admin,
                },
            }),
            Some(owner) if principal.admin || owner == principal.owner => Ok(Caller {
                all_owners: false,
                actor: Actor {
                    owner,
                    admin: principal.admin,
                },
            }),
            Some(owner) => Err(ApiError::Forbidden {
                reason: format!("only an admin may act for owner {owner:?}"),
            }),
        }
    }
}

/// The `owner` query parameter, validated.
fn query_owner(query: Option<&str>) -> Result<Option<Owner>, ApiError> {
    let Some(query) = query else {
        return Ok(None);
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| kiln_core::Error::invalid("query", e.to_string()))?;
    match pairs.into_iter().find(|(k, _)| k == "owner") {
        None => Ok(None),
        Some((_, v)) => Ok(Some(Owner::new(v)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        let tok = |owner: &str, token: &str, admin| TokenConfig {
            owner: Owner::new(owner).expect("valid owner"),
            secret: TokenSecret::Sha256(Sha256::digest(token.as_bytes()).into()),
            admin,
        };
        Authenticator::new(vec![
            tok("team-a", "aaaaaaaaaaaaaaaaaaaa", false),
            tok("root", "rrrrrrrrrrrrrrrrrrrr", true),
        ])
    }

    #[test]
    fn tcp_needs_a_known_token() {
        let a = auth();
        assert!(a.authenticate(Transport::Tcp, None).is_err());
        assert!(a.authenticate(Transport::Tcp, Some("Bearer nope")).is_err());
        assert!(a
            .authenticate(Transport::Tcp, Some("aaaaaaaaaaaaaaaaaaaa"))
            .is_err());
        let p = a
            .authenticate(Transport::Tcp, Some("Bearer aaaaaaaaaaaaaaaaaaaa"))
            .expect("known token");
        assert_eq!((p.owner.as_str(), p.admin), ("team-a", false));
        let p = a
            .authenticate(Transport::Tcp, Some("Bearer rrrrrrrrrrrrrrrrrrrr"))
            .expect("known token");
        assert_eq!((p.owner.as_str(), p.admin), ("root", true));
    }

    #[test]
    fn unix_without_a_token_is_the_local_admin() {
        let a = auth();
        let p = a.authenticate(Transport::Unix, None).expect("local admin");
        assert_eq!(p.owner, Owner::local_admin());
        assert!(p.admin);
        assert!(a
            .authenticate(Transport::Unix, Some("Bearer nope"))
            .is_err());
    }

    #[test]
    fn owner_query_is_parsed_and_checked() {
        assert_eq!(query_owner(None).ok(), Some(None));
        let o = query_owner(Some("x=1&owner=team-b")).expect("valid");
        assert_eq!(o.map(|o| o.to_string()), Some("team-b".to_string()));
        assert!(query_owner(Some("owner=..")).is_err());
    }
}
