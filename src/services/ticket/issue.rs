//! Issuing a ticket: check the caller's token1, place the user, sign the spear token.

use super::directory::{SpearDirectory, SpearEntry};
use super::placement::place;
use crate::services::auth::{AuthKeys, AuthStore, Claims, HolderField, TokenError, TokenKind};
use crate::services::metrics::TicketOutcome;

/// Backups returned with each ticket.
const BACKUPS: usize = 2;
/// Longest user name accepted, bytes (it travels inside every spear token).
const MAX_NAME: usize = 256;
/// Longest app type accepted, bytes.
const MAX_APP: usize = 64;

/// The query parameter names of one ticket endpoint, so that an error names what the caller
/// sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamNames {
    /// The user id's name.
    pub user_id: &'static str,
    /// The user name's name.
    pub user_name: &'static str,
    /// The app type's name.
    pub app_type: &'static str,
    /// The business token's name.
    pub token1: &'static str,
}

/// Gru's `GET /ticket`.
pub const GRU_PARAMS: ParamNames = ParamNames {
    user_id: "userId",
    user_name: "userName",
    app_type: "appType",
    token1: "token1",
};

/// `GET /api/v1/ticket`.
pub const MODERN_PARAMS: ParamNames = ParamNames {
    user_id: "user_id",
    user_name: "user_name",
    app_type: "app_type",
    token1: "token",
};

/// What the caller sent, and under which names.
#[derive(Debug, Clone)]
pub struct TicketParams {
    /// The user id (decimal).
    pub user_id: Option<String>,
    /// The user's name.
    pub user_name: Option<String>,
    /// The app type.
    pub app_type: Option<String>,
    /// The business system's token for this user.
    pub token1: Option<String>,
    /// The endpoint's parameter names.
    pub names: ParamNames,
}

impl Default for TicketParams {
    fn default() -> Self {
        Self {
            user_id: None,
            user_name: None,
            app_type: None,
            token1: None,
            names: GRU_PARAMS,
        }
    }
}

/// Why no ticket was issued; each maps to a Gru error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// A required parameter is missing or empty (710).
    #[error("{0}")]
    BadParam(String),
    /// token1 is invalid, expired or for another user (711).
    #[error("token1 invalid: {0}")]
    BadToken(String),
    /// No live spear (701).
    #[error("no spear node available")]
    NoSpear,
}

impl TicketError {
    /// How the request ended, for `gru_ticket_requests_total`.
    pub fn outcome(&self) -> TicketOutcome {
        match self {
            TicketError::BadParam(_) => TicketOutcome::BadParam,
            TicketError::BadToken(_) => TicketOutcome::BadToken,
            TicketError::NoSpear => TicketOutcome::NoSpear,
        }
    }

    /// Gru's error code.
    pub fn code(&self) -> i32 {
        match self {
            TicketError::BadParam(_) => 710,
            TicketError::BadToken(_) => 711,
            TicketError::NoSpear => 701,
        }
    }
}

/// A placement with its spear token.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// Where the client connects.
    pub primary: SpearEntry,
    /// Where it tries next, in order.
    pub backups: Vec<SpearEntry>,
    /// The spear token (token2).
    pub token: String,
    /// When it was issued, Unix seconds.
    pub issued_at: u64,
    /// When the spear token expires, Unix seconds (0 for a legacy token).
    pub expires_at: u64,
}

/// Checks tokens and signs spear tokens with the keys in force.
#[derive(Clone)]
pub struct TicketIssuer {
    keys: AuthStore,
}

fn required(value: &Option<String>, name: &str, max: usize) -> Result<String, TicketError> {
    match value.as_deref().map(str::trim) {
        Some(v) if v.len() > max => Err(TicketError::BadParam(format!(
            "{name} is longer than {max} bytes"
        ))),
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(TicketError::BadParam(format!("{name} is required"))),
    }
}

impl TicketIssuer {
    /// An issuer over the node's keys (which a reload of `[auth]` replaces).
    pub fn new(keys: AuthStore) -> Self {
        Self { keys }
    }

