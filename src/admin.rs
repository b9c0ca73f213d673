//! The admin listener: `/metrics`, `/healthz`, `/readyz`. Never exposed on the public port
//! (except `/healthz`), since metrics reveal source names and traffic.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use http::StatusCode;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::sink::delivery::Delivery;

#[derive(Clone)]
struct AdminState {
    metrics: PrometheusHandle,
    delivery: Delivery,
}

/// The admin router.
pub fn admin_app(metrics: PrometheusHandle, delivery: Delivery) -> Router {
    Router::new()
        .route("/metrics", get(|State(s): State<AdminState>| async move { s.metrics.render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<AdminState>| async move {
                if s.delivery.is_ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "broker not connected and no spool")
                }
            }),
        )
        .with_state(AdminState { metrics, delivery })
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt;

    use std::sync::Arc;

    use super::*;
    use crate::layers::test_support::FakePublisher;

    #[tokio::test]
    async fn readyz_follows_the_publisher() {
        let publisher = Arc::new(FakePublisher::default());
        let delivery = Delivery { publisher: Some(publisher.clone()), spool: None };
        let app = admin_app(crate::telemetry::metrics::install(), delivery);
        let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
        assert_eq!(app.clone().oneshot(get("/readyz")).await.unwrap().status(), 200);
        publisher.down.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(app.clone().oneshot(get("/readyz")).await.unwrap().status(), 503);
        assert_eq!(app.clone().oneshot(get("/healthz")).await.unwrap().status(), 200);
        assert_eq!(app.oneshot(get("/metrics")).await.unwrap().status(), 200);
    }
}
