//! Answers provider handshakes (Slack `url_verification`, ...) exactly as the provider expects.
//! Runs after verification, so a forged handshake is rejected; a handshake is never published.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;

use super::verify::verified;
use crate::error::Outcome;
use crate::providers::field::RequestView;
use crate::telemetry::metrics;

/// The middleware function.
pub async fn handshake(request: Request, next: Next) -> Response {
    let (inbound, event) = match verified(&request) {
        Ok(parts) => parts,
        Err(rejection) => return rejection.into_response(),
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::middleware::from_fn;
    use http_body_util::BodyExt;
    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::layers::source::Inbound;
    use crate::layers::test_support::{counting_echo, source};
    use crate::layers::verify::verify;

    fn slack_request(body: &'static [u8]) -> Request {
        use hmac::{Hmac, Mac};
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"slack").unwrap();
        mac.update(format!("v0:{ts}:").as_bytes());
        mac.update(body);
        let mut request = Request::builder()
            .method("POST")
            .uri("/hooks/sl")
            .header("X-Slack-Request-Timestamp", ts)
            .header(
                "X-Slack-Signature",
                format!("v0={}", hex::encode(mac.finalize().into_bytes())),
            )
            .body(Body::empty())
            .unwrap();
        request.extensions_mut().insert(Inbound {
            source: Arc::new(source("sl", "slack", &["slack"])),
            body: bytes::Bytes::from_static(body),
            received_at: std::time::SystemTime::now(),
        });
        request
    }

    #[tokio::test]
    async fn a_handshake_is_answered_and_goes_no_further() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let service = from_fn(verify).layer(from_fn(handshake).layer(counting_echo(calls.clone())));
        let response = service
            .oneshot(slack_request(
                br#"{"type":"url_verification","challenge":"abc123"}"#,
            ))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[CONTENT_TYPE], "text/plain");
        assert_eq!(
            response.extensions().get::<Outcome>(),
            Some(&Outcome("handshake"))
        );
        assert_eq!(
            &response.into_body().collect().await.unwrap().to_bytes()[..],
            b"abc123"
        );
        assert!(calls.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn other_events_pass_through() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let service = from_fn(verify).layer(from_fn(handshake).layer(counting_echo(calls.clone())));
        let response = service
            .oneshot(slack_request(
                br#"{"type":"event_callback","event":{"type":"message"}}"#,
            ))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(calls.lock().unwrap().len(), 1);
    }
}
