//! Deduplicates by (source, event id): claims the id before the hand-off, commits it only when
//! the layers below answered 2xx (the event is durable), and releases it otherwise — including
//! when the request is cancelled — so a provider's retry is never swallowed.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::verify::verified;
use crate::dedup::{Claim, DedupKey, DedupStore};
use crate::error::Rejection;
use crate::ingest::acceptance;
use crate::telemetry::metrics;

/// The store shared by every request.
pub type SharedStore = Arc<dyn DedupStore>;

/// The middleware function.
pub async fn dedup(State(store): State<SharedStore>, request: Request, next: Next) -> Response {
    let (inbound, event) = match verified(&request) {
        Ok(parts) => parts,
        Err(rejection) => return rejection.into_response(),
    };
    let source = inbound.source.name.clone();
    let id = event.id().to_owned();
    let key = DedupKey::new(&source, &id);
    match store.claim(&key).await {
        Ok(Claim::Claimed) => {}
        Ok(Claim::Duplicate) => {
            metrics::duplicate(&source);
            tracing::info!(source = %source, "Duplicate event; not published again.");
            return acceptance(&request, inbound, "duplicate", &id);
        }
        Err(e) => {
            tracing::error!(error = %e, "Dedup store failed.");
            return Rejection::DedupUnavailable.into_response();
        }
    }
    // The rest runs in its own task: if the client's request is cancelled (timeout, disconnect)
    // while the event is being made durable, the outcome still decides commit or release, so a
    // retry is neither swallowed nor stored twice.
    let work = tokio::spawn(async move {
        let claim = ClaimGuard { store: store.clone(), key, held: true };
        let response = next.run(request).await;
        if response.status().is_success() {
            if let Err(e) = store.commit(&claim.key).await {
                // The event is durable; at worst a later copy is published again (at-least-once).
                tracing::warn!(error = %e, "Could not record the event as seen.");
            }
            claim.disarm();
        }
        response
    });
    work.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "Request handling panicked.");
        Rejection::Internal.into_response()
    })
}

/// Releases the claim when dropped while still held: on a non-2xx answer or on cancellation.
struct ClaimGuard {
    store: SharedStore,
    key: DedupKey,
    held: bool,
}

impl ClaimGuard {
    fn disarm(mut self) {
        self.held = false;
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if self.held {
            self.store.release(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};

    use axum::middleware::from_fn_with_state;
    use http::StatusCode;
    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::dedup::MemoryStore;
    use crate::layers::test_support::{counting_echo, github, github_request, json};
    use crate::layers::verify::verify;

    /// verify → dedup → an inner service answering `status`, counting calls.
    fn stack(
        store: SharedStore,
        status: Arc<AtomicU16>,
        calls: Arc<AtomicUsize>,
    ) -> impl tower::Service<Request, Response = Response, Error = Infallible> + Clone {
        let inner = tower::service_fn(move |_req: Request| {
            let status = StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap();
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, Infallible>(status.into_response()) }
        });
        from_fn_with_state(crate::fetch::Fetcher::new(), verify).layer(from_fn_with_state(store, dedup).layer(inner))
    }

    #[tokio::test]
    async fn a_second_copy_after_success_is_a_duplicate() {
        let store: SharedStore = MemoryStore::start(std::time::Duration::from_secs(60));
        let (status, calls) = (Arc::new(AtomicU16::new(202)), Arc::new(AtomicUsize::new(0)));
        let service = stack(store, status, calls.clone());
        let gh = github();
        let first = service.clone().oneshot(github_request(&gh, "s3cret", "d-1", "push", b"{}")).await.unwrap();
        assert_eq!(first.status(), 202);
        let second = service.clone().oneshot(github_request(&gh, "s3cret", "d-1", "push", b"{}")).await.unwrap();
        assert_eq!(second.status(), 202);
        assert_eq!(json(second).await, serde_json::json!({"status": "duplicate", "id": "d-1"}));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_first_copy_does_not_swallow_the_retry() {
        let store: SharedStore = MemoryStore::start(std::time::Duration::from_secs(60));
        let (status, calls) = (Arc::new(AtomicU16::new(503)), Arc::new(AtomicUsize::new(0)));
        let service = stack(store, status.clone(), calls.clone());
        let gh = github();
        let first = service.clone().oneshot(github_request(&gh, "s3cret", "d-1", "push", b"{}")).await.unwrap();
        assert_eq!(first.status(), 503);
        status.store(202, Ordering::SeqCst);
        let retry = service.clone().oneshot(github_request(&gh, "s3cret", "d-1", "push", b"{}")).await.unwrap();
        assert_eq!(retry.status(), 202);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_cancelled_request_still_commits_or_releases_by_its_outcome() {
        let store = MemoryStore::start(std::time::Duration::from_secs(60));
        let gh = github();
        for (status, duplicate_after) in [(503, false), (202, true)] {
            let id = format!("d-{status}");
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let rx = std::sync::Arc::new(tokio::sync::Mutex::new(Some(rx)));
            // An inner service that finishes only after the client gave up.
            let slow = tower::service_fn(move |_req: Request| {
                let rx = rx.clone();
                async move {
                    if let Some(rx) = rx.lock().await.take() {
                        let _ = rx.await;
                    }
                    Ok::<_, Infallible>(StatusCode::from_u16(status).unwrap().into_response())
                }
            });
            let service = from_fn_with_state(crate::fetch::Fetcher::new(), verify)
                .layer(from_fn_with_state(store.clone() as SharedStore, dedup).layer(slow));
            let attempt = service.clone().oneshot(github_request(&gh, "s3cret", &id, "push", b"{}"));
            assert!(tokio::time::timeout(std::time::Duration::from_millis(20), attempt).await.is_err());
            tx.send(()).unwrap();
            // The retry waits for the first copy's real outcome.
            let calls = Arc::new(Mutex::new(Vec::new()));
            let retry = from_fn_with_state(crate::fetch::Fetcher::new(), verify)
                .layer(from_fn_with_state(store.clone() as SharedStore, dedup).layer(counting_echo(calls.clone())));
            let response = retry.oneshot(github_request(&gh, "s3cret", &id, "push", b"{}")).await.unwrap();
            assert_eq!(calls.lock().unwrap().is_empty(), duplicate_after, "status {status}");
            assert_eq!(response.status(), if duplicate_after { 202 } else { 200 });
        }
    }
}
