//! Shared fixtures for layer unit tests: sources built from the shipped provider files, requests
//! carrying the extensions the layers above would have added, an echo inner service and a fake
//! publisher.

use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hmac::{Hmac, Mac};
use http::StatusCode;
use sha2::Sha256;

use super::source::Inbound;
use crate::config::file::OnInvalid;
use crate::config::secret::Secret;
use crate::providers::Provider;
use crate::sink::{Message, PublishError, Publisher};
use crate::source::{Schemas, Source};

/// A source named `name` using the shipped provider file `provider`.
pub(crate) fn source(name: &str, provider: &str, secrets: &[&str]) -> Source {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("providers");
    let provider = Arc::new(Provider::load(&dir, provider).unwrap());
    let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
    Source {
        name: Arc::from(name),
        keys: RwLock::new(Arc::new(provider.decode_secrets(&secrets).unwrap())),
        provider,
        tolerance: None,
        public_url: None,
        verify_token: None,
        token_header: None,
        auto_confirm: false,
        require: Vec::new(),
        secret_file: std::env::temp_dir().join(format!("hookgate-test-{}-{name}.secret", uuid::Uuid::new_v4())),
        max_body: 1 << 20,
        limiter: None,
        schemas: Schemas::default(),
        on_invalid: OnInvalid::Reject,
    }
}

/// A GitHub source `gh` with secret `s3cret`.
pub(crate) fn github() -> Arc<Source> {
    Arc::new(source("gh", "github", &["s3cret"]))
}

/// A GitHub delivery signed with `secret`, as the source layer leaves it.
pub(crate) fn github_request(
    source: &Arc<Source>,
    secret: &str,
    id: &str,
    event: &str,
    body: &'static [u8],
) -> Request {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let sig = hex::encode(mac.finalize().into_bytes());
    let mut request = Request::builder()
        .method("POST")
        .uri(format!("/hooks/{}", source.name))
        .header("X-Hub-Signature-256", format!("sha256={sig}"))
        .header("X-GitHub-Delivery", id)
        .header("X-GitHub-Event", event)
        .header("Content-Type", "application/json")
        .body(Body::empty())
        .unwrap();
    request.extensions_mut().insert(Inbound::new(source.clone(), Bytes::from_static(body), SystemTime::now()));
    request
}

/// An inner service answering 200 and counting its calls.
pub(crate) fn counting_echo(
    calls: Arc<Mutex<Vec<Request>>>,
) -> impl tower::Service<
    Request,
    Response = Response,
    Error = Infallible,
    Future = BoxFuture<'static, Result<Response, Infallible>>,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |request: Request| {
        let calls = calls.clone();
        async move {
            calls.lock().unwrap().push(request);
            Ok(StatusCode::OK.into_response())
        }
        .boxed()
    })
}

/// A publisher that records messages, or fails as told.
#[derive(Default)]
pub(crate) struct FakePublisher {
    /// Messages taken.
    pub(crate) sent: Mutex<Vec<Message>>,
    /// When set, every publish fails with the error this makes.
    pub(crate) failure: Mutex<Option<fn() -> PublishError>>,
    /// Reported as not connected when set.
    pub(crate) down: std::sync::atomic::AtomicBool,
}

impl Publisher for FakePublisher {
    fn publish<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), PublishError>> {
        let failure = *self.failure.lock().unwrap();
        let result = match failure {
            Some(make) => Err(make()),
            None => {
                self.sent.lock().unwrap().push(message.clone());
                Ok(())
            }
        };
        async move { result }.boxed()
    }

    fn is_ready(&self) -> bool {
        !self.down.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The JSON body of a response.
pub(crate) async fn json(response: Response) -> serde_json::Value {
    use http_body_util::BodyExt;
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}
