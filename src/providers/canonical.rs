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
        matches!(self, Canonical::Twilio | Canonical::HubspotV3 | Canonical::Contentful)
    }
}

/// Headers a canonical form reads.
pub fn required_headers(kind: &Option<Canonical>) -> Vec<HeaderName> {
    match kind {
        Some(Canonical::HubspotV3) => vec![HeaderName::from_static(HUBSPOT_TIMESTAMP)],
        Some(Canonical::Contentful) => {
            vec![HeaderName::from_static(CONTENTFUL_SIGNED_HEADERS), HeaderName::from_static(CONTENTFUL_TIMESTAMP)]
        }
        _ => Vec::new(),
    }
}

/// Every content the provider may have signed for this request.
pub fn build(kind: Canonical, req: &RequestView<'_>) -> Result<Vec<Vec<u8>>, VerifyError> {
    match kind {
        Canonical::Twilio => twilio(req),
        Canonical::HubspotV3 => hubspot_v3(req),
        Canonical::Contentful => contentful(req),
        Canonical::AwsSns => aws_sns(req),
    }
}

/// Twilio (https://www.twilio.com/docs/usage/security#validating-requests): the full URL the
/// webhook was configured with (query included); for form bodies, followed by each parameter
/// name in sorted order with each of its distinct values in sorted order. Other bodies are
/// signed over the URL alone, which then carries `bodySHA256` = hex SHA-256 of the body. As in
/// Twilio's SDKs (twilio-python `RequestValidator`), the URL is tried without its port and with
/// one (its own, else the scheme's default), since Twilio may sign either.
fn twilio(req: &RequestView<'_>) -> Result<Vec<Vec<u8>>, VerifyError> {
    let url = req.signed_url().ok_or(VerifyError::SignatureMissing)?;
    let variants = port_variants(&url);
    if let Some(expected) = req.query_param("bodySHA256") {
        let actual = hex::encode(Sha256::digest(req.body));
        if !bool::from(subtle::ConstantTimeEq::ct_eq(actual.as_bytes(), expected.as_bytes())) {
            return Err(VerifyError::SignatureInvalid);
        }
    }
    let is_form = req
        .header(http::header::CONTENT_TYPE.as_str())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    let suffix = if is_form { twilio_params(req.body) } else { String::new() };
    Ok(variants.into_iter().map(|u| format!("{u}{suffix}").into_bytes()).collect())
}

/// Form parameters as Twilio signs them: names sorted, each name's distinct values sorted.
fn twilio_params(body: &[u8]) -> String {
    let mut params: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for (name, value) in form_urlencoded::parse(body) {
        params.entry(name.into_owned()).or_default().insert(value.into_owned());
    }
    params.iter().flat_map(|(name, values)| values.iter().map(move |v| format!("{name}{v}"))).collect()
}

/// The URL without an explicit port, and with one (its own, else the scheme's default).
fn port_variants(url: &str) -> Vec<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return vec![url.to_owned()];
    };
    let default_port = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return vec![url.to_owned()],
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => (host, port),
        _ => (hostport, default_port),
    };
    let without = format!("{scheme}://{userinfo}{host}{path}");
    let with = format!("{scheme}://{userinfo}{host}:{port}{path}");
    if url == with { vec![with, without] } else { vec![without, with] }
}

const HUBSPOT_TIMESTAMP: &str = "x-hubspot-request-timestamp";

