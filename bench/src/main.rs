//! The peer comparison: runs every workload on every engine, each engine in its own child
//! process (so peak memory does not mix), counts sync calls per durable commit with strace, and
//! writes a Markdown report.
//!
//! ```sh
//! cargo run --release -p deadbolt-bench -- --entries 1000000 --out docs/BENCHMARKS.md
//! ```
//!
//! This file only picks the job; the report starts this program again for the internal modes.

mod args;
mod child;
mod costs;
mod duel;
mod go;
mod machine;
mod measure;
mod protocol;
mod raw;
mod render;
mod report;
mod sizes;
mod strace;

use std::process::ExitCode;

use deadbolt_bench::Res;

fn main() -> ExitCode {
    let run = || -> Res<()> {
        let a = args::parse_args()?;
        let base = a.dir.clone().unwrap_or_else(std::env::temp_dir);
        if let Some((engine, commits)) = &a.probe {
            return strace::probe(engine, *commits, &base);
        }
        if a.duel {
            return duel::duel(&a.engines, a.entries, &base);
        }
        if let Some(engine) = &a.child {
            return child::child(engine, a.entries, &base);
        }
        if let Some(engine) = &a.bucket_child {
            return child::bucket_child(engine, &base);
        }
        if let Some(c) = &a.cost_child {
            return costs::cost_child(c, &base);
        }
        if a.costs {
            return costs::costs(&a, &base);
        }
        report::report(&a, &base)
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("deadbolt-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
