//! Validates the payload against the JSON Schema configured for its source and event type
//! (compiled once at start-up). A violation answers 422 with the JSON pointer of the first one.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::source::Inbound;
use super::verify::VerifiedEvent;
use crate::error::Rejection;

/// The middleware function.
pub async fn validate_schema(request: Request, next: Next) -> Response {
    let (Some(inbound), Some(event)) = (
        request.extensions().get::<Inbound>(),
        request.extensions().get::<VerifiedEvent>(),
    ) else {
        return Rejection::Internal.into_response();
    };
    let Some(validator) = inbound.source.schemas.for_type(event.event_type()) else {
        return next.run(request).await;
    };
    let Some(json) = event.json() else {
        // A schema applies but the body is not JSON: the violation is at the root.
        return Rejection::SchemaInvalid {
            pointer: String::new(),
        }
        .into_response();
    };
    if let Err(violation) = validator.validate(json) {
        let pointer = violation.instance_path().as_str().to_owned();
        tracing::info!(source = %inbound.source.name, event_type = %event.event_type(), pointer = %pointer, error = %violation, "Schema-invalid event rejected.");
        return Rejection::SchemaInvalid { pointer }.into_response();
    }
    next.run(request).await
}
