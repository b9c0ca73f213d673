//! Resolves `/hooks/{source}` to its configured [`Source`] and buffers the body once into
//! `Bytes`, within the source's size limit: `Content-Length` is checked first, then the read is
//! bounded, so an oversized body is never held in memory.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::Rejection;
use crate::source::{Source, Sources};

/// The buffered request, for every layer below.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The source the request was sent to.
    pub source: Arc<Source>,
    /// The raw body, exactly as received.
    pub body: Bytes,
    /// When the request arrived.
    pub received_at: SystemTime,
}

/// The middleware function.
pub async fn resolve_source(
    State(sources): State<Sources>,
    request: Request,
    next: Next,
) -> Response {
    let name = request.uri().path().rsplit('/').next().unwrap_or_default();
    let Some(source) = sources.get(name).cloned() else {
        return Rejection::UnknownSource.into_response();
    };
    tracing::Span::current().record("source", &*source.name);
    let (mut parts, body) = request.into_parts();
    if declared_length(&parts.headers).is_some_and(|len| len > source.max_body as u64) {
        return Rejection::PayloadTooLarge.into_response();
    }
    let body = match Limited::new(body, source.max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Rejection::PayloadTooLarge.into_response(),
        Err(e) => {
            tracing::debug!(error = %e, "Could not read the request body.");
            return Rejection::BodyUnreadable.into_response();
        }
    };
    parts.extensions.insert(Inbound {
        source,
        body,
        received_at: SystemTime::now(),
    });
    next.run(Request::from_parts(parts, Body::empty())).await
}

fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}
