//! Import a bbolt file into a deadbolt database, streaming, in transactions of bounded size.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use super::check::{check_bytes, BoltReport};
use super::file::BoltFile;
use super::problem::{BoltProblem, Severity};
use super::source::{SourceFile, DEFAULT_LOCK_TIMEOUT};
use super::walker::{Event, Walker};
use crate::{Bucket, Db, Error, LostRange, Result, Tx};

/// How [`import_file`] works.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Import everything readable from a damaged file and report what was lost, instead of
    /// refusing it. With salvage, a file whose metas both fail their checksum is read through
    /// the newest meta whose magic and version are right, and that is reported.
    pub salvage: bool,
    /// Commit once a transaction holds this many bytes of keys, values and bucket names (at
    /// least one entry per transaction, so a single larger value still goes through).
    pub max_tx_bytes: usize,
    /// Commit once a transaction holds this many entries (pairs and buckets).
    pub max_tx_entries: usize,
    /// How long to wait for the source file's shared lock.
    pub lock_timeout: Option<Duration>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            salvage: false,
            max_tx_bytes: 8 << 20,
            max_tx_entries: 50_000,
            lock_timeout: Some(DEFAULT_LOCK_TIMEOUT),
        }
    }
}

/// What an import did.
#[derive(Clone, Debug)]
pub struct ImportReport {
    /// The import ran in salvage mode (copying what verifies past damage).
    pub salvage: bool,
    /// The source meta used (0 or 1) and its txid.
    pub source_meta: u8,
    /// The txid of that meta.
    pub source_txid: u64,
    /// True when salvage read through a meta whose checksum failed.
    pub meta_unverified: bool,
    /// Buckets created (every level).
    pub buckets: u64,
    /// Key/value pairs written.
    pub kv_pairs: u64,
    /// Bytes of keys and values written.
    pub kv_bytes: u64,
    /// Transactions committed.
    pub transactions: u64,
    /// Problems met while reading for the import (salvage), including the meta ones.
    pub problems: Vec<BoltProblem>,
    /// Problems beyond the kept ones.
    pub suppressed_problems: u64,
    /// What could not be imported: bucket paths and key ranges.
    pub lost: Vec<LostRange>,
    /// The full diagnosis of the source made before importing.
    pub check: BoltReport,
}

impl ImportReport {
    /// True when everything was imported (nothing lost, no damage met).
    pub fn is_complete(&self) -> bool {
        self.lost.is_empty()
            && self.suppressed_problems == 0
            && !self.problems.iter().any(|p| p.severity == Severity::Damage)
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "bbolt import{}: {} buckets, {} key/value pairs ({} bytes) in {} transactions, from meta {} (txid {}){}",
            if self.salvage { " (salvage)" } else { "" },
            self.buckets,
            self.kv_pairs,
            self.kv_bytes,
            self.transactions,
            self.source_meta,
            self.source_txid,
            if self.meta_unverified {
                " whose checksum is WRONG (contents unverified)"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "verified: meta checksum, page ids, types and bounds, key order, no cycles or shared pages (bbolt pages carry no checksums, so the bytes of keys and values could not be verified)"
        )?;
        let n = self.problems.len() as u64 + self.suppressed_problems;
        if n > 0 {
            writeln!(f, "{n} problems while reading:")?;
            for p in &self.problems {
                writeln!(f, "  {p}")?;
            }
            if self.suppressed_problems > 0 {
                writeln!(f, "  ... and {} more not listed", self.suppressed_problems)?;
            }
        }
        if self.is_complete() {
            writeln!(
                f,
                "complete: every entry reachable from the meta in use was imported"
            )?;
        } else if self.lost.is_empty() {
            writeln!(
                f,
                "INCOMPLETE: nothing is known to be lost, but damaged parts were read (see above)"
            )?;
        } else {
            writeln!(f, "INCOMPLETE: lost")?;
            for l in &self.lost {
                writeln!(f, "  {l}")?;
            }
        }
        Ok(())
    }
}

