//! Single flight in one process: one spawned refresh task per connection, shared by every
//! caller that needs it. The task is spawned so that a cancelled caller never abandons a
//! refresh between Cal.com's answer and the write.

use super::{FreshToken, Inner, KeeperError};
use crate::secret::AccessToken;
use crate::store::{Connection, ConnectionId};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use std::sync::{Arc, PoisonError};
use time::{Duration, OffsetDateTime};

/// Why a refresh is wanted; decides, on a fresh read of the row, whether it is still needed.
#[derive(Debug, Clone)]
pub(crate) enum Trigger {
    /// The token is within the margin (or unknown).
    Expiring,
    /// The API rejected this token: refresh only if it is still the stored one.
    Rejected(AccessToken),
    /// Refresh regardless ("refresh now").
    Forced,
    /// Keep-alive: refresh if the refresh token was obtained before `before`. `urgent` when
    /// the refresh token is near the end of its window: the refresh then takes an on-demand
    /// permit, so that a budget saturated by API calls delays keep-alive but never lets a
    /// refresh token lapse.
    KeepAlive {
        before: OffsetDateTime,
        urgent: bool,
    },
}

impl Trigger {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Expiring => "expiring",
            Self::Rejected(_) => "rejected",
            Self::Forced => "forced",
            Self::KeepAlive { .. } => "keep_alive",
        }
    }

    /// Whether the stored row (whose access token is `access`) still needs this refresh.
    /// `Forced` is satisfied by any write after `seen_version`.
    pub(crate) fn needs_refresh(
        &self,
        c: &Connection,
        access: &AccessToken,
        now: OffsetDateTime,
        margin: Duration,
        seen_version: Option<i64>,
    ) -> bool {
        let expiring = c.access_expires_at.is_none_or(|t| t - now <= margin);
        match self {
            Self::Expiring => expiring,
            Self::Rejected(rejected) => expiring || access.ct_eq(rejected),
            Self::Forced => seen_version.is_none_or(|v| v == c.version),
            Self::KeepAlive { before, .. } => expiring || c.last_refreshed_at < *before,
        }
    }

    /// Whether a flight started for `self` also serves `other` (else `other` waits for it to
    /// end and starts its own).
    fn serves(&self, other: &Trigger) -> bool {
        // A keep-alive flight does not serve an on-demand caller: it takes a background permit
        // and gives up at once when there is none, where the caller may wait for one.
        matches!(
            (self, other),
            (
                Self::Expiring | Self::Rejected(_) | Self::Forced,
                Self::Expiring
            ) | (Self::Forced, _)
                | (Self::KeepAlive { .. }, Self::KeepAlive { .. })
        )
    }

    /// The budget priority of a refresh for this trigger.
    pub(crate) fn priority(&self) -> crate::budget::Priority {
        match self {
            Self::KeepAlive { urgent: false, .. } => crate::budget::Priority::Background,
            _ => crate::budget::Priority::OnDemand,
        }
    }
}

pub(crate) type FlightFuture = Shared<BoxFuture<'static, Result<FreshToken, KeeperError>>>;

/// A running refresh and the trigger it was started for.
pub(crate) struct Flight {
    trigger: Trigger,
    future: FlightFuture,
}

impl std::fmt::Debug for Flight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flight")
            .field("trigger", &self.trigger.name())
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Joins the refresh flight of `id` if one serves `trigger`, else starts one.
    pub(crate) async fn run_flight(
        self: &Arc<Self>,
        id: ConnectionId,
        trigger: Trigger,
    ) -> Result<FreshToken, KeeperError> {
        // At most two rounds: wait out an unsuitable flight, then run our own.
        for _ in 0..2 {
            let (future, joined_own_kind) = {
                let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
                match flights.get(&id) {
                    Some(f) if f.trigger.serves(&trigger) => (f.future.clone(), true),
                    Some(f) => (f.future.clone(), false),
                    None => {
                        let future = self.spawn_flight(id, trigger.clone());
                        flights.insert(
                            id,
                            Flight {
                                trigger: trigger.clone(),
                                future: future.clone(),
                            },
                        );
                        (future, true)
                    }
                }
            };
            let result = future.await;
            if joined_own_kind {
                return result;
            }
            if let (Trigger::Rejected(rejected), Ok(fresh)) = (&trigger, &result) {
                if !fresh.access_token.ct_eq(rejected) {
                    return result;
                }
            }
        }
        Err(KeeperError::Interrupted { id })
    }

    fn spawn_flight(self: &Arc<Self>, id: ConnectionId, trigger: Trigger) -> FlightFuture {
        let inner = Arc::clone(self);
        let task = tokio::spawn(async move {
            let result = inner.refresh(id, trigger).await;
            let mut flights = inner.flights.lock().unwrap_or_else(PoisonError::into_inner);
            flights.remove(&id);
            result
        });
        async move { task.await.unwrap_or(Err(KeeperError::Interrupted { id })) }
            .boxed()
            .shared()
    }
}