    /// Issues a ticket for `params` over the live spears of `directory`, at `now` (Unix s).
    pub fn issue(
        &self,
        params: &TicketParams,
        directory: &SpearDirectory,
        now: u64,
    ) -> Result<Ticket, TicketError> {
        let names = params.names;
        let user_id = required(&params.user_id, names.user_id, 20)?;
        let name = required(&params.user_name, names.user_name, MAX_NAME)?;
        let app = required(&params.app_type, names.app_type, MAX_APP)?;
        let token1 = required(&params.token1, names.token1, 4096)?;
        let uid: u64 = user_id.parse().map_err(|_| {
            TicketError::BadParam(format!(
                "{} must be a whole number, got {user_id:?}",
                names.user_id
            ))
        })?;

        let keys = self.keys.current();
        let groups = check_token1(&keys, uid, &name, &app, &token1, names, now)?;
        let live = directory.live();
        let placement =
            place(uid, &SpearDirectory::slots(&live), BACKUPS).ok_or(TicketError::NoSpear)?;
        let find = |id| live.iter().find(|s| s.id == id).cloned();
        let primary = find(placement.primary).ok_or(TicketError::NoSpear)?;
        let backups: Vec<SpearEntry> = placement
            .backups
            .iter()
            .filter_map(|id| find(*id))
            .collect();

        let (token, expires_at) = match groups {
            Token1::Legacy => {
                let token = keys
                    .legacy
                    .as_ref()
                    .map(|l| l.token2(uid, &name, &app, &token1))
                    .unwrap_or_default();
                (token, 0)
            }
            Token1::Signed(groups) => {
                let exp = now.saturating_add(keys.ttl_secs);
                let mut spears = vec![primary.id];
                spears.extend(backups.iter().map(|s| s.id));
                let token = keys.spear.sign(Claims {
                    typ: TokenKind::Spear,
                    uid,
                    name,
                    app,
                    exp,
                    groups,
                    spears: Some(spears),
                });
                (token, exp)
            }
        };
        Ok(Ticket {
            primary,
            backups,
            token,
            issued_at: now,
            expires_at,
        })
    }
}

fn check_token1(
    keys: &AuthKeys,
    uid: u64,
    name: &str,
    app: &str,
    token1: &str,
    names: ParamNames,
    now: u64,
) -> Result<Token1, TicketError> {
    match keys.business.verify(token1, now) {
        Ok(claims) => {
            let other = claims.other_holder(uid, name, app);
            if !other.is_empty() {
                // Named as the caller sent them: "it was issued for another userName".
                let fields: Vec<&str> = other
                    .iter()
                    .map(|f| match f {
                        HolderField::UserId => names.user_id,
                        HolderField::UserName => names.user_name,
                        HolderField::AppType => names.app_type,
                    })
                    .collect();
                return Err(TicketError::BadToken(format!(
                    "it was issued for another {}",
                    fields.join(" and ")
                )));
            }
            Ok(Token1::Signed(claims.groups))
        }
        Err(TokenError::Malformed) if keys.legacy.is_some() => {
            let good = keys
                .legacy
                .as_ref()
                .is_some_and(|l| l.token1_ok(uid, name, app, token1));
            if good {
                Ok(Token1::Legacy)
            } else {
                Err(TicketError::BadToken("legacy token1 does not match".into()))
            }
        }
        Err(e) => Err(TicketError::BadToken(e.to_string())),
    }
}

enum Token1 {
    Signed(Option<Vec<u64>>),
    Legacy,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthSection;
    use crate::services::auth::{legacy, TokenKey};

    fn issuer(auth: &AuthSection) -> TicketIssuer {
        TicketIssuer::new(AuthStore::new(auth))
    }

    fn auth(legacy_md5: bool) -> AuthSection {
        crate::services::auth::test_section(legacy_md5)
    }

    fn directory(ids: &[u64]) -> SpearDirectory {
        let d = SpearDirectory::default();
        d.replace(ids.iter().map(|id| SpearEntry {
            id: *id,
            sio: format!("127.0.0.1:{}", 31000 + id),
            expires_at_ms: u64::MAX,
            load: 0,
        }));
        d
    }

    fn token1(auth: &AuthSection, uid: u64, exp: u64) -> String {
        TokenKey::new(TokenKind::Business, auth.business_secret.as_bytes()).sign(Claims {
            typ: TokenKind::Business,
            uid,
            name: "Zhang".into(),
            app: "web".into(),
            exp,
            groups: Some(vec![10]),
            spears: None,
        })
    }

    fn params(uid: &str, token1: &str) -> TicketParams {
        TicketParams {
            user_id: Some(uid.into()),
            user_name: Some("Zhang".into()),
            app_type: Some("web".into()),
            token1: Some(token1.into()),
            names: GRU_PARAMS,
        }
    }

