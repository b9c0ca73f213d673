//! Validates the payload against the JSON Schema configured for its source and event type
//! (compiled once at start-up). A violation answers 422 with the JSON pointer of the first one,
//! or — for a source with `on_invalid: quarantine` — goes on marked for the quarantine exchange.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::verify::verified;
use crate::config::file::OnInvalid;
use crate::error::Rejection;
use crate::sink::QuarantineReason;

/// The middleware function.
pub async fn validate_schema(mut request: Request, next: Next) -> Response {
    let (inbound, event) = match verified(&request) {
        Ok(parts) => parts,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(validator) = inbound.source.schemas.for_type(event.event_type()) else {
        return next.run(request).await;
    };
    // A body that is not JSON violates the schema at the root.
    let violation = match inbound.json() {
        None => Some(String::new()),
        Some(json) => validator.validate(json).err().map(|v| {
            tracing::info!(source = %inbound.source.name, event_type = %event.event_type(), pointer = %v.instance_path(), error = %v, "Schema-invalid event.");
            v.instance_path().as_str().to_owned()
        }),
    };
    let Some(pointer) = violation else { return next.run(request).await };
    if inbound.source.on_invalid == OnInvalid::Quarantine {
        request.extensions_mut().insert(QuarantineReason { reason: "schema_invalid".into(), pointer });
        return next.run(request).await;
    }
    Rejection::SchemaInvalid { pointer }.into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::middleware::{from_fn, from_fn_with_state};
    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::layers::test_support::{counting_echo, github_request, json, source};
    use crate::layers::verify::verify;

    fn with_schema() -> Arc<crate::source::Source> {
        let mut s = source("gh", "github", &["s3cret"]);
        let schema =
            serde_json::json!({"type": "object", "required": ["ref"], "properties": {"ref": {"type": "string"}}});
        s.schemas.by_type.insert("push".into(), Arc::new(jsonschema::validator_for(&schema).unwrap()));
        Arc::new(s)
    }

    async fn run(event: &str, body: &'static [u8]) -> (Response, usize) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let service = from_fn_with_state(crate::fetch::Fetcher::new(), verify)
            .layer(from_fn(validate_schema).layer(counting_echo(calls.clone())));
        let response = service.oneshot(github_request(&with_schema(), "s3cret", "d", event, body)).await.unwrap();
        let n = calls.lock().unwrap().len();
        (response, n)
    }

    #[tokio::test]
    async fn a_violation_answers_422_with_its_pointer() {
        let (response, calls) = run("push", br#"{"ref": 7}"#).await;
        assert_eq!(response.status(), 422);
        assert_eq!(json(response).await, serde_json::json!({"error": "schema_invalid", "pointer": "/ref"}));
        assert_eq!(calls, 0);
    }

    #[tokio::test]
    async fn a_non_json_body_under_a_schema_is_invalid_at_the_root() {
        let (response, _) = run("push", b"payload=x").await;
        assert_eq!(json(response).await, serde_json::json!({"error": "schema_invalid", "pointer": ""}));
    }

    #[tokio::test]
    async fn valid_payloads_and_types_without_schema_pass() {
        assert_eq!(run("push", br#"{"ref": "main"}"#).await.1, 1);
        assert_eq!(run("issues", br#"{"ref": 7}"#).await.1, 1);
    }
}
