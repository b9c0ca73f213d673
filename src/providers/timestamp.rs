//! Signed timestamps: where they are, their unit, and the replay window around now.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderName;

use super::VerifyError;
use super::request::RequestView;
use super::spec::{TimestampSpec, TimestampUnit};
use super::value::{header_name, json_pointer, scalar_text};

/// A compiled timestamp rule.
#[derive(Debug, Clone)]
pub struct Timestamp {
    source: Source,
    unit: TimestampUnit,
    /// The provider's default window.
    pub tolerance: Duration,
}

#[derive(Debug, Clone)]
enum Source {
    Header(HeaderName),
    Sig(String),
    Json(String),
}

impl Timestamp {
    /// Compiles the spec; `sig_params` says whether `sig.NAME` exists for this signature.
    pub fn from_spec(spec: &TimestampSpec, sig_params: bool) -> Result<Self, String> {
        let source = if let Some(name) = spec.from.strip_prefix("header.") {
            Source::Header(header_name(name)?)
        } else if let Some(name) = spec.from.strip_prefix("sig.") {
            if !sig_params {
                return Err(format!("`{}` needs a `format: kv` signature", spec.from));
            }
            Source::Sig(name.to_owned())
        } else if let Some(pointer) = spec.from.strip_prefix("json:") {
            Source::Json(json_pointer(pointer)?.to_owned())
        } else {
            return Err(format!(
                "`{}` is not a timestamp source: write header.NAME, sig.NAME or json:/pointer",
                spec.from
            ));
        };
        Ok(Self { source, unit: spec.unit, tolerance: spec.tolerance.0 })
    }

    /// The header holding the timestamp, if it is one.
    pub fn header(&self) -> Option<&HeaderName> {
        match &self.source {
            Source::Header(h) => Some(h),
            _ => None,
        }
    }

    /// Where a sender puts the timestamp: `Ok(Some(header))`, `Ok(None)` for a signature
    /// parameter (named by [`Timestamp::sig_param`]), `Err(pointer)` inside the body.
    pub fn target(&self) -> Result<Option<&HeaderName>, &str> {
        match &self.source {
            Source::Header(h) => Ok(Some(h)),
            Source::Sig(_) => Ok(None),
            Source::Json(p) => Err(p),
        }
    }

    /// The signature parameter holding the timestamp, if that is where it is.
    pub fn sig_param(&self) -> Option<&str> {
        match &self.source {
            Source::Sig(name) => Some(name),
            _ => None,
        }
    }

    /// `now` written in this timestamp's unit.
    pub fn render(&self, now: SystemTime) -> String {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        match self.unit {
            TimestampUnit::S => since.as_secs().to_string(),
            TimestampUnit::Ms => since.as_millis().to_string(),
            TimestampUnit::Rfc3339 => time::OffsetDateTime::from(now)
                .replace_nanosecond(0)
                .ok()
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                .unwrap_or_default(),
        }
    }

    /// Whether the timestamp is read from the JSON body.
    pub fn needs_json(&self) -> bool {
        matches!(self.source, Source::Json(_))
    }

    /// Checks that the signed time is within `tolerance` of `now`, in both directions.
    pub fn check(
        &self,
        req: &RequestView<'_>,
        params: &[(String, String)],
        tolerance: Duration,
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let text = match &self.source {
            Source::Header(name) => req.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned),
            Source::Sig(name) => params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            Source::Json(pointer) => {
                req.json.and_then(|j| j.pointer(pointer)).and_then(scalar_text).map(|c| c.into_owned())
            }
        }
        .ok_or(VerifyError::SignatureMissing)?;
        let signed_at = parse(text.trim(), self.unit).ok_or(VerifyError::SignatureInvalid)?;
        within(signed_at, now, tolerance)
    }
}

/// Whether `signed_at` is within `tolerance` of `now`, in either direction.
pub fn within(signed_at: SystemTime, now: SystemTime, tolerance: Duration) -> Result<(), VerifyError> {
    let distance = now.duration_since(signed_at).unwrap_or_else(|e| e.duration());
    if distance > tolerance { Err(VerifyError::TimestampOutOfTolerance) } else { Ok(()) }
}

/// The instant a timestamp denotes; `None` if it does not parse or is out of range.
pub fn parse(text: &str, unit: TimestampUnit) -> Option<SystemTime> {
    let since_epoch = match unit {
        TimestampUnit::S => Duration::from_secs(text.parse().ok()?),
        TimestampUnit::Ms => Duration::from_millis(text.parse().ok()?),
        TimestampUnit::Rfc3339 => {
            let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
            return Some(SystemTime::from(t));
        }
    };
    UNIX_EPOCH.checked_add(since_epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        let t = UNIX_EPOCH + Duration::from_secs(1_614_265_330);
        assert_eq!(parse("1614265330", TimestampUnit::S), Some(t));
        assert_eq!(parse("1614265330000", TimestampUnit::Ms), Some(t));
        assert_eq!(parse("2021-02-25T15:02:10Z", TimestampUnit::Rfc3339), Some(t));
        assert_eq!(parse("2021-02-25T16:02:10.000+01:00", TimestampUnit::Rfc3339), Some(t));
        assert_eq!(parse("soon", TimestampUnit::S), None);
        assert_eq!(parse("99999999999999999999", TimestampUnit::S), None);
    }
}
