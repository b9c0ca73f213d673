//! Deduplicates by (source, event id): claims the id before the hand-off, commits it only when
//! the layers below answered 2xx (the event is durable), and releases it otherwise — including
//! when the request is cancelled — so a provider's retry is never swallowed.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::source::Inbound;
use super::verify::VerifiedEvent;
use crate::dedup::{Claim, DedupKey, DedupStore};
use crate::error::{Rejection, accepted};
use crate::telemetry::metrics;

/// The store shared by every request.
pub type SharedStore = Arc<dyn DedupStore>;

/// The middleware function.
pub async fn dedup(State(store): State<SharedStore>, request: Request, next: Next) -> Response {
    let (Some(inbound), Some(event)) = (
        request.extensions().get::<Inbound>(),
        request.extensions().get::<VerifiedEvent>(),
    ) else {
        tracing::error!("dedup layer ran without the source and verify layers above it");
        return Rejection::Internal.into_response();
    };
    let source = inbound.source.name.clone();
    let id = event.id().to_owned();
    let key = DedupKey::new(&source, &id);
    match store.claim(&key).await {
        Ok(Claim::Claimed) => {}
        Ok(Claim::Duplicate) => {
            metrics::duplicate(&source);
            tracing::info!(source = %source, "Duplicate event; not published again.");
            return accepted("duplicate", &id);
        }
        Err(e) => {
            tracing::error!(error = %e, "Dedup store failed.");
            return Rejection::DedupUnavailable.into_response();
        }
    }
    let mut claim = ClaimGuard {
        store: &*store,
        key: &key,
        held: true,
    };
    let response = next.run(request).await;
    if response.status().is_success() {
        if let Err(e) = store.commit(&key).await {
            // The event is durable; at worst a later copy is published again (at-least-once).
            tracing::warn!(error = %e, "Could not record the event as seen.");
        }
        claim.held = false;
    }
    response
}

/// Releases the claim when dropped while still held: on a non-2xx answer or on cancellation.
struct ClaimGuard<'a> {
    store: &'a dyn DedupStore,
    key: &'a DedupKey,
    held: bool,
}

impl Drop for ClaimGuard<'_> {
    fn drop(&mut self) {
        if self.held {
            self.store.release(self.key);
        }
    }
}
