//! Answers provider handshakes exactly as each provider expects; a handshake is never published.
//! Two phases: [`before_verify`] answers unsigned handshakes (Meta's GET `hub.challenge`,
//! Dropbox, Microsoft Graph, monday, Trello's HEAD, Asana's and Notion's secret hand-over) and
//! refuses other non-POST requests unless a signed handshake may match them; [`after_verify`]
//! answers signed ones (Slack, Zoom, Twitch, Discord, Okta, AWS SNS), so a forged handshake is
//! rejected like any forged event.

use axum::body::Body;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};

use super::source::Inbound;
use super::verify::verified;
use crate::error::{Outcome, Rejection};
use crate::fetch::Fetcher;
use crate::providers::handshake::{Handshake, Reply};
use crate::providers::request::RequestView;
use crate::source::Source;
use crate::telemetry::metrics;

/// Unsigned handshakes, then the method check: only POST goes on to verification.
pub async fn before_verify(request: Request, next: Next) -> Response {
    let Some(inbound) = request.extensions().get::<Inbound>() else {
        return Rejection::Internal.into_response();
    };
    let provider = &inbound.source.provider;
    let has_unsigned = provider.handshakes().iter().any(|h| h.before_verify);
    if has_unsigned {
        let view = inbound.view(&request, true);
        if let Some(handshake) = provider.handshake(&view, true) {
            return answer(&inbound.source, handshake, &view);
        }
    }
    if request.method() != Method::POST {
        // A signed handshake may use another method (Okta's GET): it goes on to verification.
        let view = inbound.view(&request, true);
        if provider.handshake(&view, false).is_none() {
            return Rejection::MethodNotAllowed.into_response();
        }
    }
    next.run(request).await
}

/// Signed handshakes, after verification; `fetcher` confirms subscriptions (AWS SNS).
pub async fn after_verify(State(fetcher): State<Arc<Fetcher>>, request: Request, next: Next) -> Response {
    let (inbound, _) = match verified(&request) {
        Ok(parts) => parts,
        Err(rejection) => return rejection.into_response(),
    };
    if inbound.source.provider.handshakes().iter().all(|h| h.before_verify) {
        return next.run(request).await;
    }
    let view = inbound.view(&request, true);
    match inbound.source.provider.handshake(&view, false) {
        Some(handshake) => {
            confirm_subscription(&inbound.source, handshake, &view, &fetcher);
            answer(&inbound.source, handshake, &view)
        }
        None => next.run(request).await,
    }
}

/// Fetches the confirmation URL of a verified subscription handshake when the source has
/// `auto_confirm`, in the background; otherwise logs it for an operator to visit.
fn confirm_subscription(source: &Arc<Source>, handshake: &Handshake, view: &RequestView<'_>, fetcher: &Arc<Fetcher>) {
    match handshake.confirm_url(view) {
        None => {}
        Some(Err(url)) => {
            tracing::error!(source = %source.name, url = %url, "Subscription confirmation URL is not on the provider's host; not confirming.");
        }
        Some(Ok(url)) if source.auto_confirm => {
            let (fetcher, name) = (fetcher.clone(), source.name.clone());
            tokio::spawn(async move {
                match fetcher.get(&url).await {
                    Ok(_) => tracing::info!(source = %name, "Subscription confirmed."),
                    Err(e) => {
                        tracing::error!(source = %name, error = %e, url = %url, "Subscription confirmation failed; visit the URL to confirm.")
                    }
                }
            });
        }
        Some(Ok(url)) => {
            tracing::warn!(source = %source.name, url = %url, "Subscription awaits confirmation: visit the URL, or set auto_confirm: true on the source.");
        }
    }
}

fn answer(source: &Source, handshake: &Handshake, view: &RequestView<'_>) -> Response {
    let verify_token = source.verify_token.as_ref().map(|t| t.expose());
    if !handshake.verify_token_ok(view, verify_token) {
        tracing::warn!(source = %source.name, handshake = %handshake.name, "Handshake with a wrong or missing verify token refused.");
        return Rejection::VerifyTokenInvalid.into_response();
    }
    if let Some(secret) = handshake.captured_secret(view) {
        if let Err(e) = source.capture_secret(&secret) {
            tracing::warn!(source = %source.name, handshake = %handshake.name, error = %e, "Handed-over secret refused.");
            return Rejection::SecretNotAccepted.into_response();
        }
        tracing::info!(source = %source.name, handshake = %handshake.name, "Stored the secret handed over in a handshake.");
    }
    metrics::handshake(&source.name, &handshake.name);
    tracing::info!(source = %source.name, handshake = %handshake.name, "Answered a handshake.");
    let keys = source.keys();
    reply_response(handshake.reply(view, keys.first_shared_secret()), "handshake")
}

/// A provider-defined answer as a response, recorded under `outcome`.
pub fn reply_response(reply: Reply, outcome: &'static str) -> Response {
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    for (name, value) in reply.headers {
        headers.insert(name, value);
    }
    if reply.status == StatusCode::NO_CONTENT {
        headers.remove(http::header::CONTENT_TYPE);
    }
    response.extensions_mut().insert(Outcome(outcome));
    response
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::middleware::from_fn_with_state;
    use http_body_util::BodyExt;
    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::layers::source::Inbound;
    use crate::layers::test_support::{counting_echo, source};
    use crate::layers::verify::verify;

    fn slack_request(body: &'static [u8]) -> Request {
        use hmac::{Hmac, Mac};
        let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"slack").unwrap();
        mac.update(format!("v0:{ts}:").as_bytes());
        mac.update(body);
        let mut request = Request::builder()
            .method("POST")
            .uri("/hooks/sl")
            .header("X-Slack-Request-Timestamp", ts)
            .header("X-Slack-Signature", format!("v0={}", hex::encode(mac.finalize().into_bytes())))
            .body(Body::empty())
            .unwrap();
        request.extensions_mut().insert(Inbound::new(
            Arc::new(source("sl", "slack", &["slack"])),
            bytes::Bytes::from_static(body),
            std::time::SystemTime::now(),
        ));
        request
    }

    #[tokio::test]
    async fn a_handshake_is_answered_and_goes_no_further() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let service = from_fn_with_state(crate::fetch::Fetcher::new(), verify)
            .layer(from_fn_with_state(crate::fetch::Fetcher::new(), after_verify).layer(counting_echo(calls.clone())));
        let response =
            service.oneshot(slack_request(br#"{"type":"url_verification","challenge":"abc123"}"#)).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[http::header::CONTENT_TYPE], "text/plain");
        assert_eq!(response.extensions().get::<Outcome>(), Some(&Outcome("handshake")));
        assert_eq!(&response.into_body().collect().await.unwrap().to_bytes()[..], b"abc123");
        assert!(calls.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn other_events_pass_through() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let service = from_fn_with_state(crate::fetch::Fetcher::new(), verify)
            .layer(from_fn_with_state(crate::fetch::Fetcher::new(), after_verify).layer(counting_echo(calls.clone())));
        let response =
            service.oneshot(slack_request(br#"{"type":"event_callback","event":{"type":"message"}}"#)).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(calls.lock().unwrap().len(), 1);
    }
}
