//! Reading store rows back into records.

use crate::db::{Column, Row};
use crate::scopes;
use calconnect::crypto::SealedBlob;
use calconnect::store::StoreError;
use calconnect::store::*;
use uuid::Uuid;

/// The columns of `connections`, in the order [`Decoder::connection`] reads them.
pub(crate) const CONNECTION_COLUMNS: &str = "id, end_user, client_id, owner_kind, owner_id, \
    scopes, status, status_reason, status_changed_at, access_token, refresh_token, \
    access_expires_at, last_refreshed_at, refresh_expires_at_estimate, version, lease_owner, \
    lease_until, refresh_intent_started_at, profile_name, profile_email, profile_username, \
    profile_fetched_at, profile_check_at, created_at, updated_at";

pub(crate) const PENDING_COLUMNS: &str = "id, state_key, pkce_verifier, end_user, scopes, \
    redirect_uri, return_to, browser_binding, expires_at, created_at";

pub(crate) const EVENT_COLUMNS: &str =
    "seq, connection_id, end_user, kind, from_status, to_status, reason, at";

/// Decodes rows of one database; a value that does not decode is [`StoreError::Corrupt`].
pub(crate) struct Decoder<'a> {
    pub(crate) database: &'a str,
}

impl Decoder<'_> {
    pub(crate) fn corrupt(&self, what: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            database: self.database.to_owned(),
            what: what.into(),
        }
    }

    pub(crate) fn get<T: Column>(&self, row: &Row, col: &str) -> Result<T, StoreError> {
        row.get(col)
            .map_err(|e| self.corrupt(format!("column {col}: {e}")))
    }

    fn scopes(&self, row: &Row) -> Result<Vec<String>, StoreError> {
        let text: String = self.get(row, "scopes")?;
        scopes::decode(&text).ok_or_else(|| self.corrupt("column scopes: not a JSON array"))
    }

    pub(crate) fn end_user(&self, row: &Row) -> Result<EndUserId, StoreError> {
        let text: String = self.get(row, "end_user")?;
        EndUserId::new(&text).map_err(|_| self.corrupt("column end_user: invalid"))
    }

    pub(crate) fn status(
        &self,
        row: &Row,
        col: &str,
    ) -> Result<Option<ConnectionStatus>, StoreError> {
        let text: Option<String> = self.get(row, col)?;
        text.map(|t| {
            ConnectionStatus::parse(&t).ok_or_else(|| self.corrupt(format!("column {col}: {t}")))
        })
        .transpose()
    }

    fn digest(&self, row: &Row, col: &str) -> Result<[u8; 32], StoreError> {
        let bytes: Vec<u8> = self.get(row, col)?;
        bytes
            .try_into()
            .map_err(|_| self.corrupt(format!("column {col}: not 32 bytes")))
    }

    pub(crate) fn connection(&self, row: &Row) -> Result<Connection, StoreError> {
        let kind: String = self.get(row, "owner_kind")?;
        let owner = CalOwner::from_parts(&kind, self.get(row, "owner_id")?)
            .ok_or_else(|| self.corrupt(format!("column owner_kind: {kind}")))?;
        let lease_owner: Option<String> = self.get(row, "lease_owner")?;
        let lease_until = self.get(row, "lease_until")?;
        let refresh: Option<Vec<u8>> = self.get(row, "refresh_token")?;
        Ok(Connection {
            id: ConnectionId::from_uuid(self.get::<Uuid>(row, "id")?),
            end_user: self.end_user(row)?,
            identity: CalIdentity {
                client_id: self.get(row, "client_id")?,
                owner,
            },
            scopes: self.scopes(row)?,
            status: self
                .status(row, "status")?
                .ok_or_else(|| self.corrupt("column status: null"))?,
            status_reason: self.get(row, "status_reason")?,
            status_changed_at: self.get(row, "status_changed_at")?,
            access_token: SealedBlob::from_bytes(self.get(row, "access_token")?),
            refresh_token: refresh.map(SealedBlob::from_bytes),
            access_expires_at: self.get(row, "access_expires_at")?,
            last_refreshed_at: self.get(row, "last_refreshed_at")?,
            refresh_expires_at_estimate: self.get(row, "refresh_expires_at_estimate")?,
            version: self.get(row, "version")?,
            lease: match (lease_owner, lease_until) {
                (Some(owner), Some(until)) => Some(RefreshLease {
                    owner: LeaseOwner::new(owner),
                    until,
                }),
                _ => None,
            },
            refresh_intent_started_at: self.get(row, "refresh_intent_started_at")?,
            profile: self.profile(row)?,
            profile_check_at: self.get(row, "profile_check_at")?,
            created_at: self.get(row, "created_at")?,
            updated_at: self.get(row, "updated_at")?,
        })
    }

    fn profile(&self, row: &Row) -> Result<Option<AccountProfile>, StoreError> {
        let fetched_at: Option<time::OffsetDateTime> = self.get(row, "profile_fetched_at")?;
        fetched_at
            .map(|fetched_at| {
                Ok(AccountProfile {
                    name: self.get(row, "profile_name")?,
                    email: self.get(row, "profile_email")?,
                    username: self.get(row, "profile_username")?,
                    fetched_at,
                })
            })
            .transpose()
    }

    pub(crate) fn pending(&self, row: &Row) -> Result<PendingRecord, StoreError> {
        Ok(PendingRecord {
            id: PendingId::from_uuid(self.get::<Uuid>(row, "id")?),
            state_key: StateKey::from_bytes(self.digest(row, "state_key")?),
            pkce_verifier: SealedBlob::from_bytes(self.get(row, "pkce_verifier")?),
            end_user: self.end_user(row)?,
            scopes: self.scopes(row)?,
            redirect_uri: self.get(row, "redirect_uri")?,
            return_to: self.get(row, "return_to")?,
            browser_binding: BrowserBinding::from_bytes(self.digest(row, "browser_binding")?),
            expires_at: self.get(row, "expires_at")?,
            created_at: self.get(row, "created_at")?,
        })
    }

    pub(crate) fn event(&self, row: &Row) -> Result<ConnectionEvent, StoreError> {
        let kind: String = self.get(row, "kind")?;
        Ok(ConnectionEvent {
            seq: self.get(row, "seq")?,
            connection_id: ConnectionId::from_uuid(self.get::<Uuid>(row, "connection_id")?),
            end_user: self.end_user(row)?,
            kind: EventKind::parse(&kind)
                .ok_or_else(|| self.corrupt(format!("column kind: {kind}")))?,
            from_status: self.status(row, "from_status")?,
            to_status: self.status(row, "to_status")?,
            reason: self.get(row, "reason")?,
            at: self.get(row, "at")?,
        })
    }
}
