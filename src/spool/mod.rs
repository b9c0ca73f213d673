//! The local spool: a crash-safe, append-only queue on disk that holds accepted events while the
//! broker cannot take them, and is the whole hand-off when no broker is configured.
//!
//! Segment files `NNNNNNNNNNNNNNNN.seg` hold length-prefixed, checksummed records (see
//! [`record`]). One writer thread appends: concurrent requests are batched into one write and
//! one `fdatasync` (group commit), and each request is answered only once its batch is on disk.
//! The drainer ([`drain`]) forwards records in order with publisher confirms and records its
//! position in `head`; segments wholly behind it are deleted. On open, a torn or corrupt tail is
//! cut off, kept aside as `*.corrupt-<offset>` and reported — never a panic, never a silently
//! skipped record.

pub mod drain;
pub mod record;
pub mod recover;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::sink::Message;
use crate::telemetry::metrics;
pub use recover::Recovery;

/// Appends waiting for the writer; beyond it requests wait for room (backpressure).
const QUEUE: usize = 4096;
/// Records written per batch at most.
const MAX_BATCH: usize = 1024;

/// Spool settings.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// Directory of segment files.
    pub dir: PathBuf,
    /// Largest total size of undelivered records; beyond it requests get 503.
    pub max_bytes: u64,
    /// `fdatasync` each batch before answering (off: faster, but a power loss can lose events).
    pub fsync: bool,
    /// A segment file is closed and a new one started past this size.
    pub segment_bytes: u64,
}

/// Why an event could not be spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// `max_bytes` reached.
    #[error("spool full")]
    Full,
    /// The event is too large for a spool record.
    #[error("event too large for the spool")]
    TooLarge,
    /// Writing or syncing failed (disk full, I/O error).
    #[error("spool write failed: {0}")]
    Io(#[from] std::io::Error),
    /// Another process holds the spool directory.
    #[error("spool directory {0} is in use by another hookgate process")]
    Locked(PathBuf),
    /// The writer thread is gone (shutting down).
    #[error("spool closed")]
    Closed,
}

/// A place in the spool: segment id and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    /// Segment id.
    pub segment: u64,
    /// Byte offset in the segment.
    pub offset: u64,
}

/// A record read from the spool.
#[derive(Debug, Clone)]
pub struct Spooled {
    /// The position just after it: acknowledging up to here removes it.
    pub end: Position,
    /// Its size on disk.
    pub size: u64,
    /// The event.
    pub message: Message,
}

/// Counts of what the spool holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Undelivered records.
    pub events: u64,
    /// Their size in bytes.
    pub bytes: u64,
    /// Segment files.
    pub segments: usize,
    /// Batches written (each one write and, with `fsync`, one sync) since the spool opened.
    pub batches: u64,
}

#[derive(Debug, Default)]
struct State {
    /// Segment id → size in bytes.
    segments: BTreeMap<u64, u64>,
    /// Next record to deliver.
    head: Position,
    /// End of the data on disk.
    tail: Position,
    events: u64,
    bytes: u64,
    batches: u64,
    /// The record last refused by the broker, and how many times in a row.
    refusals: (Position, u32),
}

struct Append {
    record: Vec<u8>,
    done: oneshot::Sender<Result<(), SpoolError>>,
}

/// A handle to an open spool; cheap to share.
pub struct Spool {
    config: SpoolConfig,
    state: Arc<Mutex<State>>,
    appended: Arc<Notify>,
    tx: mpsc::Sender<Append>,
    /// Held for the spool's lifetime: one process per directory.
    _lock: File,
}

impl Spool {
    /// Opens (creating if needed) and recovers the spool, then starts its writer thread.
    pub fn open(config: SpoolConfig) -> Result<(Arc<Self>, Recovery), SpoolError> {
        std::fs::create_dir_all(&config.dir)?;
        let lock = lock(&config.dir)?;
        let recovery = recover::recover(&config.dir)?;
        let mut state = State { head: recovery.head, ..State::default() };
        for (id, size) in &recovery.segments {
            state.segments.insert(*id, *size);
        }
        let (last, last_size) = match state.segments.last_key_value() {
            Some((id, size)) => (*id, *size),
            None => {
                let id = recovery.head.segment.max(1);
                create_segment(&config.dir, id)?;
                state.segments.insert(id, 0);
                (id, 0)
            }
        };
        state.tail = Position { segment: last, offset: last_size };
        state.events = recovery.events;
        state.bytes = recovery.bytes;
        publish_gauges(&state);
        let state = Arc::new(Mutex::new(state));
        let appended = Arc::new(Notify::new());
        let (tx, rx) = mpsc::channel(QUEUE);
        let file = OpenOptions::new().append(true).open(segment_path(&config.dir, last))?;
        let writer = Writer {
            config: config.clone(),
            state: state.clone(),
            appended: appended.clone(),
            file,
            segment: last,
            size: last_size,
        };
        std::thread::Builder::new().name("hookgate-spool".into()).spawn(move || writer.run(rx))?;
        Ok((Arc::new(Self { config, state, appended, tx, _lock: lock }), recovery))
    }

