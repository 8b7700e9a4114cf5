//! The shared `OAuthService` of the token endpoints (`docs/calcom.md` §3.4, version
//! e0ef2d8d): code exchange and refresh with Cal.com's checks in Cal.com's order, token minting
//! (§3.6) and refresh-token rotation. Used by the v2 and the legacy endpoints alike.
//!
//! The lock is taken for short, synchronous steps only. As at Cal.com, the revocation check and
//! the rotation of a refresh are separate steps, so concurrent refreshes of one token can both
//! succeed and the later rotation kills the earlier caller's new token (§3.4 "Concurrent
//! refreshes race").

use super::errors::TokenError;
use super::random_b64url;
use crate::jwt::{self, ACCESS_TOKEN_TYPE, Claims, REFRESH_TOKEN_TYPE};
use crate::seed::{ClientStatus, ClientType};
use crate::state::{
    Client, IssuedTokens, Owner, RefreshTokenRow, Shared, TokenEndpoint, push_bounded,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::Duration;

/// A freshly minted token pair, as both endpoints report it.
#[derive(Clone)]
pub(crate) struct Minted {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    /// Space-joined scopes.
    pub scope: String,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The fields of an `authorization_code` request after the endpoint's own input checks.
#[derive(Debug)]
pub(crate) struct ExchangeRequest<'a> {
    pub client_id: &'a str,
    pub code: &'a str,
    pub client_secret: Option<&'a str>,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
}

/// `validateClientSecret`: confidential clients need a secret whose SHA-256 hex matches one of
/// the (at most two) stored hashes; public clients pass.
fn secret_ok(client: &Client, secret_hash: Option<&str>) -> bool {
    match client.client_type {
        ClientType::Public => true,
        ClientType::Confidential => secret_hash.is_some_and(|h| {
            client.secret_hashes.iter().fold(false, |ok, stored| {
                ok | bool::from(stored.as_bytes().ct_eq(h.as_bytes()))
            })
        }),
    }
}

fn hash_secret(secret: Option<&str>) -> Option<String> {
    secret
        .filter(|s| !s.is_empty())
        .map(crate::seed::hash_secret)
}

/// `ensureClientAccessAllowed`: REJECTED fails for everyone; otherwise the owner passes and
/// everybody else needs APPROVED (§1 owner bypass).
pub(crate) fn ensure_access(client: &Client, user_id: Option<i64>) -> Result<(), &'static str> {
    if client.status == ClientStatus::Rejected {
        return Err("client_rejected");
    }
    let is_owner = user_id == Some(client.owner_user_id);
    if !is_owner && client.status != ClientStatus::Approved {
        return Err("client_not_approved");
    }
    Ok(())
}

