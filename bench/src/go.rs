//! Go bbolt as a peer engine: building `bench/go/bboltbench.go` and handing the built program
//! to child processes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Go bbolt, run through bench/go/bboltbench.go when a Go toolchain is installed.
pub const GO_ENGINE: &str = "bbolt-go";
/// The environment variable that hands the built Go program to child processes.
pub const GO_ENV: &str = "DEADBOLT_BENCH_GO";

pub fn go_bin() -> Option<PathBuf> {
    std::env::var_os(GO_ENV).map(PathBuf::from)
}

/// Build the Go program against Debian's packaged bbolt (GOPATH mode); `None` without `go`.
pub fn build_go(dir: &Path) -> Option<PathBuf> {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/go/bboltbench.go");
    let bin = dir.join("bboltbench");
    let gopath = std::env::var("GOPATH").unwrap_or_else(|_| "/usr/share/gocode".into());
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(src)
        .env("GO111MODULE", "off")
        .env("GOPATH", gopath)
        .status();
    match status {
        Ok(st) if st.success() => Some(bin),
        Ok(st) => {
            eprintln!("building {src} failed ({st}); Go bbolt is left out");
            None
        }
        Err(_) => None,
    }
}
