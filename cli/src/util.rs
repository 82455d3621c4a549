//! Helpers shared by the subcommands: opening a database for inspection, byte formatting,
//! argument decoding and progress bars.
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use deadbolt::{Bucket, Db, Options, Tx};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::{At, CliError};

/// Settings from the global flags.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// How long to wait for the file lock (`None`: forever).
    pub lock_timeout: Option<Duration>,
    /// Progress bars are allowed (stderr is a terminal and `--no-progress` was not given).
    pub progress: bool,
}

impl Ctx {
    /// Progress for a command that also streams its result to stdout: drawn only when stdout
    /// is not the same terminal, so that bar and output do not interleave.
    pub fn progress_while_streaming(&self) -> bool {
        self.progress && !std::io::stdout().is_terminal()
    }
}

/// The `--lock-timeout` value (`None`: wait forever).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockTimeout(pub Option<Duration>);

/// Parse a `--lock-timeout` value: `500ms`, `2s`, `1m`, a bare number of seconds, or
/// `forever`/`none`/`inf` to wait without limit.
pub fn parse_timeout(s: &str) -> Result<LockTimeout, String> {
    let t = s.trim();
    if matches!(t, "forever" | "none" | "inf" | "infinite") {
        return Ok(LockTimeout(None));
    }
    let (num, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (try 500ms, 2s, 1m or forever)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit in `{s}` (use ms, s or m)")),
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(LockTimeout(Some(Duration::from_secs_f64(secs))))
}

/// Open an existing database read-only (shared lock) for inspection. A missing path, a
/// directory or an unreadable file is reported here, before the engine could create anything.
///
/// When open rolled back an unconfirmed newest commit, a note on stderr says so: what the
/// command then reads (dumps, copies) is the commit before it, and whoever runs it must not
/// take that for the newest data without being told. It is a note, not an error: that commit
/// was never confirmed durable (a crash interrupted it), so nothing the file promised is lost.
pub fn open_read_only(file: &Path, ctx: &Ctx) -> Result<Db, CliError> {
    let db = open_read_only_engine(file, ctx)?.at(file)?;
    let r = db.recovery();
    if let Some(rb) = &r.rolled_back {
        eprintln!(
            "deadbolt: note: {}: commit {} was never confirmed durable and was rolled back at \
             open; reading commit {}: {}",
            file.display(),
            rb.txid,
            r.txid,
            rb.reason
        );
    }
    Ok(db)
}

/// [`open_read_only`] that hands back the engine's own error, for callers that classify it.
pub fn open_read_only_engine(
    file: &Path,
    ctx: &Ctx,
) -> Result<Result<Db, deadbolt::Error>, CliError> {
    let meta = std::fs::metadata(file).map_err(|e| CliError::io(file, e))?;
    if meta.is_dir() {
        return Err(CliError::cannot_run(format!(
            "{}: is a directory, not a database file",
            file.display()
        )));
    }
    // Probe readability so that permission problems are reported as such.
    std::fs::File::open(file).map_err(|e| CliError::io(file, e))?;
    let opts = Options {
        read_only: true,
        lock_timeout: ctx.lock_timeout,
        ..Default::default()
    };
    Ok(Db::open_with(file, opts))
}

/// Lowercase hex of `b`.
pub fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}

/// Decode hex (an optional `0x` prefix is allowed).
pub fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let t = s.strip_prefix("0x").unwrap_or(s);
    if !t.len().is_multiple_of(2) {
        return Err(format!("`{s}` is not valid hex: odd number of digits"));
    }
    let digit = |c: u8| -> Result<u8, String> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(format!("`{s}` is not valid hex")),
        }
    };
    t.as_bytes()
        .chunks(2)
        .map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// How keys and values are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ByteFormat {
    /// Text when the bytes are printable UTF-8, otherwise hex with a `0x` prefix.
    Auto,
    /// Always lowercase hex.
    Hex,
    /// UTF-8 text, with anything unprintable escaped.
    Text,
    /// The bytes exactly as stored (for `get`: no trailing newline).
    Raw,
}

/// True when `b` is non-empty UTF-8 without control characters and not hex-looking.
fn printable(b: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.starts_with("0x") || s.chars().any(|c| c.is_control()) {
        return None;
    }
    Some(s)
}

/// Show bytes in the `auto` style: printable text as is, anything else as `0x<hex>`.
pub fn display(b: &[u8]) -> String {
    match printable(b) {
        Some(s) => s.to_string(),
        None => format!("0x{}", hex(b)),
    }
}

