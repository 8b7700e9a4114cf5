//! Pending authorizations: single use by `DELETE … RETURNING`, which is atomic on its own.

use crate::SqliteStore;
use crate::rows::{PENDING_COLUMNS, is_unique_violation, micros, scopes_json};
use calconnect::StoreError;
use calconnect::crypto::SealedBlob;
use calconnect::store::*;

impl SqliteStore {
    pub(crate) async fn insert_pending_impl(
        &self,
        p: NewPendingAuthorization,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let result = sqlx::query(
            "INSERT INTO pending_authorizations (id, state_key, pkce_verifier, end_user, scopes, \
             redirect_uri, return_to, browser_binding, expires_at, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(p.id.as_uuid())
        .bind(&p.state_key.as_bytes()[..])
        .bind(p.pkce_verifier.as_bytes())
        .bind(p.end_user.as_str())
        .bind(scopes_json(&p.scopes))
        .bind(&p.redirect_uri)
        .bind(&p.return_to)
        .bind(&p.browser_binding.as_bytes()[..])
        .bind(micros(p.expires_at))
        .bind(micros(now))
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Duplicate {
                what: format!("pending authorization {} (or its state)", p.id),
            }),
            Err(e) => Err(self.err("recording a pending authorization")(e)),
        }
    }

    pub(crate) async fn consume_pending_impl(
        &self,
        state: &StateKey,
        binding: &BrowserBinding,
    ) -> Result<PendingAuthorization, StoreError> {
        let now = self.now();
        let sql = format!(
            "DELETE FROM pending_authorizations WHERE state_key = ? AND browser_binding = ? \
             RETURNING {PENDING_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&state.as_bytes()[..])
            .bind(&binding.as_bytes()[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err("consuming a pending authorization"))?;
        let Some(row) = row else {
            return Err(StoreError::NotFound {
                what: "pending authorization".to_owned(),
            });
        };
        let pending = self.decoder_ref().pending(&row)?;
        if pending.expires_at <= now {
            return Err(StoreError::PendingExpired);
        }
        Ok(pending)
    }

    pub(crate) async fn purge_expired_pending_impl(&self) -> Result<u64, StoreError> {
        let now = self.now();
        let done = sqlx::query("DELETE FROM pending_authorizations WHERE expires_at <= ?")
            .bind(micros(now))
            .execute(&self.pool)
            .await
            .map_err(self.err("purging expired pending authorizations"))?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn list_pending_impl(
        &self,
        after: Option<PendingId>,
        limit: u32,
    ) -> Result<Vec<PendingAuthorization>, StoreError> {
        let sql = format!(
            "SELECT {PENDING_COLUMNS} FROM pending_authorizations \
             WHERE (? IS NULL OR id > ?) ORDER BY id LIMIT ?"
        );
        let after = after.map(|a| a.as_uuid());
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("listing pending authorizations"))?;
        rows.iter().map(|r| self.decoder_ref().pending(r)).collect()
    }

    pub(crate) async fn reseal_pending_impl(
        &self,
        id: PendingId,
        current: &SealedBlob,
        resealed: SealedBlob,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE pending_authorizations SET pkce_verifier = ? WHERE id = ? AND pkce_verifier = ?",
        )
        .bind(resealed.as_bytes())
        .bind(id.as_uuid())
        .bind(current.as_bytes())
        .execute(&self.pool)
        .await
        .map_err(self.err("re-sealing a pending authorization"))?;
        Ok(done.rows_affected() == 1)
    }
}
