//! What clients are told. Every rejection has a fixed status, a stable machine-readable code
//! under `error`, and records that code as the request's outcome for metrics. Nothing here ever
//! echoes a secret, a signature or the payload.

use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::providers::VerifyError;

/// The outcome of a request, stored in response extensions for the metrics layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome(pub &'static str);

/// Every way a webhook can be turned away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No source has this name.
    #[error("unknown source")]
    UnknownSource,
    /// Not a POST.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Body over the source's limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// The body could not be read (client went away, malformed framing).
    #[error("body unreadable")]
    BodyUnreadable,
    /// A signature input is absent.
    #[error("signature missing")]
    SignatureMissing,
    /// No signature matched, or it is malformed.
    #[error("signature invalid")]
    SignatureInvalid,
    /// The signed timestamp is outside the tolerance.
    #[error("timestamp out of tolerance")]
    TimestampOutOfTolerance,
    /// A subscription handshake presented a wrong or no verify token (Meta).
    #[error("verify token invalid")]
    VerifyTokenInvalid,
    /// Authentic, but not for this source (`require` did not match).
    #[error("not allowed")]
    NotAllowed,
    /// A handshake handed over a secret the source cannot take.
    #[error("secret not accepted")]
    SecretNotAccepted,
    /// The event id or type is longer than hookgate can carry.
    #[error("event identity too long")]
    IdentityTooLong,
    /// The payload violates the schema for its type; `pointer` is the first violation.
    #[error("schema invalid at {pointer}")]
    SchemaInvalid {
        /// JSON pointer into the payload.
        pointer: String,
    },
    /// The source's rate limit is exhausted.
    #[error("rate limited")]
    RateLimited {
        /// When a retry may succeed.
        retry_after: Duration,
    },
    /// The broker cannot take the event durably right now.
    #[error("broker unavailable")]
    BrokerUnavailable,
    /// The broker confirmed but no queue is bound for this routing key.
    #[error("unroutable")]
    Unroutable,
    /// A signing key the request names could not be downloaded.
    #[error("key unavailable")]
    KeyUnavailable,
    /// Neither the broker nor the spool took the event (spool full, disk failure).
    #[error("unavailable")]
    Unavailable,
    /// The dedup store cannot be reached.
    #[error("dedup unavailable")]
    DedupUnavailable,
    /// Too many requests in flight.
    #[error("overloaded")]
    Overloaded,
    /// The request took longer than `limits.request_timeout`.
    #[error("request timeout")]
    Timeout,
    /// A bug; details are in the log.
    #[error("internal error")]
    Internal,
}

/// Seconds a client is asked to wait before retrying after a 503.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

impl Rejection {
    /// The stable code under `error`.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::UnknownSource => "unknown_source",
            Rejection::MethodNotAllowed => "method_not_allowed",
            Rejection::PayloadTooLarge => "payload_too_large",
            Rejection::BodyUnreadable => "body_unreadable",
            Rejection::SignatureMissing => "signature_missing",
            Rejection::SignatureInvalid => "signature_invalid",
            Rejection::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            Rejection::VerifyTokenInvalid => "verify_token_invalid",
            Rejection::NotAllowed => "not_allowed",
            Rejection::SecretNotAccepted => "secret_not_accepted",
            Rejection::IdentityTooLong => "identity_too_long",
            Rejection::SchemaInvalid { .. } => "schema_invalid",
            Rejection::RateLimited { .. } => "rate_limited",
            Rejection::BrokerUnavailable => "broker_unavailable",
            Rejection::Unroutable => "unroutable",
            Rejection::DedupUnavailable => "dedup_unavailable",
            Rejection::Unavailable => "unavailable",
            Rejection::KeyUnavailable => "key_unavailable",
            Rejection::Overloaded => "overloaded",
            Rejection::Timeout => "timeout",
            Rejection::Internal => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::UnknownSource => StatusCode::NOT_FOUND,
            Rejection::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::BodyUnreadable => StatusCode::BAD_REQUEST,
            Rejection::SignatureMissing | Rejection::SignatureInvalid | Rejection::TimestampOutOfTolerance => {
                StatusCode::UNAUTHORIZED
            }
            Rejection::VerifyTokenInvalid | Rejection::SecretNotAccepted | Rejection::NotAllowed => {
                StatusCode::FORBIDDEN
            }
            Rejection::SchemaInvalid { .. } | Rejection::IdentityTooLong => StatusCode::UNPROCESSABLE_ENTITY,
            Rejection::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Rejection::BrokerUnavailable
            | Rejection::Unroutable
            | Rejection::DedupUnavailable
            | Rejection::Unavailable
            | Rejection::KeyUnavailable
            | Rejection::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Timeout => StatusCode::REQUEST_TIMEOUT,
            Rejection::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            // Round up: "retry in 0 s" would invite an immediate second 429.
            Rejection::RateLimited { retry_after } => {
                Some(retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0))
            }
            Rejection::BrokerUnavailable
            | Rejection::Unroutable
            | Rejection::DedupUnavailable
            | Rejection::Unavailable
            | Rejection::KeyUnavailable
            | Rejection::Overloaded => Some(UNAVAILABLE_RETRY_AFTER_SECS),
            _ => None,
        }
    }
}

impl From<VerifyError> for Rejection {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::SignatureMissing => Rejection::SignatureMissing,
            VerifyError::SignatureInvalid => Rejection::SignatureInvalid,
            VerifyError::TimestampOutOfTolerance => Rejection::TimestampOutOfTolerance,
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let body = match &self {
            Rejection::SchemaInvalid { pointer } => {
                json!({ "error": self.code(), "pointer": pointer })
            }
            _ => json!({ "error": self.code() }),
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(secs) = self.retry_after() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(Outcome(self.code()));
        response
    }
}

/// A 202 with `{"status": status, "id": id}`.
pub fn accepted(status: &'static str, id: &str) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(json!({ "status": status, "id": id }))).into_response();
    response.extensions_mut().insert(Outcome(status));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn schema_rejection_carries_the_pointer_and_outcome() {
        let response = Rejection::SchemaInvalid { pointer: "/ref".into() }.into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(response.extensions().get::<Outcome>(), Some(&Outcome("schema_invalid")));
        assert_eq!(body_json(response).await, json!({"error": "schema_invalid", "pointer": "/ref"}));
    }

    #[tokio::test]
    async fn rate_limit_rounds_retry_after_up() {
        let response = Rejection::RateLimited { retry_after: Duration::from_millis(1200) }.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }

    #[tokio::test]
    async fn broker_unavailable_asks_for_a_retry() {
        let response = Rejection::BrokerUnavailable.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        assert_eq!(body_json(response).await, json!({"error": "broker_unavailable"}));
    }
}
