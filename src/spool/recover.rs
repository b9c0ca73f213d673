//! Opening a spool after a stop or a crash: find the delivered position, validate every record
//! after it, and cut off a torn or corrupt tail — kept aside for inspection and reported.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::{Position, record, segment_path};

/// What opening found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// The next record to deliver.
    pub head: Position,
    /// Remaining segments and their valid sizes.
    pub segments: Vec<(u64, u64)>,
    /// Undelivered records found.
    pub events: u64,
    /// Their size in bytes.
    pub bytes: u64,
    /// Tails cut off.
    pub cuts: Vec<Cut>,
}

/// A tail that was cut off a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// Segment id.
    pub segment: u64,
    /// Where the valid data ends.
    pub offset: u64,
    /// Bytes removed.
    pub bytes: u64,
    /// Where they were kept.
    pub kept_as: PathBuf,
    /// `truncated record` or `checksum mismatch`.
    pub reason: &'static str,
}

/// Scans `dir` and repairs it; see the module doc.
pub fn recover(dir: &Path) -> std::io::Result<Recovery> {
    let mut head = read_head(dir).unwrap_or_default();
    let ids = segment_ids(dir)?;
    let mut recovery = Recovery::default();
    for id in &ids {
        if *id < head.segment {
            // Delivered before the crash; deletion was interrupted.
            std::fs::remove_file(segment_path(dir, *id))?;
        }
    }
    let live: Vec<u64> = ids.into_iter().filter(|id| *id >= head.segment).collect();
    if let Some(first) = live.first()
        && *first > head.segment
    {
        head = Position { segment: *first, offset: 0 };
    }
    for id in live {
        let start = if id == head.segment { head.offset } else { 0 };
        let scan = scan(dir, id, start)?;
        if id == head.segment && head.offset > scan.valid_end {
            head.offset = scan.valid_end;
        }
        recovery.events += scan.events;
        recovery.bytes += scan.bytes;
        recovery.segments.push((id, scan.valid_end));
        if let Some(cut) = scan.cut {
            tracing::warn!(
                segment = id,
                offset = cut.offset,
                bytes = cut.bytes,
                kept_as = %cut.kept_as.display(),
                reason = cut.reason,
                "Spool segment had a damaged tail: cut off and kept aside."
            );
            crate::telemetry::metrics::spool_cut(cut.bytes);
            recovery.cuts.push(cut);
        }
    }
    recovery.head = head;
    Ok(recovery)
}

struct Scan {
    valid_end: u64,
    events: u64,
    bytes: u64,
    cut: Option<Cut>,
}

/// Validates a segment record by record; counts those at or after `count_from`.
fn scan(dir: &Path, id: u64, count_from: u64) -> std::io::Result<Scan> {
    let path = segment_path(dir, id);
    let mut data = Vec::new();
    File::open(&path)?.read_to_end(&mut data)?;
    let (mut offset, mut events, mut bytes) = (0usize, 0u64, 0u64);
    let reason = loop {
        if offset == data.len() {
            break None;
        }
        let Some(head) = data.get(offset..offset + record::HEADER) else { break Some("truncated record") };
        let Some(header) = record::header(head.try_into().expect("8 bytes")) else { break Some("bad record length") };
        let Some(payload) = data.get(offset + record::HEADER..offset + record::HEADER + header.len) else {
            break Some("truncated record");
        };
        if !record::checksum_ok(payload, header.crc) {
            break Some("checksum mismatch");
        }
        let size = record::HEADER + header.len;
        if offset as u64 >= count_from {
            events += 1;
            bytes += size as u64;
        }
        offset += size;
    };
    let cut = match reason {
        None => None,
        Some(reason) => {
            let kept_as = dir.join(format!("{id:016}.seg.corrupt-{offset}"));
            std::fs::write(&kept_as, &data[offset..])?;
            let file = OpenOptions::new().write(true).open(&path)?;
            file.set_len(offset as u64)?;
            file.sync_all()?;
            Some(Cut { segment: id, offset: offset as u64, bytes: (data.len() - offset) as u64, kept_as, reason })
        }
    };
    Ok(Scan { valid_end: offset as u64, events, bytes, cut })
}

/// Segment ids in `dir`, ascending.
pub fn segment_ids(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

fn read_head(dir: &Path) -> Option<Position> {
    let text = std::fs::read_to_string(dir.join("head")).ok()?;
    let (segment, offset) = text.trim().split_once(' ')?;
    Some(Position { segment: segment.parse().ok()?, offset: offset.parse().ok()? })
}

/// Records the delivered position: written aside, then renamed over, so it is never torn.
pub fn write_head(dir: &Path, head: Position, fsync: bool) -> std::io::Result<()> {
    let temporary = dir.join("head.tmp");
    let mut file = File::create(&temporary)?;
    writeln!(file, "{} {}", head.segment, head.offset)?;
    if fsync {
        file.sync_all()?;
    }
    std::fs::rename(&temporary, dir.join("head"))
}

/// Reads undelivered records without changing anything (for `hookgate spool stats|tail`, which
/// may run beside a live gateway): from `from`, or the delivered position, up to the first
/// incomplete or damaged record.
pub fn read_from(dir: &Path, from: Option<Position>) -> std::io::Result<Vec<(Position, crate::sink::Message)>> {
    let head = from.or_else(|| read_head(dir)).unwrap_or_default();
    let mut out = Vec::new();
    for id in segment_ids(dir)?.into_iter().filter(|id| *id >= head.segment) {
        let mut data = Vec::new();
        File::open(segment_path(dir, id))?.read_to_end(&mut data)?;
        let mut offset = if id == head.segment { head.offset as usize } else { 0 };
        while let Some(head_bytes) = data.get(offset..offset + record::HEADER) {
            let Some(header) = record::header(head_bytes.try_into().expect("8 bytes")) else { return Ok(out) };
            let Some(payload) = data.get(offset + record::HEADER..offset + record::HEADER + header.len) else {
                return Ok(out);
            };
            if !record::checksum_ok(payload, header.crc) {
                return Ok(out);
            }
            offset += record::HEADER + header.len;
            if let Some(message) = record::decode(payload) {
                out.push((Position { segment: id, offset: offset as u64 }, message));
            }
        }
    }
    Ok(out)
}