    /// Appends an event; resolves once it is on disk (fsynced when `fsync` is on).
    pub async fn append(&self, message: &Message) -> Result<(), SpoolError> {
        let (done, result) = oneshot::channel();
        let record = record::encode(message).ok_or(SpoolError::TooLarge)?;
        self.tx.send(Append { record, done }).await.map_err(|_| SpoolError::Closed)?;
        result.await.map_err(|_| SpoolError::Closed)?
    }

    /// Undelivered records and bytes.
    pub fn stats(&self) -> Stats {
        let state = self.lock();
        Stats { events: state.events, bytes: state.bytes, segments: state.segments.len(), batches: state.batches }
    }

    /// Waits until something is appended.
    pub async fn appended(&self) {
        self.appended.notified().await;
    }

    /// Reads up to `max` undelivered records from the head, each with the position after it and
    /// its size on disk.
    pub fn read_batch(&self, max: usize) -> Result<Vec<Spooled>, SpoolError> {
        let (mut position, tail, segments) = {
            let state = self.lock();
            (state.head, state.tail, state.segments.clone())
        };
        let mut batch = Vec::new();
        let mut file: Option<(u64, std::io::BufReader<File>)> = None;
        while batch.len() < max && position < tail {
            let end = segments.get(&position.segment).copied().unwrap_or(0);
            if position.offset >= end {
                // Past this segment's end: on to the next one.
                match segments.range(position.segment + 1..).next() {
                    Some((next, _)) => position = Position { segment: *next, offset: 0 },
                    None => break,
                }
                continue;
            }
            if file.as_ref().is_none_or(|(id, _)| *id != position.segment) {
                let mut f = File::open(segment_path(&self.config.dir, position.segment))?;
                f.seek(SeekFrom::Start(position.offset))?;
                file = Some((position.segment, std::io::BufReader::new(f)));
            }
            let (_, f) = file.as_mut().expect("opened above");
            let mut head = [0u8; record::HEADER];
            f.read_exact(&mut head)?;
            let header = record::header(&head).ok_or_else(|| corrupt(position))?;
            let mut payload = vec![0; header.len];
            f.read_exact(&mut payload)?;
            if !record::checksum_ok(&payload, header.crc) {
                return Err(corrupt(position));
            }
            let message = record::decode(&payload).ok_or_else(|| corrupt(position))?;
            let size = (record::HEADER + header.len) as u64;
            position.offset += size;
            batch.push(Spooled { end: position, size, message });
        }
        Ok(batch)
    }

    /// Counts one more refusal of the record ending at `end`; returns the count so far.
    pub fn refused(&self, end: Position) -> u32 {
        let mut state = self.lock();
        match state.refusals {
            (at, n) if at == end => state.refusals = (end, n + 1),
            _ => state.refusals = (end, 1),
        }
        state.refusals.1
    }

    /// Moves a record the broker keeps refusing out of the way: it is written to
    /// `dead/<segment>-<offset>.json` (metadata and body) and acknowledged, so the records behind
    /// it flow again. Reported at ERROR and in `hookgate_spool_dead_letters_total`.
    pub fn dead_letter(&self, spooled: &Spooled) -> Result<(), SpoolError> {
        let dir = self.config.dir.join("dead");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{:016}-{}.json", spooled.end.segment, spooled.end.offset));
        let m = &spooled.message;
        let body = serde_json::json!({
            "id": m.id, "source": m.source.as_ref(), "type": m.event_type, "routing_key": m.routing_key,
            "received_at": crate::sink::amqp::rfc3339(m.received_at),
            "body_base64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &m.body),
        });
        std::fs::write(&path, body.to_string())?;
        tracing::error!(id = %m.id, path = %path.display(), "The broker keeps refusing a spooled event; dead-lettered it.");
        metrics::spool_dead_letter();
        self.ack(spooled.end, 1, spooled.size)
    }

