//! The child process of the real-kernel tier: the tier-3 child of the harness
//! (`fault_injection::child::run`: open through `FileStorage`, commit the kill workload, print
//! `open N` and then `ack N` after each commit) run on a path inside the FUSE mount.
//!
//! `deadbolt-kernel-tier child --path <file> --seed <n>`

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || {
        eprintln!("usage: deadbolt-kernel-tier child --path <file> --seed <n>");
        ExitCode::from(64)
    };
    if args.len() != 5 || args[0] != "child" || args[1] != "--path" || args[3] != "--seed" {
        return usage();
    }
    let Ok(seed) = args[4].parse::<u64>() else {
        return usage();
    };
    fault_injection::child::run(&PathBuf::from(&args[2]), seed)
}
