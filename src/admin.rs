//! The admin listener: `/metrics`, `/healthz`, `/readyz`. Never exposed on the public port
//! (except `/healthz`), since metrics reveal source names and traffic.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use http::StatusCode;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::sink::Publisher;

#[derive(Clone)]
struct AdminState {
    metrics: PrometheusHandle,
    publisher: Arc<dyn Publisher>,
}

/// The admin router.
pub fn admin_app(metrics: PrometheusHandle, publisher: Arc<dyn Publisher>) -> Router {
    Router::new()
        .route("/metrics", get(|State(s): State<AdminState>| async move { s.metrics.render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<AdminState>| async move {
                if s.publisher.is_ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "broker not connected")
                }
            }),
        )
        .with_state(AdminState { metrics, publisher })
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::layers::test_support::FakePublisher;
    use crate::sink::PublishError;

    #[tokio::test]
    async fn readyz_follows_the_publisher() {
        let publisher = Arc::new(FakePublisher::default());
        let app = admin_app(crate::telemetry::metrics::install(), publisher.clone());
        let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
        assert_eq!(app.clone().oneshot(get("/readyz")).await.unwrap().status(), 200);
        *publisher.failure.lock().unwrap() = Some(|| PublishError::Unavailable("down".into()));
        assert_eq!(app.clone().oneshot(get("/readyz")).await.unwrap().status(), 503);
        assert_eq!(app.clone().oneshot(get("/healthz")).await.unwrap().status(), 200);
        assert_eq!(app.oneshot(get("/metrics")).await.unwrap().status(), 200);
    }
}
