//! `check-bolt`, `import-bolt` and `salvage`: diagnose and migrate existing bbolt files, and
//! recover what verifies from a damaged deadbolt file.
use std::path::PathBuf;

use deadbolt::bolt::{check_file, import_file, ImportOptions};
use deadbolt::Db;

use crate::error::{CliError, EXIT_DAMAGED};
use crate::util::{Ctx, Progress};

#[derive(clap::Args, Debug)]
pub struct CheckBoltArgs {
    /// bbolt database file (read-only; never written)
    pub file: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct ImportBoltArgs {
    /// bbolt database file to read (never written)
    pub src: PathBuf,
    /// New deadbolt database to create
    pub dst: PathBuf,
    /// Import everything readable from a damaged file and report what was lost
    #[arg(long)]
    pub salvage: bool,
}

#[derive(clap::Args, Debug)]
pub struct SalvageArgs {
    /// Damaged deadbolt file to read (never written)
    pub src: PathBuf,
    /// New deadbolt database to create
    pub dst: PathBuf,
}

fn new_dst(dst: &std::path::Path) -> Result<(), CliError> {
    if dst.exists() {
        return Err(CliError::usage(format!(
            "{}: already exists; give the path of a new file",
            dst.display()
        )));
    }
    Ok(())
}

fn existing(src: &std::path::Path) -> Result<(), CliError> {
    std::fs::File::open(src)
        .map(|_| ())
        .map_err(|e| CliError::io(src, e))
}

/// Diagnose a bbolt file: exit 0 when it is readable without damage, 1 when damaged.
pub fn check_bolt(a: CheckBoltArgs, _ctx: &Ctx) -> Result<(), CliError> {
    existing(&a.file)?;
    let report = check_file(&a.file).map_err(|e| CliError::db(&a.file, e))?;
    println!("{report}");
    if report.is_ok() {
        Ok(())
    } else {
        Err(CliError::quiet(EXIT_DAMAGED))
    }
}

/// Import a bbolt file into a new deadbolt database.
pub fn import_bolt(a: ImportBoltArgs, ctx: &Ctx) -> Result<(), CliError> {
    existing(&a.src)?;
    new_dst(&a.dst)?;
    let db = Db::open(&a.dst).map_err(|e| CliError::db(&a.dst, e))?;
    let opts = ImportOptions {
        salvage: a.salvage,
        lock_timeout: ctx.lock_timeout,
        ..ImportOptions::default()
    };
    let bar = Progress::bar(ctx.progress, 0, "importing", false);
    let mut last = 0u64;
    let r = import_file(&a.src, &db, &opts, &mut |done, total| {
        if done - last >= 1024 || done == total {
            bar.set(done, total);
            last = done;
        }
    });
    bar.finish();
    let report = match r {
        Ok(r) => r,
        Err(e) => {
            drop(db);
            let _ = std::fs::remove_file(&a.dst);
            let damaged = e.is_corruption();
            let mut err = CliError::db(&a.src, e);
            if damaged {
                err.msg
                    .push_str("\n(nothing was imported; use --salvage to import what is readable)");
            }
            return Err(err);
        }
    };
    println!("{report}");
    if report.is_complete() {
        Ok(())
    } else {
        Err(CliError::quiet(EXIT_DAMAGED))
    }
}

/// Copy everything that verifies from a damaged deadbolt file into a new one.
pub fn salvage(a: SalvageArgs, _ctx: &Ctx) -> Result<(), CliError> {
    existing(&a.src)?;
    new_dst(&a.dst)?;
    let report = match deadbolt::salvage(&a.src, &a.dst) {
        Ok(r) => r,
        Err(e) => {
            // The engine creates DST before it reads SRC's meta pages, so a source that is not
            // a deadbolt file this build reads (a bbolt file, another format version) would
            // leave an empty database behind, in the way of the next attempt. DST did not exist
            // (`new_dst`) and nothing was copied: remove it. After any other failure DST may
            // hold what was salvaged so far, and is kept.
            if matches!(
                e,
                deadbolt::Error::InvalidFile(_) | deadbolt::Error::UnsupportedVersion { .. }
            ) {
                let _ = std::fs::remove_file(&a.dst);
            }
            return Err(CliError::db(&a.src, e));
        }
    };
    println!("{report}");
    if report.is_complete() {
        Ok(())
    } else {
        Err(CliError::quiet(EXIT_DAMAGED))
    }
}
