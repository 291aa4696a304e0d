//! The disk's own cost of one durable commit, measured beside a gateway run.
//!
//! A gateway with durable audit cannot answer a call sooner than its disk makes one write
//! durable; on a virtual disk that floor alone can exceed a latency budget. The probe measures it
//! the way the audit log's steady state writes: SQLite in WAL mode overwrites pages of a WAL file
//! that already exists (after each checkpoint the log starts again from its beginning), then
//! calls `fsync`. So the probe fills a file first, then overwrites one 4 KiB page at a time,
//! each followed by `fsync`, and reports the latency percentiles of write plus sync.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use hdrhistogram::Histogram;

use super::Percentiles;

/// Bytes of one write: a SQLite page plus its WAL frame header is about this size.
const PAGE: usize = 4096;

/// Pages in the probe file; the writes cycle through them.
const PAGES: u64 = 256;

/// Measures `writes` page overwrites, each made durable with `fsync`, in a scratch file in
/// `dir` (removed afterwards). The percentiles are in microseconds.
pub fn commit_latency(dir: &Path, writes: u32) -> std::io::Result<Percentiles> {
    let scratch = Scratch(dir.join(format!(".portcullis-disk-probe-{}", std::process::id())));
    let mut file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(&scratch.0)?;
    let page = [0x5au8; PAGE];
    for _ in 0..PAGES {
        file.write_all(&page)?;
    }
    file.sync_all()?;
    let mut histogram = Histogram::<u64>::new(3).map_err(std::io::Error::other)?;
    for i in 0..u64::from(writes) {
        let started = Instant::now();
        overwrite(&mut file, (i % PAGES) * PAGE as u64, &page)?;
        let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        histogram.record(took).map_err(std::io::Error::other)?;
    }
    Percentiles::of(&histogram)
        .ok_or_else(|| std::io::Error::other("the disk probe made no writes (--writes 0)"))
}

fn overwrite(file: &mut File, offset: u64, page: &[u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(page)?;
    file.sync_all()
}

/// The probe file, removed when the probe ends however it ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