/// Show a bucket path (names separated by `/`).
pub fn display_path(path: &[Vec<u8>]) -> String {
    if path.is_empty() {
        return "(root)".into();
    }
    path.iter()
        .map(|n| display(n))
        .collect::<Vec<_>>()
        .join("/")
}

/// Format bytes for a line of output.
pub fn format_bytes(b: &[u8], f: ByteFormat) -> Vec<u8> {
    match f {
        ByteFormat::Auto => display(b).into_bytes(),
        ByteFormat::Hex => hex(b).into_bytes(),
        ByteFormat::Text => String::from_utf8_lossy(b)
            .chars()
            .flat_map(|c| {
                if c.is_control() {
                    c.escape_default().collect::<Vec<_>>()
                } else {
                    vec![c]
                }
            })
            .collect::<String>()
            .into_bytes(),
        ByteFormat::Raw => b.to_vec(),
    }
}

/// Arguments naming buckets and keys, decoded from the command line: raw bytes of the
/// argument, or hex with `--hex`.
pub fn decode_args(args: &[OsString], hex_args: bool) -> Result<Vec<Vec<u8>>, CliError> {
    args.iter()
        .map(|a| {
            if hex_args {
                let s = a
                    .to_str()
                    .ok_or_else(|| CliError::usage(format!("{a:?} is not valid hex")))?;
                unhex(s).map_err(CliError::usage)
            } else {
                Ok(os_bytes(a))
            }
        })
        .collect()
}

#[cfg(unix)]
fn os_bytes(a: &OsString) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    a.as_os_str().as_bytes().to_vec()
}

#[cfg(not(unix))]
fn os_bytes(a: &OsString) -> Vec<u8> {
    a.to_string_lossy().into_owned().into_bytes()
}

/// Find the bucket at `path` (non-empty) in `tx`. A missing bucket is exit 1.
pub fn find_bucket<'tx>(
    tx: &'tx Tx<'_>,
    file: &Path,
    path: &[Vec<u8>],
) -> Result<Bucket<'tx>, CliError> {
    if path.is_empty() {
        return Err(CliError::usage("a bucket name is required"));
    }
    tx.bucket_path(path).at(file)?.ok_or_else(|| {
        CliError::damaged(format!(
            "{}: bucket not found: {}",
            file.display(),
            display_path(path)
        ))
    })
}

/// A progress bar (or spinner) on stderr, or nothing at all.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar over `total` units, drawn only if `enabled`.
    pub fn bar(enabled: bool, total: u64, msg: &str, unit_bytes: bool) -> Progress {
        if !enabled {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let template = if unit_bytes {
            "{msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta})"
        } else {
            "{msg} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({eta})"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_message(msg.to_string());
        Progress { bar: Some(bar) }
    }

    /// A spinner with a running count, for work of unknown size.
    pub fn spinner(enabled: bool, msg: &str) -> Progress {
        if !enabled {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}] {human_pos}")
        {
            bar.set_style(style);
        }
        bar.set_message(msg.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar: Some(bar) }
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    pub fn set(&self, done: u64, total: u64) {
        if let Some(b) = &self.bar {
            if b.length() != Some(total) {
                b.set_length(total);
            }
            b.set_position(done);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A writer that advances a progress bar by the bytes written.
pub struct CountingWriter<'a, W: Write> {
    pub inner: W,
    pub progress: &'a Progress,
    pub written: u64,
    /// The last write error, so that a caller can blame the destination, not the source.
    pub failed: Option<String>,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf).inspect_err(|e| {
            self.failed = Some(crate::error::io_reason(e));
        })?;
        self.written += n as u64;
        self.progress.inc(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&b), "0001abff");
        assert_eq!(unhex("0001abff").unwrap(), b);
        assert_eq!(unhex("0x0001ABFF").unwrap(), b);
        assert!(unhex("abc").is_err());
        assert!(unhex("zz").is_err());
    }

    #[test]
    fn display_styles() {
        assert_eq!(display(b"users"), "users");
        assert_eq!(display(b"\x00\x01"), "0x0001");
        assert_eq!(display(b""), "0x");
        assert_eq!(display(b"0x12"), "0x30783132");
        assert_eq!(display_path(&[b"a".to_vec(), b"\xff".to_vec()]), "a/0xff");
    }

    #[test]
    fn timeouts() {
        let t = |s| parse_timeout(s).unwrap().0;
        assert_eq!(t("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(t("2"), Some(Duration::from_secs(2)));
        assert_eq!(t("1m"), Some(Duration::from_secs(60)));
        assert_eq!(t("forever"), None);
        assert!(parse_timeout("2h").is_err());
        assert!(parse_timeout("x").is_err());
    }
}