    /// Marks everything before `end` delivered: `events` records of `bytes` bytes. Persists the
    /// head, then deletes segments wholly behind it.
    pub fn ack(&self, end: Position, events: u64, bytes: u64) -> Result<(), SpoolError> {
        let removable: Vec<u64> = {
            let mut state = self.lock();
            state.head = end;
            state.events = state.events.saturating_sub(events);
            state.bytes = state.bytes.saturating_sub(bytes);
            let current = state.tail.segment;
            state.segments.range(..end.segment).map(|(id, _)| *id).filter(|id| *id != current).collect()
        };
        recover::write_head(&self.config.dir, end, self.config.fsync)?;
        // Only now is the delivery on disk: the gauges never show an empty spool that a crash
        // would refill.
        publish_gauges(&self.lock());
        for id in removable {
            std::fs::remove_file(segment_path(&self.config.dir, id))?;
            self.lock().segments.remove(&id);
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn corrupt(at: Position) -> SpoolError {
    SpoolError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("corrupt record in segment {} at offset {}", at.segment, at.offset),
    ))
}

fn publish_gauges(state: &State) {
    metrics::spool(state.events, state.bytes);
}

/// The single writer: batches appends, writes, syncs, answers.
struct Writer {
    config: SpoolConfig,
    state: Arc<Mutex<State>>,
    appended: Arc<Notify>,
    file: File,
    segment: u64,
    size: u64,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Append>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            self.write(batch);
        }
    }

    fn write(&mut self, batch: Vec<Append>) {
        let mut accepted = Vec::with_capacity(batch.len());
        let mut bytes = self.state.lock().unwrap_or_else(|e| e.into_inner()).bytes;
        for append in batch {
            if bytes + append.record.len() as u64 > self.config.max_bytes {
                let _ = append.done.send(Err(SpoolError::Full));
            } else {
                bytes += append.record.len() as u64;
                accepted.push(append);
            }
        }
        if accepted.is_empty() {
            return;
        }
        let result = self.rotate_if_full().and_then(|()| self.write_synced(&accepted));
        match result {
            Ok(written) => {
                {
                    let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    state.segments.insert(self.segment, self.size);
                    state.tail = Position { segment: self.segment, offset: self.size };
                    state.events += accepted.len() as u64;
                    state.bytes += written;
                    state.batches += 1;
                    publish_gauges(&state);
                }
                metrics::spooled(accepted.len() as u64);
                self.appended.notify_waiters();
                for append in accepted {
                    let _ = append.done.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "Spool write failed; the events were refused with 503.");
                // Whatever part of the batch reached the file cannot be trusted (after a failed
                // fsync not even the page cache can): go on in a fresh segment. Recovery cuts
                // the torn end of this one.
                let _ = self.file.set_len(self.size);
                if let Err(e) = self.start_segment() {
                    tracing::error!(error = %e, "Cannot start a new spool segment either.");
                }
                for append in accepted {
                    let _ = append.done.send(Err(SpoolError::Io(std::io::Error::new(e.kind(), e.to_string()))));
                }
            }
        }
    }

    fn write_synced(&mut self, batch: &[Append]) -> std::io::Result<u64> {
        let total: usize = batch.iter().map(|a| a.record.len()).sum();
        let mut buffer = Vec::with_capacity(total);
        for append in batch {
            buffer.extend_from_slice(&append.record);
        }
        self.file.write_all(&buffer)?;
        if self.config.fsync {
            self.file.sync_data()?;
        }
        self.size += total as u64;
        Ok(total as u64)
    }

    fn rotate_if_full(&mut self) -> std::io::Result<()> {
        if self.size < self.config.segment_bytes {
            return Ok(());
        }
        self.start_segment()
    }

    fn start_segment(&mut self) -> std::io::Result<()> {
        let next = self.segment + 1;
        self.file = create_segment(&self.config.dir, next)?;
        self.segment = next;
        self.size = 0;
        self.state.lock().unwrap_or_else(|e| e.into_inner()).segments.insert(next, 0);
        Ok(())
    }
}

/// The file of segment `id`.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.seg"))
}

fn create_segment(dir: &Path, id: u64) -> std::io::Result<File> {
    let file = OpenOptions::new().create(true).append(true).open(segment_path(dir, id))?;
    // The new name must survive a crash too.
    File::open(dir)?.sync_all()?;
    Ok(file)
}

fn lock(dir: &Path) -> Result<File, SpoolError> {
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(SpoolError::Locked(dir.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(SpoolError::Io(e)),
    }
}

/// How long the drainer waits before retrying after the broker refused a batch.
pub const RETRY: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests;