/// `base64url(sha256(verifier)) == challenge`, compared in constant time.
pub(crate) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// `exchangeCodeForTokens` (§3.4 authorization_code, steps 1–8).
pub(crate) fn exchange(
    shared: &Shared,
    endpoint: TokenEndpoint,
    req: &ExchangeRequest<'_>,
) -> Result<Minted, TokenError> {
    let secret_hash = hash_secret(req.client_secret);
    let now = shared.clock.now();
    let (client, code) = {
        let mut db = shared.db();
        // 1. client
        let client = db
            .clients
            .get(req.client_id)
            .cloned()
            .ok_or_else(|| TokenError::invalid_client("client_not_found"))?;
        // 2. redirect_uri must be *a* registered URI (an empty one is skipped, as in JS).
        if let Some(uri) = req.redirect_uri.filter(|u| !u.is_empty())
            && !client.redirect_uris.iter().any(|r| r == uri)
        {
            return Err(TokenError::invalid_grant("redirect_uri_mismatch"));
        }
        // 3. client secret
        if !secret_ok(&client, secret_hash.as_deref()) {
            return Err(TokenError::invalid_client("invalid_client_credentials"));
        }
        // 4. look the code up, then burn it and every expired code before further checks.
        let found = db
            .codes
            .get(req.code)
            .filter(|c| c.client_id == req.client_id && c.expires_at > now)
            .cloned();
        if db
            .codes
            .get(req.code)
            .is_some_and(|c| c.client_id == req.client_id)
        {
            db.codes.remove(req.code);
        }
        db.codes.retain(|_, c| c.expires_at > now);
        drop(db);
        shared.changed();
        // 5. no valid code
        let code = found.ok_or_else(|| TokenError::invalid_grant("code_invalid_or_expired"))?;
        (client, code)
    };
    // 6. status, for the code's user (a team code has none, so only APPROVED passes)
    let user_id = match code.owner {
        Owner::User(id) => Some(id),
        Owner::Team(_) => None,
    };
    ensure_access(&client, user_id).map_err(TokenError::unauthorized_client)?;
    // 7. PKCE
    let enforce = client.client_type == ClientType::Public || code.code_challenge.is_some();
    if enforce {
        let method = code.code_challenge_method.as_deref().unwrap_or("S256");
        let (Some(challenge), Some(verifier)) = (code.code_challenge.as_deref(), req.code_verifier)
        else {
            return Err(TokenError::invalid_request(
                "pkce_missing_parameters_or_invalid_method",
            ));
        };
        if method != "S256" || verifier.is_empty() {
            return Err(TokenError::invalid_request(
                "pkce_missing_parameters_or_invalid_method",
            ));
        }
        if !pkce_matches(verifier, challenge) {
            return Err(TokenError::invalid_grant("pkce_verification_failed"));
        }
    }
    // 8. mint and store the refresh secret (an exchange adds a row; only refresh prunes).
    Ok(issue(
        shared,
        endpoint,
        &client.client_id,
        code.owner,
        &code.scopes,
        (
            code.code_challenge.as_deref(),
            code.code_challenge_method.as_deref(),
        ),
    ))
}

/// `refreshAccessToken` (§3.4 refresh_token, steps 1–6).
pub(crate) fn refresh(
    shared: &Shared,
    endpoint: TokenEndpoint,
    client_id: &str,
    refresh_token: &str,
    client_secret: Option<&str>,
) -> Result<Minted, TokenError> {
    let secret_hash = hash_secret(client_secret);
    let now = shared.clock.now();
    // 1. client and secret
    let client = shared
        .db()
        .clients
        .get(client_id)
        .cloned()
        .ok_or_else(|| TokenError::invalid_client("client_not_found"))?;
    if !secret_ok(&client, secret_hash.as_deref()) {
        return Err(TokenError::invalid_client("invalid_client_credentials"));
    }
    // 2. any JWT failure, expiry included, or the wrong token_type
    let claims = jwt::verify(refresh_token, &shared.signing_key, now.unix_timestamp())
        .ok()
        .filter(|c| c.token_type == REFRESH_TOKEN_TYPE)
        .ok_or_else(|| TokenError::invalid_grant("invalid_refresh_token"))?;
    // 3. issued to another client
    if claims.client_id != client_id {
        return Err(TokenError::invalid_grant("client_id_mismatch"));
    }
    // 4. status, for the token's user
    ensure_access(&client, claims.user_id).map_err(TokenError::unauthorized_client)?;
    // 5. a token with a secret must still have its row (legacy tokens without one pass once)
    if let Some(secret) = &claims.secret
        && !shared.db().refresh_tokens.contains_secret(secret)
    {
        return Err(TokenError::invalid_grant("refresh_token_revoked"));
    }
    let owner = match (claims.user_id, claims.team_id) {
        (Some(u), _) if u != 0 => Owner::User(u),
        (_, Some(t)) if t != 0 => Owner::Team(t),
        _ => return Err(TokenError::invalid_grant("invalid_refresh_token")),
    };
    // 6. mint, then rotate: delete every row of (client, owner) and insert the new secret.
    let (minted, secret, expires_at) = mint(shared, client_id, owner, &claims.scope, None, None);
    let mut db = shared.db();
    db.refresh_tokens.remove_owner(client_id, owner);
    db.refresh_tokens.push(RefreshTokenRow {
        client_id: client_id.to_owned(),
        owner,
        secret,
        expires_at,
    });
    if let Owner::User(u) = owner
        && let Some(a) = db.authorizations.get_mut(&(u, client_id.to_owned()))
    {
        a.last_refreshed_at = Some(now);
    }
    log_issued(
        &mut db,
        endpoint,
        "refresh_token",
        client_id,
        owner,
        &minted,
        now,
    );
    drop(db);
    shared.changed();
    Ok(minted)
}

