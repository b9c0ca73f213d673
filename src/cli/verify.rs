//! `hookgate verify`: checks a captured request against a provider and secrets, and says which
//! step failed — signature location, parsing, the signed content, the comparison under each
//! secret, the timestamp. For the command line only: HTTP clients are never told why.

use std::time::{Duration, SystemTime};

use super::request::OwnedRequest;
use crate::config::secret::Secret;
use crate::providers::signature::Location;
use crate::providers::signed::{Algorithm, SignedScheme};
use crate::providers::{Provider, Scheme, VerifyContext};

/// The outcome and the steps that led to it, one line each.
pub struct Report {
    /// Whether the request verifies.
    pub verified: bool,
    /// Human-readable steps.
    pub steps: Vec<String>,
}

/// Verifies `request` with `secrets` at `now`, explaining each step.
pub fn verify(
    provider: &Provider,
    secrets: &[String],
    request: &OwnedRequest,
    now: SystemTime,
    tolerance: Option<Duration>,
) -> Result<Report, String> {
    let secrets: Vec<Secret> = secrets.iter().map(Secret::new).collect();
    let keys = provider.decode_secrets(&secrets).map_err(|errors| {
        errors.into_iter().map(|(i, e)| format!("secret #{}: {e}", i + 1)).collect::<Vec<_>>().join("; ")
    })?;
    let mut steps = Vec::new();
    let view = request.view(true);
    for (index, scheme) in provider.schemes().iter().enumerate() {
        let name = &provider.scheme_names()[index];
        steps.push(format!("scheme {} of {} ({name}):", index + 1, provider.schemes().len()));
        if let Scheme::Signed(signed) = scheme {
            explain_signed(signed, &secrets, &view, &mut steps);
        }
        if let Some(fetch) = matches!(scheme, Scheme::Signed(s) if s.key_fetch().is_some()).then_some(())
            && keys.for_scheme(index).is_empty()
        {
            let () = fetch;
            steps.push("  keys: none pinned; the gateway would download the certificate the request names".into());
        }
    }
    let ctx = VerifyContext { tolerance, token_header: None };
    let result = provider.verify(&request.view(provider.needs_json_to_verify()), &keys, ctx, now);
    steps.push(match result {
        Ok(()) => "result: verified".to_owned(),
        Err(e) => format!("result: {e}"),
    });
    Ok(Report { verified: result.is_ok(), steps })
}

fn explain_signed(
    scheme: &SignedScheme,
    secrets: &[Secret],
    view: &crate::providers::request::RequestView<'_>,
    steps: &mut Vec<String>,
) {
    let location = match scheme.signature().location() {
        Location::Header(h) => format!("header {h}"),
        Location::Json(p) => format!("body field {p}"),
        Location::Query(q) => format!("query parameter {q}"),
    };
    let signatures = match scheme.signature().parse(view) {
        Ok(s) => {
            steps.push(format!("  signature: {location}: {} well-formed signature(s)", s.candidates.len()));
            s
        }
        Err(e) => {
            steps.push(format!("  signature: {location}: {e}"));
            return;
        }
    };
    match scheme.content(view, &signatures.params, Some(b"")) {
        Ok(content) => steps.push(format!("  signed content ({} bytes): {}", content.len(), preview(&content))),
        Err(missing) => {
            steps.push(format!("  signed content: cannot be built, {missing} is missing"));
            return;
        }
    }
    if matches!(scheme.algorithm(), Algorithm::Hmac(_) | Algorithm::Hash(_)) {
        for (i, secret) in secrets.iter().enumerate() {
            let Ok(key) = scheme.decode_key(secret) else { continue };
            if let Some(expected) = scheme.sign(&key, view, &signatures.params) {
                let matched = signatures.candidates.contains(&expected);
                let rendered = scheme.signature().render(&expected, &signatures.params);
                steps.push(format!(
                    "  secret #{}: expects {rendered} — {}",
                    i + 1,
                    if matched { "matches" } else { "no match" }
                ));
            }
        }
    }
    if let Some(url) = scheme.key_url(view).err() {
        steps.push(format!("  key URL: {url} (not on the pinned host)"));
    }
}

/// The first bytes of signed content, escaped for a terminal.
fn preview(content: &[u8]) -> String {
    const SHOWN: usize = 160;
    let text: String =
        content.iter().take(SHOWN).flat_map(|b| std::ascii::escape_default(*b)).map(char::from).collect();
    if content.len() > SHOWN { format!("{text}…") } else { text }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn github() -> Provider {
        Provider::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("providers"), "github").unwrap()
    }

    fn docs_request(signature: &str) -> OwnedRequest {
        // GitHub docs example (tests/vectors/github.yaml).
        OwnedRequest::new("POST", None, &[format!("X-Hub-Signature-256: {signature}")], b"Hello, World!".to_vec())
            .unwrap()
    }

    #[test]
    fn says_which_secret_matches() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let req = docs_request("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
        let secrets = ["wrong".to_owned(), "It's a Secret to Everybody".to_owned()];
        let report = verify(&github(), &secrets, &req, now, None).unwrap();
        assert!(report.verified);
        let text = report.steps.join("\n");
        assert!(text.contains("secret #1: expects sha256="), "{text}");
        assert!(text.contains("no match"), "{text}");
        assert!(text.contains("secret #2: expects sha256=757107ea"), "{text}");
        assert!(text.contains("— matches"), "{text}");
        assert!(text.ends_with("result: verified"), "{text}");
    }

    #[test]
    fn says_when_the_signature_is_missing_or_malformed() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let missing = OwnedRequest::new("POST", None, &[], b"x".to_vec()).unwrap();
        let report = verify(&github(), &["s".into()], &missing, now, None).unwrap();
        assert!(!report.verified);
        assert!(report.steps.join("\n").contains("header x-hub-signature-256: signature missing"));
        let malformed = docs_request("md5=abc");
        let report = verify(&github(), &["s".into()], &malformed, now, None).unwrap();
        assert!(report.steps.join("\n").contains("signature invalid"));
    }
}