/// HubSpot v3 (https://developers.hubspot.com/docs/api/webhooks/validating-requests):
/// `{method}{uri}{body}{X-HubSpot-Request-Timestamp}` where `uri` is the full URL with a fixed set
/// of percent-encoded characters decoded.
fn hubspot_v3(req: &RequestView<'_>) -> Result<Vec<Vec<u8>>, VerifyError> {
    let url = req.signed_url().ok_or(VerifyError::SignatureMissing)?;
    let timestamp = req.header(HUBSPOT_TIMESTAMP).ok_or(VerifyError::SignatureMissing)?;
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

/// AWS SNS (https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html):
/// `Key\nValue\n` for each signed field present, in a fixed order per message `Type`, with the
/// JSON-decoded values. Other fields (`UnsubscribeURL`, `SigningCertURL`, ...) are not signed.
fn aws_sns(req: &RequestView<'_>) -> Result<Vec<Vec<u8>>, VerifyError> {
    const NOTIFICATION: &[&str] = &["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"];
    const CONFIRMATION: &[&str] = &["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"];
    let json = req.json.ok_or(VerifyError::SignatureMissing)?;
    let keys = match json["Type"].as_str() {
        Some("Notification") => NOTIFICATION,
        Some("SubscriptionConfirmation" | "UnsubscribeConfirmation") => CONFIRMATION,
        _ => return Err(VerifyError::SignatureInvalid),
    };
    let mut content = String::new();
    for key in keys {
        if let Some(value) = json[*key].as_str() {
            content.push_str(key);
            content.push('\n');
            content.push_str(value);
            content.push('\n');
        }
    }
    Ok(vec![content.into_bytes()])
}

const CONTENTFUL_SIGNED_HEADERS: &str = "x-contentful-signed-headers";
const CONTENTFUL_TIMESTAMP: &str = "x-contentful-timestamp";

/// Contentful (https://www.contentful.com/developers/docs/webhooks/request-verification/, which
/// defers to `verifyRequest` of @contentful/node-apps-toolkit, src/requests/*.ts):
/// `METHOD\nPATH\nHEADERS\nBODY`. PATH is the path and query the provider called, normalised as
/// the toolkit does (see [`contentful_path`]). HEADERS are the headers named in
/// `x-contentful-signed-headers` that the request carries, values trimmed, with the timestamp as
/// an integer and the signed-headers list recomputed sorted; `name:value` sorted by name, joined
/// with `;`.
fn contentful(req: &RequestView<'_>) -> Result<Vec<Vec<u8>>, VerifyError> {
    let url = req.signed_url().ok_or(VerifyError::SignatureMissing)?;
    let path_and_query = url.split_once("://").map_or(&*url, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
    let listed = req.header(CONTENTFUL_SIGNED_HEADERS).ok_or(VerifyError::SignatureMissing)?;
    let timestamp = req.header(CONTENTFUL_TIMESTAMP).ok_or(VerifyError::SignatureMissing)?;
    let digits: String = timestamp.trim().chars().take_while(char::is_ascii_digit).collect();
    let mut entries: std::collections::BTreeMap<String, String> = listed
        .split(',')
        .filter(|name| *name == name.to_ascii_lowercase())
        .filter_map(|name| Some((name.to_owned(), req.header(name)?.trim().to_owned())))
        .collect();
    entries.insert(CONTENTFUL_TIMESTAMP.to_owned(), digits);
    entries.insert(CONTENTFUL_SIGNED_HEADERS.to_owned(), String::new());
    let names: Vec<&str> = entries.keys().map(String::as_str).collect();
    let signed_list = names.join(",");
    entries.insert(CONTENTFUL_SIGNED_HEADERS.to_owned(), signed_list);
    let headers: Vec<String> = entries.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    let mut content =
        format!("{}\n{}\n{}\n", req.method, contentful_path(path_and_query), headers.join(";")).into_bytes();
    content.extend_from_slice(req.body);
    Ok(vec![content])
}

/// `encodeURI(P)`, or `encodeURI(P + "?" + querystring.escape(Q))` when there is a query: the
/// toolkit escapes the query and then encodes the whole, so the query ends up encoded twice.
fn contentful_path(path_and_query: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    // encodeURIComponent keeps A-Z a-z 0-9 - _ . ! ~ * ' ( ).
    const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'!')
        .remove(b'~')
        .remove(b'*')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')');
    // encodeURI also keeps ; , / ? : @ & = + $ #.
    const URI: &AsciiSet = &COMPONENT
        .remove(b';')
        .remove(b',')
        .remove(b'/')
        .remove(b'?')
        .remove(b':')
        .remove(b'@')
        .remove(b'&')
        .remove(b'=')
        .remove(b'+')
        .remove(b'$')
        .remove(b'#');
    let mut parts = path_and_query.split('?');
    let path = parts.next().unwrap_or_default();
    match parts.next().filter(|q| !q.is_empty()) {
        None => utf8_percent_encode(path, URI).to_string(),
        Some(query) => {
            let escaped = utf8_percent_encode(query, COMPONENT).to_string();
            utf8_percent_encode(&format!("{path}?{escaped}"), URI).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_variants_try_with_and_without_the_port() {
        let cases: [(&str, [&str; 2]); 4] = [
            ("https://a.example/x?y=1", ["https://a.example/x?y=1", "https://a.example:443/x?y=1"]),
            ("https://a.example:443/x", ["https://a.example:443/x", "https://a.example/x"]),
            ("http://u:p@a.example/x", ["http://u:p@a.example/x", "http://u:p@a.example:80/x"]),
            ("https://a.example:8443/x", ["https://a.example:8443/x", "https://a.example/x"]),
        ];
        for (url, variants) in cases {
            assert_eq!(port_variants(url), variants, "{url}");
        }
    }

    #[test]
    fn twilio_params_sort_names_and_distinct_values() {
        assert_eq!(twilio_params(b"To=%2B1&From=a&To=%2B0&To=%2B1"), "FromaTo+0To+1");
    }

    #[test]
    fn contentful_paths_encode_the_query_twice() {
        assert_eq!(contentful_path("/hooks/c"), "/hooks/c");
        assert_eq!(contentful_path("/hooks/c?space=a&note=a%20b"), "/hooks/c?space%253Da%2526note%253Da%252520b");
    }

    #[test]
    fn hubspot_decodes_only_its_listed_escapes() {
        assert_eq!(hubspot_decode("https://x.example/a%3Fb%2Cc%20d%3a"), "https://x.example/a?b,c%20d:");
    }
}