/// Mints a pair for `owner` of `client_id` and stores its refresh secret: how a code exchange
/// ends, and the control surface's seeding (`pkce` is the code's challenge and method).
pub(crate) fn issue(
    shared: &Shared,
    endpoint: TokenEndpoint,
    client_id: &str,
    owner: Owner,
    scopes: &[String],
    pkce: (Option<&str>, Option<&str>),
) -> Minted {
    let now = shared.clock.now();
    let (minted, secret, expires_at) = mint(shared, client_id, owner, scopes, pkce.0, pkce.1);
    let mut db = shared.db();
    db.refresh_tokens.push(RefreshTokenRow {
        client_id: client_id.to_owned(),
        owner,
        secret,
        expires_at,
    });
    log_issued(
        &mut db,
        endpoint,
        "authorization_code",
        client_id,
        owner,
        &minted,
        now,
    );
    drop(db);
    shared.changed();
    minted
}

/// `mintTokens` (§3.6): an access JWT (`exp` = now + access ttl) and a refresh JWT carrying a
/// fresh 32-byte secret (`exp` = now + refresh ttl). Returns the pair, the secret and its expiry.
fn mint(
    shared: &Shared,
    client_id: &str,
    owner: Owner,
    scopes: &[String],
    code_challenge: Option<&str>,
    code_challenge_method: Option<&str>,
) -> (Minted, String, time::OffsetDateTime) {
    let settings = shared.settings();
    let now = shared.clock.now();
    let iat = now.unix_timestamp();
    let (user_id, team_id) = match owner {
        Owner::User(u) => (Some(u), None),
        Owner::Team(t) => (None, Some(t)),
    };
    let access = Claims {
        user_id,
        team_id,
        scope: scopes.to_vec(),
        token_type: ACCESS_TOKEN_TYPE.to_owned(),
        client_id: client_id.to_owned(),
        secret: None,
        code_challenge: None,
        code_challenge_method: None,
        iat,
        exp: iat + settings.access_token_ttl.whole_seconds(),
    };
    let secret = random_b64url(32);
    let refresh = Claims {
        token_type: REFRESH_TOKEN_TYPE.to_owned(),
        secret: Some(secret.clone()),
        code_challenge: code_challenge.map(str::to_owned),
        code_challenge_method: code_challenge.and(code_challenge_method.map(str::to_owned)),
        exp: iat + settings.refresh_token_ttl.whole_seconds(),
        ..access.clone()
    };
    let minted = Minted {
        access_token: jwt::sign(&access, &shared.signing_key),
        refresh_token: jwt::sign(&refresh, &shared.signing_key),
        expires_in: settings.access_token_ttl.whole_seconds(),
        scope: scopes.join(" "),
    };
    let expires_at = now + settings.refresh_token_ttl.max(Duration::ZERO);
    (minted, secret, expires_at)
}

fn log_issued(
    db: &mut crate::state::Db,
    endpoint: TokenEndpoint,
    grant: &str,
    client_id: &str,
    owner: Owner,
    minted: &Minted,
    now: time::OffsetDateTime,
) {
    let (user_id, team_id) = match owner {
        Owner::User(u) => (Some(u), None),
        Owner::Team(t) => (None, Some(t)),
    };
    push_bounded(
        &mut db.issued_tokens,
        IssuedTokens {
            endpoint,
            grant: grant.to_owned(),
            client_id: client_id.to_owned(),
            user_id,
            team_id,
            access_token: minted.access_token.clone(),
            refresh_token: minted.refresh_token.clone(),
            issued_at: now,
        },
    );
}
