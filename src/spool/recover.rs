//! Opening a spool after a stop or a crash: find the delivered position, validate every record
//! after it, and cut off a torn or corrupt tail — kept aside for inspection and reported.

use std::fs::File;
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
    match live.first() {
        // The head's segment is gone (delivered, or removed by hand): start at the next one.
        Some(first) if *first > head.segment => head = Position { segment: *first, offset: 0 },
        None => head.offset = 0,
        _ => {}
    }
    for id in live {
        // Records before the head were read, checked and delivered: only what follows matters.
        let start = if id == head.segment { head.offset } else { 0 };
        let scan = scan(dir, id, start)?;
        if id == head.segment && head.offset > scan.valid_end {
            head.offset = scan.valid_end;
        }
        recovery.events += scan.events;
        recovery.bytes += scan.bytes;
        recovery.segments.push((id, scan.valid_end));
        for cut in scan.cuts {
            tracing::error!(
                segment = id,
                offset = cut.offset,
                bytes = cut.bytes,
                kept_as = %cut.kept_as.display(),
                reason = cut.reason,
                "Spool segment was damaged: the damaged bytes were cut out and kept aside."
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
    cuts: Vec<Cut>,
}

/// Why the record at `offset` of `data` is unusable, if it is.
fn damage(data: &[u8], offset: usize) -> Option<&'static str> {
    let Some(head) = data.get(offset..offset + record::HEADER) else { return Some("truncated record") };
    let Some(header) = record::header(head.try_into().expect("8 bytes")) else { return Some("bad record length") };
    match data.get(offset + record::HEADER..offset + record::HEADER + header.len) {
        None => Some("truncated record"),
        Some(payload) if !record::checksum_ok(payload, header.crc) => Some("checksum mismatch"),
        Some(_) => None,
    }
}

fn record_size(data: &[u8], offset: usize) -> usize {
    let head: [u8; record::HEADER] = data[offset..offset + record::HEADER].try_into().expect("checked by damage()");
    record::HEADER + record::header(&head).expect("checked by damage()").len
}

/// Validates a segment from `start`, record by record. A damaged span is cut out: the scan
/// resynchronises on the next offset where a whole, checksummed record starts, so good records
/// after the damage are kept; the span itself is saved aside. A damaged end is simply cut off.
fn scan(dir: &Path, id: u64, start: u64) -> std::io::Result<Scan> {
    let path = segment_path(dir, id);
    let mut data = Vec::new();
    File::open(&path)?.read_to_end(&mut data)?;
    let mut kept = data[..(start as usize).min(data.len())].to_vec();
    let (mut offset, mut events, mut bytes, mut cuts) = (kept.len(), 0u64, 0u64, Vec::new());
    while offset < data.len() {
        match damage(&data, offset) {
            None => {
                let size = record_size(&data, offset);
                kept.extend_from_slice(&data[offset..offset + size]);
                events += 1;
                bytes += size as u64;
                offset += size;
            }
            Some(reason) => {
                let resume = (offset + 1..data.len()).find(|o| damage(&data, *o).is_none()).unwrap_or(data.len());
                let kept_as = dir.join(format!("{id:016}.seg.corrupt-{offset}"));
                std::fs::write(&kept_as, &data[offset..resume])?;
                cuts.push(Cut {
                    segment: id,
                    offset: kept.len() as u64,
                    bytes: (resume - offset) as u64,
                    kept_as,
                    reason,
                });
                offset = resume;
            }
        }
    }
    if !cuts.is_empty() {
        // Rewrite the segment without the damaged spans, atomically.
        let temporary = path.with_extension("seg.tmp");
        let mut file = File::create(&temporary)?;
        file.write_all(&kept)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path)?;
        File::open(dir)?.sync_all()?;
    }
    Ok(Scan { valid_end: kept.len() as u64, events, bytes, cuts })
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
/// may run beside a live gateway): from `from`, or the delivered position. Stops at the first
/// incomplete or damaged record and says where, rather than skipping it.
pub fn read_from(dir: &Path, from: Option<Position>) -> std::io::Result<(Vec<super::Spooled>, Option<String>)> {
    let head = from.or_else(|| read_head(dir)).unwrap_or_default();
    let mut out = Vec::new();
    for id in segment_ids(dir)?.into_iter().filter(|id| *id >= head.segment) {
        let mut data = Vec::new();
        File::open(segment_path(dir, id))?.read_to_end(&mut data)?;
        let mut offset = if id == head.segment { head.offset as usize } else { 0 };
        while offset < data.len() {
            let decoded = match damage(&data, offset) {
                None => {
                    let size = record_size(&data, offset);
                    record::decode(&data[offset + record::HEADER..offset + size]).map(|m| (size, m))
                }
                Some(_) => None,
            };
            let Some((size, message)) = decoded else {
                // The writer may be mid-batch at the end of the last segment; elsewhere it is damage.
                return Ok((out, Some(format!("unreadable record in segment {id} at offset {offset}"))));
            };
            offset += size;
            out.push(super::Spooled {
                end: Position { segment: id, offset: offset as u64 },
                size: size as u64,
                message,
            });
        }
    }
    Ok((out, None))
}
