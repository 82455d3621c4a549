//! Go bbolt as a peer engine: building `bench/go/bboltbench.go`, handing the built program to
//! child processes, and the command lines of its modes (`child`, `buckets`, `duel`,
//! `probe`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use deadbolt_bench::Res;

/// Go bbolt, run through bench/go/bboltbench.go when a Go toolchain is installed.
pub const GO_ENGINE: &str = "bbolt-go";
/// The environment variable that hands the built Go program to child processes.
const GO_ENV: &str = "DEADBOLT_BENCH_GO";

/// The Go program this process was handed, if it was built.
pub fn go_bin() -> Option<PathBuf> {
    std::env::var_os(GO_ENV).map(PathBuf::from)
}

/// The Go program, or an error for a mode that needs it.
pub fn built_go_bin() -> Res<PathBuf> {
    Ok(go_bin().ok_or("the Go program was not built")?)
}

/// Hand `bin` to this process's later child processes. Call it before this process starts any
/// thread: the environment is not safe to change while other threads read it.
pub fn hand_to_children(bin: &Path) {
    std::env::set_var(GO_ENV, bin);
}

/// The arguments of the Go program's `mode` for `n` (entries or commits) under `dir`.
pub fn mode_args(mode: &str, n: u64, dir: &Path) -> [OsString; 3] {
    [mode.into(), n.to_string().into(), dir.into()]
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
