//! The on-disk record: `[u32 length][u32 CRC-32 of payload][payload]`, little-endian. The payload
//! is `[u16 metadata length][metadata JSON][body]`, so the body is stored byte for byte.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::sink::{Message, QuarantineReason};

/// Bytes before the payload.
pub const HEADER: usize = 8;
/// Largest payload accepted when reading; a larger length is corruption.
pub const MAX_PAYLOAD: usize = 64 << 20;

#[derive(Serialize, Deserialize)]
struct Meta {
    #[serde(rename = "i")]
    id: String,
    #[serde(rename = "t")]
    event_type: String,
    #[serde(rename = "s")]
    source: String,
    #[serde(rename = "p")]
    provider: String,
    #[serde(rename = "k")]
    routing_key: String,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(rename = "r")]
    received_ms: u64,
    #[serde(rename = "tp", default, skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none")]
    quarantine: Option<QuarantineReason>,
}

/// Encodes a message as one record, header included; `None` when it cannot be read back (metadata
/// over 64 KiB, payload over [`MAX_PAYLOAD`]), so it is refused rather than stored unreadable.
pub fn encode(message: &Message) -> Option<Vec<u8>> {
    let meta = Meta {
        id: message.id.clone(),
        event_type: message.event_type.clone(),
        source: message.source.to_string(),
        provider: message.provider.clone(),
        routing_key: message.routing_key.clone(),
        content_type: message.content_type.clone(),
        received_ms: message.received_at.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64,
        traceparent: message.traceparent.clone(),
        quarantine: message.quarantine.clone(),
    };
    let meta = serde_json::to_vec(&meta).ok()?;
    let meta_len = u16::try_from(meta.len()).ok()?;
    let payload_len = 2 + meta.len() + message.body.len();
    if payload_len > MAX_PAYLOAD {
        return None;
    }
    let mut record = Vec::with_capacity(HEADER + payload_len);
    record.extend_from_slice(&(payload_len as u32).to_le_bytes());
    record.extend_from_slice(&[0; 4]);
    record.extend_from_slice(&meta_len.to_le_bytes());
    record.extend_from_slice(&meta);
    record.extend_from_slice(&message.body);
    let crc = crc32fast::hash(&record[HEADER..]);
    record[4..8].copy_from_slice(&crc.to_le_bytes());
    Some(record)
}

/// What a record header says.
pub struct Header {
    /// Payload length.
    pub len: usize,
    /// Expected CRC-32 of the payload.
    pub crc: u32,
}

/// Parses a record header; `None` if the length is implausible (corruption).
pub fn header(bytes: &[u8; HEADER]) -> Option<Header> {
    let len = u32::from_le_bytes(bytes[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes[4..].try_into().ok()?);
    (2..=MAX_PAYLOAD).contains(&len).then_some(Header { len, crc })
}

/// Decodes a payload whose checksum was verified.
pub fn decode(payload: &[u8]) -> Option<Message> {
    let meta_len = u16::from_le_bytes(payload.get(..2)?.try_into().ok()?) as usize;
    let meta: Meta = serde_json::from_slice(payload.get(2..2 + meta_len)?).ok()?;
    Some(Message {
        routing_key: meta.routing_key,
        body: Bytes::copy_from_slice(&payload[2 + meta_len..]),
        id: meta.id,
        event_type: meta.event_type,
        source: Arc::from(meta.source),
        provider: meta.provider,
        content_type: meta.content_type,
        received_at: UNIX_EPOCH + Duration::from_millis(meta.received_ms),
        traceparent: meta.traceparent,
        quarantine: meta.quarantine,
    })
}

/// Whether `payload` matches its checksum.
pub fn checksum_ok(payload: &[u8], crc: u32) -> bool {
    crc32fast::hash(payload) == crc
}

/// The receive time from a decoded message, for age metrics.
pub fn age(message: &Message) -> Duration {
    SystemTime::now().duration_since(message.received_at).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn message(id: &str, body: &'static [u8]) -> Message {
        Message {
            routing_key: "src.push".into(),
            body: Bytes::from_static(body),
            id: id.into(),
            event_type: "push".into(),
            source: Arc::from("src"),
            provider: "github".into(),
            content_type: Some("application/json".into()),
            received_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            traceparent: None,
            quarantine: None,
        }
    }

    #[test]
    fn records_round_trip_byte_for_byte() {
        let original = message("d-1", b"{\"a\":\"\\u00e9\"}\n");
        let record = encode(&original).unwrap();
        let head = header(record[..HEADER].try_into().unwrap()).unwrap();
        assert_eq!(head.len, record.len() - HEADER);
        assert!(checksum_ok(&record[HEADER..], head.crc));
        let decoded = decode(&record[HEADER..]).unwrap();
        assert_eq!((decoded.id.as_str(), &decoded.body[..]), ("d-1", &original.body[..]));
        assert_eq!(decoded.received_at, original.received_at);
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let mut record = encode(&message("d-1", b"{}")).unwrap();
        let last = record.len() - 1;
        record[last] ^= 0x10;
        let head = header(record[..HEADER].try_into().unwrap()).unwrap();
        assert!(!checksum_ok(&record[HEADER..], head.crc));
    }
}