    #[test]
    fn a_good_token1_gets_a_spear_token_for_the_placement_and_its_backups() {
        let auth = auth(false);
        let issuer = issuer(&auth);
        let t = issuer
            .issue(
                &params("123", &token1(&auth, 123, 2_000)),
                &directory(&[4, 5, 6]),
                1_000,
            )
            .expect("ticket");
        assert_eq!(t.backups.len(), 2);
        let claims = TokenKey::new(TokenKind::Spear, auth.spear_secret.as_bytes())
            .verify(&t.token, 1_000)
            .expect("spear token verifies with the spear secret");
        assert_eq!(claims.uid, 123);
        assert_eq!(claims.groups, Some(vec![10]));
        assert_eq!(claims.exp, 1_600);
        let mut want = vec![t.primary.id];
        want.extend(t.backups.iter().map(|b| b.id));
        assert_eq!(claims.spears, Some(want));
    }

    #[test]
    fn every_refusal_has_its_gru_code() {
        let auth = auth(false);
        let issuer = issuer(&auth);
        let good = token1(&auth, 123, 2_000);
        let d = directory(&[4]);
        let code = |p: &TicketParams, d: &SpearDirectory| {
            issuer
                .issue(p, d, 1_000)
                .map(|_| 0)
                .unwrap_or_else(|e| e.code())
        };
        let mut missing = params("123", &good);
        missing.user_name = Some("  ".into());
        assert_eq!(code(&missing, &d), 710);
        assert_eq!(code(&params("", &good), &d), 710);
        assert_eq!(code(&params("abc", &good), &d), 710);
        assert_eq!(
            code(&params("124", &good), &d),
            711,
            "token for another user"
        );
        assert_eq!(
            code(&params("123", &token1(&auth, 123, 999)), &d),
            711,
            "expired"
        );
        assert_eq!(code(&params("123", "not-a-token"), &d), 711);
        assert_eq!(code(&params("123", &good), &directory(&[])), 701);
        assert_eq!(code(&params("123", &good), &d), 0);
    }

    #[test]
    fn errors_name_the_parameters_of_the_endpoint_called() {
        let auth = auth(false);
        let d = directory(&[4]);
        let mut modern = params("abc", &token1(&auth, 123, 2_000));
        modern.names = MODERN_PARAMS;
        let err = issuer(&auth).issue(&modern, &d, 1_000).unwrap_err();
        assert!(err.to_string().starts_with("user_id must"), "{err}");
        modern.token1 = None;
        modern.user_id = Some("123".into());
        let err = issuer(&auth).issue(&modern, &d, 1_000).unwrap_err();
        assert_eq!(err.to_string(), "token is required");
        let mut long = params("123", &token1(&auth, 123, 2_000));
        long.user_name = Some("x".repeat(MAX_NAME + 1));
        let err = issuer(&auth).issue(&long, &d, 1_000).unwrap_err();
        assert_eq!(err.code(), 710, "{err}");
    }

    #[test]
    fn legacy_md5_tokens_only_when_enabled() {
        let legacy_token1 = legacy::token1(123, "Zhang", "web", "business-secret-0123456789");
        let d = directory(&[4]);
        let off = issuer(&auth(false));
        assert_eq!(
            off.issue(&params("123", &legacy_token1), &d, 1)
                .map(|_| ())
                .unwrap_err()
                .code(),
            711
        );
        let on = issuer(&auth(true));
        let t = on
            .issue(&params("123", &legacy_token1), &d, 1)
            .expect("legacy ticket");
        assert_eq!(
            t.token,
            legacy::token2(
                123,
                "Zhang",
                "web",
                &legacy_token1,
                "spear-secret-0123456789abcd"
            )
        );
        assert_eq!(
            on.issue(&params("124", &legacy_token1), &d, 1)
                .map(|_| ())
                .unwrap_err()
                .code(),
            711
        );
    }

    #[test]
    fn an_expired_lease_is_never_handed_out() {
        let auth = auth(false);
        let d = SpearDirectory::default();
        d.replace(std::iter::once(SpearEntry {
            id: 4,
            sio: "127.0.0.1:31004".into(),
            expires_at_ms: 1,
            load: 0,
        }));
        let err = issuer(&auth)
            .issue(&params("123", &token1(&auth, 123, u64::MAX)), &d, 1)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err, TicketError::NoSpear);
    }
}
