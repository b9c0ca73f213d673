//! Answers provider handshakes (Slack `url_verification`, ...) exactly as the provider expects.
//! Runs after verification, so a forged handshake is rejected; a handshake is never published.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::header::CONTENT_TYPE;

use super::source::Inbound;
use super::verify::VerifiedEvent;
use crate::error::Outcome;
use crate::providers::field::RequestView;
use crate::telemetry::metrics;

/// The middleware function.
pub async fn handshake(request: Request, next: Next) -> Response {
    let (Some(inbound), Some(event)) = (
        request.extensions().get::<Inbound>(),
        request.extensions().get::<VerifiedEvent>(),
    ) else {
        return next.run(request).await;
    };
    let view = RequestView {
        headers: request.headers(),
        body: &inbound.body,
        json: event.json(),
    };
    let Some(handshake) = inbound.source.provider.handshake(&view) else {
        return next.run(request).await;
    };
    let reply = handshake.reply(&view);
    metrics::handshake(&inbound.source.name, &handshake.name);
    tracing::info!(source = %inbound.source.name, handshake = %handshake.name, "Answered a handshake.");
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = reply.status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, reply.content_type);
    response.extensions_mut().insert(Outcome("handshake"));
    response
}
