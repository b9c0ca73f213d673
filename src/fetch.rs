//! Outbound HTTPS, for the two places a provider asks hookgate to fetch something: AWS SNS
//! signing certificates (by URL, pinned to AWS hosts, cached) and SNS subscription confirmation.
//! HTTPS only, bounded in time and size, with the webpki root store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::providers::key::{Key, rsa_from_certificate};

/// Longest wait for a whole response.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest accepted response body (a certificate is a few KiB).
const MAX_BODY: usize = 64 * 1024;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Only `https://` URLs are fetched.
    #[error("refusing a non-https URL")]
    NotHttps,
    /// The request failed or timed out.
    #[error("request failed: {0}")]
    Request(String),
    /// A non-2xx answer.
    #[error("status {0}")]
    Status(http::StatusCode),
    /// The body is not a usable certificate.
    #[error("not a PEM certificate with an RSA key")]
    NotACertificate,
}

/// A failed certificate download is not retried for this long: the URL comes from unverified
/// requests, so each one must not cost an outbound connection.
const FAILURE_TTL: Duration = Duration::from_secs(60);
/// Certificates (and failures) remembered at most.
const CACHE_ENTRIES: usize = 64;

/// URL → when it was fetched, and the key or the failure.
type CertificateCache = HashMap<String, (Instant, Result<Key, String>)>;

/// An HTTPS client with a certificate cache.
pub struct Fetcher {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    certificates: Mutex<CertificateCache>,
    /// One download at a time: concurrent requests naming the same new URL wait for the first.
    downloading: tokio::sync::Mutex<()>,
}

impl Fetcher {
    /// A client trusting the webpki roots.
    pub fn new() -> Arc<Self> {
        let connector =
            hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots().https_only().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Arc::new(Self { client, certificates: Mutex::new(HashMap::new()), downloading: tokio::sync::Mutex::new(()) })
    }

    /// GETs `url` (https only) and returns its body, bounded in time and size.
    pub async fn get(&self, url: &str) -> Result<Bytes, FetchError> {
        if !url.starts_with("https://") {
            return Err(FetchError::NotHttps);
        }
        let uri: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| FetchError::Request(e.to_string()))?;
        let request = async {
            let response = self.client.get(uri).await.map_err(|e| FetchError::Request(e.to_string()))?;
            if !response.status().is_success() {
                return Err(FetchError::Status(response.status()));
            }
            Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .map_err(|e| FetchError::Request(e.to_string()))
        };
        tokio::time::timeout(TIMEOUT, request).await.map_err(|_| FetchError::Request("timed out".into()))?
    }

    /// The RSA key of the certificate at `url`, from the cache when fresher than `ttl`; a recent
    /// failure is answered from the cache too.
    pub async fn certificate(&self, url: &str, ttl: Duration) -> Result<Key, FetchError> {
        if let Some(cached) = self.cached(url, ttl) {
            return cached;
        }
        let _one_at_a_time = self.downloading.lock().await;
        if let Some(cached) = self.cached(url, ttl) {
            return cached;
        }
        let result = match self.get(url).await {
            Ok(pem) => rsa_from_certificate(&pem).ok_or(FetchError::NotACertificate),
            Err(e) => Err(e),
        };
        let mut cache = self.lock();
        if cache.len() >= CACHE_ENTRIES
            && let Some(oldest) = cache.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| k.clone())
        {
            cache.remove(&oldest);
        }
        let stored = result.as_ref().map(Key::clone).map_err(ToString::to_string);
        cache.insert(url.to_owned(), (Instant::now(), stored));
        result
    }

    fn cached(&self, url: &str, ttl: Duration) -> Option<Result<Key, FetchError>> {
        let cache = self.lock();
        let (at, entry) = cache.get(url)?;
        match entry {
            Ok(key) if at.elapsed() < ttl => Some(Ok(key.clone())),
            Err(e) if at.elapsed() < FAILURE_TTL => Some(Err(FetchError::Request(format!("{e} (cached)")))),
            _ => None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CertificateCache> {
        self.certificates.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_https_is_fetched() {
        let fetcher = Fetcher::new();
        assert!(matches!(fetcher.get("http://127.0.0.1:1/cert.pem").await, Err(FetchError::NotHttps)));
        assert!(matches!(fetcher.certificate("file:///etc/passwd", TIMEOUT).await, Err(FetchError::NotHttps)));
    }

    #[tokio::test]
    async fn unreachable_hosts_fail_within_the_timeout_and_the_failure_is_remembered() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let fetcher = Fetcher::new();
        let url = format!("https://127.0.0.1:{port}/cert.pem");
        let result = fetcher.get(&url).await;
        assert!(matches!(result, Err(FetchError::Request(_))), "{result:?}");
        let first = fetcher.certificate(&url, TIMEOUT).await;
        assert!(matches!(&first, Err(FetchError::Request(m)) if !m.contains("cached")), "{first:?}");
        let second = fetcher.certificate(&url, TIMEOUT).await;
        assert!(matches!(&second, Err(FetchError::Request(m)) if m.ends_with("(cached)")), "{second:?}");
    }
}
