//! `deadbolt`: the command-line tool for deadbolt database files, in the spirit of `bbolt`.
//!
//! Each subcommand lives in its own module under `cmd/` with an `Args` struct (clap derive)
//! and a `run(args, &Ctx)` function; adding one is a variant in [`Command`] and an arm in
//! [`Command::run`].
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod error;
mod util;

use error::CliError;
use util::Ctx;

const AFTER_HELP: &str = "\
Exit status:
  0  success (check: the database is healthy)
  1  the database is damaged, or a bucket or key asked for is not there
  2  could not run: bad usage, missing or unreadable file, not a deadbolt database (a bbolt
     file: see import-bolt), an unsupported format version, file locked

Inspection commands open the file read-only under a shared lock; a process that has it
open for writing holds an exclusive lock, so they wait --lock-timeout and then give up.";

/// Inspect, check, dump, back up and compact deadbolt database files.
#[derive(Parser, Debug)]
#[command(name = "deadbolt", version, after_help = AFTER_HELP, max_term_width = 100)]
struct Cli {
    /// How long to wait for the file lock (e.g. 500ms, 2s, 1m, or "forever")
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        default_value = "1s",
        value_parser = util::parse_timeout
    )]
    lock_timeout: util::LockTimeout,

    /// Never draw progress bars (they are drawn only when stderr is a terminal)
    #[arg(long, global = true)]
    no_progress: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print page size, format version, txid, high-water mark, file size, free pages, depth
    Info(cmd::info::Args),
    /// Print per-bucket key, page and byte counts and fill factor
    Stats(cmd::stats::Args),
    /// Verify every page, tree and the free space; exit 0 healthy, 1 damaged, 2 could not run
    Check(cmd::check::Args),
    /// List the top-level buckets, or the buckets inside BUCKET...
    Buckets(cmd::inspect::BucketsArgs),
    /// List the keys of a bucket (nested buckets are listed by `buckets`)
    Keys(cmd::inspect::KeysArgs),
    /// Print the value of a key
    Get(cmd::inspect::GetArgs),
    /// List every page with its kind, item count, overflow and txid
    Pages(cmd::pages::PagesArgs),
    /// Print what one or more pages hold
    Page(cmd::pages::PageArgs),
    /// Write every bucket and key (JSON lines by default); exits 1 when it meets damage
    Dump(cmd::dump::Args),
    /// Write a consistent copy of the database to a new file
    Backup(cmd::copy::BackupArgs),
    /// Write a new, densely packed copy of the database
    Compact(cmd::copy::CompactArgs),
    /// Compact the file itself, a few pages per transaction (needs it not open elsewhere)
    CompactInPlace(cmd::compact_step::Args),
    /// Run a quick write/read benchmark and print operations per second
    Bench(cmd::bench::Args),
    /// Diagnose a bbolt file without hanging; exit 0 healthy, 1 damaged, 2 could not run
    CheckBolt(cmd::bolt::CheckBoltArgs),
    /// Import a bbolt file (buckets, keys, sequences) into a new deadbolt database
    ImportBolt(cmd::bolt::ImportBoltArgs),
    /// Copy everything that still verifies from a damaged deadbolt file into a new one
    Salvage(cmd::bolt::SalvageArgs),
}

impl Command {
    fn run(self, ctx: &Ctx) -> Result<(), CliError> {
        match self {
            Command::Info(a) => cmd::info::run(a, ctx),
            Command::Stats(a) => cmd::stats::run(a, ctx),
            Command::Check(a) => cmd::check::run(a, ctx),
            Command::Buckets(a) => cmd::inspect::buckets(a, ctx),
            Command::Keys(a) => cmd::inspect::keys(a, ctx),
            Command::Get(a) => cmd::inspect::get(a, ctx),
            Command::Pages(a) => cmd::pages::pages(a, ctx),
            Command::Page(a) => cmd::pages::page(a, ctx),
            Command::Dump(a) => cmd::dump::run(a, ctx),
            Command::Backup(a) => cmd::copy::backup(a, ctx),
            Command::Compact(a) => cmd::copy::compact(a, ctx),
            Command::CompactInPlace(a) => cmd::compact_step::run(a, ctx),
            Command::Bench(a) => cmd::bench::run(a, ctx),
            Command::CheckBolt(a) => cmd::bolt::check_bolt(a, ctx),
            Command::ImportBolt(a) => cmd::bolt::import_bolt(a, ctx),
            Command::Salvage(a) => cmd::bolt::salvage(a, ctx),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = Ctx {
        lock_timeout: cli.lock_timeout.0,
        progress: !cli.no_progress && std::io::stderr().is_terminal(),
    };
    match cli.command.run(&ctx) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.msg.is_empty() {
                let _ = writeln!(std::io::stderr(), "deadbolt: {}", e.msg);
            }
            ExitCode::from(u8::try_from(e.code).unwrap_or(2))
        }
    }
}
