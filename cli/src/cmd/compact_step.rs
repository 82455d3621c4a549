//! `deadbolt compact-in-place FILE`: incremental compaction of the file itself, in small
//! write transactions ([`deadbolt::Db::compact_step`]), until nothing is left to move; the
//! freed tail is then given back. Unlike `compact`, no second file is needed.
//!
//! It needs the file's write lock. A process that has the database open for writing (a
//! running daemon) holds that lock for as long as its handle lives, and one open read-only
//! holds a shared lock, so this command can only run on a database no other process has open;
//! otherwise it waits `--lock-timeout` and says so. Inside a running daemon, the same work is
//! `Db::compact_step` on a maintenance timer.
use std::io::Write;
use std::path::PathBuf;

use deadbolt::{Db, Error, Options};

use crate::error::CliError;
use crate::util::{Ctx, Progress};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Database file to compact in place
    pub file: PathBuf,
    /// Pages to move per step (one write transaction and one sync each)
    #[arg(long, default_value_t = 256)]
    pub pages: u64,
    /// Stop after this many steps even if pages are left to move
    #[arg(long, default_value_t = 100_000)]
    pub max_steps: u64,
}

/// The message for a database another process has open.
fn in_use(file: &std::path::Path) -> CliError {
    CliError::cannot_run(format!(
        "{}: database is in use by another process (its file lock is held): moving pages is a \
         write transaction, which only the process that has the file open can run while it \
         is open; call Db::compact_step from that process, or stop it and run this again",
        file.display()
    ))
}

pub fn run(a: Args, ctx: &Ctx) -> Result<(), CliError> {
    if a.pages == 0 {
        return Err(CliError::usage("--pages must be at least 1"));
    }
    // An existing file only: never create a database by mistake.
    std::fs::metadata(&a.file).map_err(|e| CliError::io(&a.file, e))?;
    let opts = Options {
        lock_timeout: ctx.lock_timeout,
        ..Options::default()
    };
    let db = match Db::open_with(&a.file, opts) {
        Ok(db) => db,
        Err(Error::LockTimeout) => return Err(in_use(&a.file)),
        Err(e) => return Err(CliError::db(&a.file, e)),
    };
    let before = db.stats().file_size;
    let bar = Progress::spinner(ctx.progress, "compacting");
    let (mut steps, mut moved) = (0u64, 0u64);
    while steps < a.max_steps {
        let s = db
            .compact_step(a.pages)
            .map_err(|e| CliError::db(&a.file, e))?;
        steps += 1;
        moved += s.moved;
        bar.inc(s.moved);
        if s.moved == 0 {
            break;
        }
    }
    // Two empty syncs settle what the last steps freed, then give the tail back.
    db.sync().map_err(|e| CliError::db(&a.file, e))?;
    db.shrink_to_fit().map_err(|e| CliError::db(&a.file, e))?;
    bar.finish();
    let after = db.stats().file_size;
    db.close().map_err(|e| CliError::db(&a.file, e))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: {before} -> {after} bytes ({moved} pages moved in {steps} steps{})",
        a.file.display(),
        if steps >= a.max_steps {
            "; stopped at --max-steps"
        } else {
            ""
        }
    )?;
    Ok(())
}