/// Import the bbolt file at `src` into `dst`. The source is opened read-only under a shared
/// lock and never written. See [`import_bytes`].
pub fn import_file(
    src: &Path,
    dst: &Db,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ImportReport> {
    let source = SourceFile::open(src, opts.lock_timeout)?;
    import_bytes(source.bytes(), dst, opts, progress)
}

/// Import a bbolt file image into `dst`: every bucket (all levels, with its sequence), key and
/// value, created with `create_bucket`, so buckets of the same name must not exist in `dst`.
///
/// The file is checked first. Without salvage a damaged file is refused with
/// [`Error::Corruption`] (the first damage: page and detail) before anything is written;
/// warnings (an invalid meta page with a valid sibling, as after a torn commit) do not stop it,
/// and the state of the valid meta is imported, as bbolt would read it.
///
/// Writing is streamed: at most `max_tx_bytes` / `max_tx_entries` per transaction, memory
/// bounded by the reader's stacks, bitmaps and problem list. `progress(done, total)` counts
/// entries (pairs plus buckets). If a commit fails midway, the transactions committed before it
/// stay in `dst` and the error is returned: the import did not succeed and `dst` should be
/// discarded.
pub fn import_bytes(
    bytes: &[u8],
    dst: &Db,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ImportReport> {
    let check = check_bytes(bytes);
    if !opts.salvage && !check.is_ok() {
        return Err(refusal(&check));
    }
    let (file, meta_problems) = source_meta(bytes, opts.salvage)?;
    let total = if !opts.salvage {
        check.walk.kv_pairs + check.walk.buckets
    } else {
        // Salvage may read more than the diagnosis (recovered pages) or through a meta the
        // diagnosis could not use: count with the same walk first.
        let mut w = Walker::new(file, true);
        while let Ok(Some(_)) = w.next_event() {}
        w.stats().kv_pairs + w.stats().buckets
    };
    let mut report = ImportReport {
        salvage: opts.salvage,
        source_meta: file.active_meta,
        source_txid: file.txid,
        meta_unverified: file.meta_unverified,
        buckets: 0,
        kv_pairs: 0,
        kv_bytes: 0,
        transactions: 0,
        problems: Vec::new(),
        suppressed_problems: 0,
        lost: Vec::new(),
        check,
    };
    let mut copier = Copier {
        walker: Walker::new(file, opts.salvage),
        path: Vec::new(),
        done: 0,
        total,
        max_bytes: opts.max_tx_bytes.max(1) as u64,
        max_entries: opts.max_tx_entries.max(1) as u64,
    };
    progress(0, total);
    loop {
        let tx = dst.begin_write()?;
        let finished = copier.fill(&tx, &mut report, progress)?;
        tx.commit()?;
        report.transactions += 1;
        if finished {
            break;
        }
    }
    let (problems, _, _, _) = copier.walker.finish();
    report.suppressed_problems = problems.suppressed;
    report.problems = meta_problems;
    report.problems.extend(problems.items);
    report.lost = report
        .problems
        .iter()
        .filter_map(|p| p.lost.clone())
        .collect();
    Ok(report)
}

/// Why a strict import refuses a damaged file: the first damage, with page and detail.
fn refusal(check: &BoltReport) -> Error {
    let (page, detail) = match check.first_damage() {
        Some(p) => (p.page, p.to_string()),
        None => (0, "the file cannot be read".to_string()),
    };
    let n = check.problems.len() as u64 + check.suppressed_problems;
    Error::Corruption {
        page,
        detail: format!(
            "bbolt file refused ({n} problems; use salvage to import what is readable): {detail}"
        ),
    }
}

/// The file opened for the import (with salvage, possibly through an unverified meta) and the
/// meta problems met, including a root sequence deadbolt cannot carry.
fn source_meta(bytes: &[u8], salvage: bool) -> Result<(BoltFile<'_>, Vec<BoltProblem>)> {
    let out = BoltFile::open_outcome(bytes, salvage);
    let Some(file) = out.file else {
        return Err(Error::Corruption {
            page: 0,
            detail: "bbolt file: no usable meta page; nothing can be imported".into(),
        });
    };
    let mut meta_problems: Vec<BoltProblem> = out.problems;
    if file.root_sequence != 0 {
        // bbolt exposes no API to set it, so this never happens in practice; deadbolt's root
        // has no sequence to carry it.
        meta_problems.push(BoltProblem {
            severity: Severity::Warning,
            page: u64::from(file.active_meta),
            path: Vec::new(),
            detail: format!(
                "the root bucket's sequence is {} in the meta; deadbolt's root has no sequence, so it is not imported",
                file.root_sequence
            ),
            lost: None,
        });
    }
    Ok((file, meta_problems))
}

/// The walk being copied, transaction by transaction.
struct Copier<'a> {
    walker: Walker<'a>,
    /// The bucket being written into (empty: the root).
    path: Vec<&'a [u8]>,
    /// Entries written so far, of `total`.
    done: u64,
    total: u64,
    max_bytes: u64,
    max_entries: u64,
}

impl Copier<'_> {
    /// Write the walk's next events into `tx` until it holds `max_bytes` or `max_entries`;
    /// true when the walk is over.
    fn fill(
        &mut self,
        tx: &Tx<'_>,
        report: &mut ImportReport,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<bool> {
        let mut cur = open_path(tx, &self.path)?;
        let mut tx_bytes: u64 = 0;
        let mut tx_entries: u64 = 0;
        while tx_bytes < self.max_bytes && tx_entries < self.max_entries {
            let Some(ev) = self.walker.next_event()? else {
                return Ok(true);
            };
            let written = match ev {
                Event::EnterBucket { name, sequence, .. } => {
                    let b = match &cur {
                        None => tx.create_bucket(name)?,
                        Some(p) => p.create_bucket(name)?,
                    };
                    if sequence != 0 {
                        b.set_sequence(sequence)?;
                    }
                    self.path.push(name);
                    cur = Some(b);
                    report.buckets += 1;
                    name.len() as u64 + 16
                }
                Event::Kv { key, value } => {
                    let Some(b) = &cur else {
                        // The walker never yields pairs of the root bucket.
                        return Err(Error::InvalidArgument(
                            "key/value pair outside a bucket".into(),
                        ));
                    };
                    b.put(key, value)?;
                    report.kv_pairs += 1;
                    let n = (key.len() + value.len()) as u64;
                    report.kv_bytes += n;
                    n
                }
                Event::LeaveBucket => {
                    self.path.pop();
                    cur = open_path(tx, &self.path)?;
                    continue;
                }
                Event::Reenter => {
                    self.path = self.walker.path().to_vec();
                    cur = open_path(tx, &self.path)?;
                    continue;
                }
            };
            tx_bytes += written;
            tx_entries += 1;
            self.done += 1;
            progress(self.done, self.total);
        }
        Ok(false)
    }
}

/// The bucket at `path` in `tx` (`None` for the root), through the engine's one bucket-path
/// walker; every bucket on it was created by this import, so a missing one is an error.
fn open_path<'t>(tx: &'t Tx<'_>, path: &[&[u8]]) -> Result<Option<Bucket<'t>>> {
    if path.is_empty() {
        return Ok(None);
    }
    tx.bucket_path(path)?.ok_or(Error::BucketNotFound).map(Some)
}
