//! Named canonicalisers: signed content that no flat template can describe. Each returns every
//! candidate string the provider may have signed (Twilio's port variants), and any of them
//! verifying is enough.

use http::HeaderName;
use sha2::{Digest, Sha256};

use super::VerifyError;
use super::request::RequestView;
use super::spec::Canonical;

impl Canonical {
    /// Whether this canonical form includes the source's public URL.
    pub fn needs_url(&self) -> bool {
        matches!(
            self,
            Canonical::Twilio | Canonical::HubspotV3 | Canonical::Contentful
        )
    }

    /// Whether this canonicaliser is implemented.
    pub fn is_supported(&self) -> bool {
        matches!(self, Canonical::Twilio | Canonical::HubspotV3)
    }
}

/// Headers a canonical form reads.
pub fn required_headers(kind: &Option<Canonical>) -> Vec<HeaderName> {
    match kind {
        Some(Canonical::HubspotV3) => vec![HeaderName::from_static(HUBSPOT_TIMESTAMP)],
        _ => Vec::new(),
    }
}

/// Every content the provider may have signed for this request.
pub fn build(kind: Canonical, req: &RequestView<'_>) -> Result<Vec<Vec<u8>>, VerifyError> {
    match kind {
        Canonical::Twilio => twilio(req),
        Canonical::HubspotV3 => hubspot_v3(req),
        Canonical::Contentful | Canonical::AwsSns => Err(VerifyError::SignatureInvalid),
    }
}

/// Twilio (https://www.twilio.com/docs/usage/security#validating-requests): the full URL the
/// webhook was configured with (query included); for form bodies, followed by every POST
/// parameter name and value, sorted by name (then value). JSON bodies are signed over the URL
/// alone, which carries `bodySHA256` = hex SHA-256 of the body. Twilio's SDKs also accept the
/// URL with the default port added or removed, since Twilio may sign either.
fn twilio(req: &RequestView<'_>) -> Result<Vec<Vec<u8>>, VerifyError> {
    let url = req.signed_url().ok_or(VerifyError::SignatureMissing)?;
    let variants = port_variants(&url);
    if let Some(expected) = req.query_param("bodySHA256") {
        let actual = hex::encode(Sha256::digest(req.body));
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            actual.as_bytes(),
            expected.as_bytes(),
        )) {
            return Err(VerifyError::SignatureInvalid);
        }
        return Ok(variants.into_iter().map(String::into_bytes).collect());
    }
    let mut params: Vec<(String, String)> = form_urlencoded::parse(req.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    params.sort();
    let suffix: String = params
        .iter()
        .flat_map(|(k, v)| [k.as_str(), v.as_str()])
        .collect();
    Ok(variants
        .into_iter()
        .map(|u| format!("{u}{suffix}").into_bytes())
        .collect())
}

/// The URL as given, plus the same URL with its scheme's default port toggled.
fn port_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return variants;
    };
    let default_port = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return variants,
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    let toggled = match hostport.rsplit_once(':') {
        Some((host, port)) if port == default_port => host.to_owned(),
        // Another explicit port: Twilio signs it as configured, no variant.
        Some((_, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            return variants;
        }
        _ => format!("{hostport}:{default_port}"),
    };
    variants.push(format!("{scheme}://{userinfo}{toggled}{path}"));
    variants
}

const HUBSPOT_TIMESTAMP: &str = "x-hubspot-request-timestamp";

/// HubSpot v3 (https://developers.hubspot.com/docs/api/webhooks/validating-requests):
/// `{method}{uri}{body}{X-HubSpot-Request-Timestamp}` where `uri` is the full URL with a fixed set
/// of percent-encoded characters decoded.
fn hubspot_v3(req: &RequestView<'_>) -> Result<Vec<Vec<u8>>, VerifyError> {
    let url = req.signed_url().ok_or(VerifyError::SignatureMissing)?;
    let timestamp = req
        .header(HUBSPOT_TIMESTAMP)
        .ok_or(VerifyError::SignatureMissing)?;
    let mut content = Vec::with_capacity(url.len() + req.body.len() + 32);
    content.extend_from_slice(req.method.as_str().as_bytes());
    content.extend_from_slice(hubspot_decode(&url).as_bytes());
    content.extend_from_slice(req.body);
    content.extend_from_slice(timestamp.as_bytes());
    Ok(vec![content])
}

/// Decodes exactly the escapes HubSpot lists; everything else stays encoded.
fn hubspot_decode(uri: &str) -> String {
    const DECODED: [(&str, &str); 12] = [
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ];
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let escape = rest.get(pos..pos + 3).unwrap_or(&rest[pos..]);
        match DECODED.iter().find(|(e, _)| e.eq_ignore_ascii_case(escape)) {
            Some((_, plain)) => {
                out.push_str(plain);
                rest = &rest[pos + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[pos + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_variants_toggle_the_default_port() {
        assert_eq!(
            port_variants("https://a.example/x?y=1"),
            ["https://a.example/x?y=1", "https://a.example:443/x?y=1"]
        );
        assert_eq!(
            port_variants("https://a.example:443/x"),
            ["https://a.example:443/x", "https://a.example/x"]
        );
        assert_eq!(
            port_variants("http://u:p@a.example/x"),
            ["http://u:p@a.example/x", "http://u:p@a.example:80/x"]
        );
        assert_eq!(
            port_variants("https://a.example:8443/x"),
            ["https://a.example:8443/x"]
        );
    }

    #[test]
    fn hubspot_decodes_only_its_listed_escapes() {
        assert_eq!(
            hubspot_decode("https://x.example/a%3Fb%2Cc%20d%3a"),
            "https://x.example/a?b,c%20d:"
        );
    }
}
