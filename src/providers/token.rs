//! Shared-token schemes: a secret carried as is in a header, query parameter or body field
//! (GitLab, Okta, Microsoft Graph `clientState`, Figma `passcode`), and HTTP Basic credentials
//! (Postmark). Compared in constant time on SHA-256 digests, so neither content nor length leaks.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderName;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::VerifyError;
use super::key::Key;
use super::request::RequestView;
use super::signature::Location;
use super::spec::TokenSpec;

/// A compiled token scheme.
#[derive(Debug, Clone)]
pub struct TokenScheme {
    location: Location,
    prefix: String,
}

impl TokenScheme {
    /// Compiles the spec.
    pub fn from_spec(spec: &TokenSpec) -> Result<Self, (String, String)> {
        let location = Location::from_parts(spec.header.as_deref(), spec.json.as_deref(), spec.query.as_deref())
            .map_err(|e| ("verify".to_owned(), e))?;
        Ok(Self { location, prefix: spec.prefix.clone() })
    }

    /// The header carrying the token, unless `override_header` (a source's `token_header`) says
    /// otherwise.
    pub fn header(&self) -> Option<&HeaderName> {
        self.location.header()
    }

    /// The required prefix before the token.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether reading it needs the parsed JSON body.
    pub fn needs_json(&self) -> bool {
        self.location.needs_json()
    }

    /// Checks the token against every key.
    pub fn verify(
        &self,
        req: &RequestView<'_>,
        keys: &[Key],
        override_header: Option<&HeaderName>,
    ) -> Result<(), VerifyError> {
        let values = match override_header {
            Some(h) => Location::Header(h.clone()).values(req),
            None => self.location.values(req),
        };
        let value = values.first().ok_or(VerifyError::SignatureMissing)?;
        let token = value.strip_prefix(self.prefix.as_str()).ok_or(VerifyError::SignatureInvalid)?;
        if matches_any(token.as_bytes(), keys) { Ok(()) } else { Err(VerifyError::SignatureInvalid) }
    }
}

/// HTTP Basic: `Authorization: Basic base64(user:password)` against `user:password` secrets.
pub fn verify_basic(req: &RequestView<'_>, keys: &[Key]) -> Result<(), VerifyError> {
    let value = req.headers.get(AUTHORIZATION).ok_or(VerifyError::SignatureMissing)?;
    let value = value.to_str().map_err(|_| VerifyError::SignatureInvalid)?;
    let (scheme, encoded) = value.split_once(' ').ok_or(VerifyError::SignatureInvalid)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(VerifyError::SignatureInvalid);
    }
    let credentials = STANDARD.decode(encoded.trim()).map_err(|_| VerifyError::SignatureInvalid)?;
    if matches_any(&credentials, keys) { Ok(()) } else { Err(VerifyError::SignatureInvalid) }
}

/// Whether `presented` equals any key, compared as SHA-256 digests in constant time.
fn matches_any(presented: &[u8], keys: &[Key]) -> bool {
    let presented = Sha256::digest(presented);
    keys.iter().filter_map(Key::bytes).fold(false, |ok, key| ok | bool::from(Sha256::digest(key).ct_eq(&presented)))
}
