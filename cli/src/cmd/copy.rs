//! `backup` and `compact`: write a new database file.
//!
//! Both write into a fresh temporary directory beside DST and rename the finished, synced file
//! into place, so DST is never left half-written and an existing DST is only replaced with
//! `--force`.
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{At, CliError};
use crate::util::{open_read_only, CountingWriter, Ctx, Progress};

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// Database file to copy
    pub src: PathBuf,
    /// New file to write
    pub dst: PathBuf,
    /// Replace DST if it exists
    #[arg(short, long)]
    pub force: bool,
}

#[derive(clap::Args, Debug)]
pub struct CompactArgs {
    /// Database file to compact
    pub src: PathBuf,
    /// New file to write
    pub dst: PathBuf,
    /// Replace DST if it exists
    #[arg(short, long)]
    pub force: bool,
}

/// Check DST before any work: not SRC itself, and absent unless `force`.
fn check_dst(src: &Path, dst: &Path, force: bool) -> Result<(), CliError> {
    if let (Ok(a), Ok(b)) = (fs::canonicalize(src), fs::canonicalize(dst)) {
        if a == b {
            return Err(CliError::usage(format!(
                "{}: destination is the source file",
                dst.display()
            )));
        }
    }
    match fs::symlink_metadata(dst) {
        Ok(m) if m.is_dir() => Err(CliError::usage(format!(
            "{}: is a directory; give the path of the new file",
            dst.display()
        ))),
        Ok(_) if !force => Err(CliError::usage(format!(
            "{}: already exists (use --force to replace it)",
            dst.display()
        ))),
        _ => Ok(()),
    }
}

/// A temporary directory beside `dst`, so that the final rename stays on one file system.
fn staging(dst: &Path) -> Result<tempfile::TempDir, CliError> {
    let parent = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".deadbolt-tmp-")
        .tempdir_in(parent)
        .map_err(|e| CliError::io(parent, e))
}

/// Move the finished file into place and make the rename durable.
fn install(tmp: &Path, src: &Path, dst: &Path) -> Result<u64, CliError> {
    // Keep the source's permissions: a copy of a 0600 database should not become 0644.
    if let Ok(m) = fs::metadata(src) {
        let _ = fs::set_permissions(tmp, m.permissions());
    }
    File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| CliError::io(dst, e))?;
    fs::rename(tmp, dst).map_err(|e| CliError::io(dst, e))?;
    if let Some(parent) = dst.parent() {
        let dir = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    fs::metadata(dst)
        .map(|m| m.len())
        .map_err(|e| CliError::io(dst, e))
}

pub fn backup(a: BackupArgs, ctx: &Ctx) -> Result<(), CliError> {
    check_dst(&a.src, &a.dst, a.force)?;
    let src = a.src.as_path();
    let db = open_read_only(src, ctx)?;
    let dir = staging(&a.dst)?;
    let tmp = dir.path().join("backup.db");
    let stats = db.stats();
    let estimate = stats.high_water.saturating_mul(stats.page_size as u64);
    let (txid, written) = {
        let tx = db.begin_read().at(src)?;
        let file = File::create_new(&tmp).map_err(|e| CliError::io(&tmp, e))?;
        let progress = Progress::bar(ctx.progress, estimate, "backup", true);
        let mut w = CountingWriter {
            inner: BufWriter::new(file),
            progress: &progress,
            written: 0,
            failed: None,
        };
        let n = match tx.copy_to(&mut w) {
            Ok(n) => n,
            Err(e) => {
                return Err(match w.failed.take() {
                    Some(reason) => CliError::cannot_run(format!("{}: {reason}", a.dst.display())),
                    None => CliError::db(src, e),
                })
            }
        };
        w.flush().map_err(|e| CliError::io(&a.dst, e))?;
        progress.finish();
        (tx.id(), n)
    };
    let size = install(&tmp, src, &a.dst)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "backed up {} (txid {txid}) to {}: {} bytes",
        src.display(),
        a.dst.display(),
        size.max(written)
    )?;
    Ok(())
}

pub fn compact(a: CompactArgs, ctx: &Ctx) -> Result<(), CliError> {
    check_dst(&a.src, &a.dst, a.force)?;
    let src = a.src.as_path();
    let db = open_read_only(src, ctx)?;
    let before = db.stats().file_size;
    let dir = staging(&a.dst)?;
    let tmp = dir.path().join("compact.db");
    let progress = Progress::spinner(ctx.progress, "compact");
    db.compact_into(&tmp).at(src)?;
    progress.finish();
    let after = install(&tmp, src, &a.dst)?;
    let mut out = std::io::stdout().lock();
    let pct = if before == 0 {
        100.0
    } else {
        after as f64 * 100.0 / before as f64
    };
    writeln!(
        out,
        "compacted {} ({before} bytes) to {} ({after} bytes, {pct:.1}% of the original)",
        src.display(),
        a.dst.display()
    )?;
    Ok(())
}
