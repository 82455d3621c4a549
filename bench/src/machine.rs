//! Facts about the machine for the report's Machine section.

use std::path::Path;
use std::process::Command;

/// The trimmed stdout of `cmd args`, or "unknown" if it cannot run or fails.
pub fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The Machine section's lines: CPU, RAM, kernel, the database directory's file system,
/// toolchain and load average.
pub fn machine(base: &Path) -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .nth(1)
        .and_then(|k| k.parse::<u64>().ok())
        .map_or("unknown".into(), |k| format!("{} GiB", k / (1 << 20)));
    let threads = std::thread::available_parallelism().map_or(0, |p| p.get());
    vec![
        format!("CPU: {cpu}, {threads} hardware threads; RAM: {mem}"),
        format!("Kernel: {}", sh("uname", &["-sr"])),
        format!(
            "Database directory: `{}` on {} (real files; syncs reach the device)",
            base.display(),
            sh(
                "findmnt",
                &["-n", "-o", "FSTYPE", "-T", &base.to_string_lossy()]
            )
        ),
        format!("Toolchain: {}", sh("rustc", &["-V"])),
        format!(
            "Load average when the run started: {}",
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        ),
    ]
}
