//! The CLI's error type: a message for stderr and the exit status it maps to.
//!
//! Exit statuses are shared by every subcommand:
//! - 0: success (for `check`: the database is healthy);
//! - 1: the database is damaged (anything of a commit the file confirms durable fails to
//!   verify), or what was asked for (bucket, key) is not there;
//! - 2: the command could not run: bad usage, missing or unreadable file, not a database (a
//!   bbolt file among them), a deadbolt file of a format version this build cannot read, lock
//!   held by another process, or an I/O error.
use std::fmt;
use std::io;
use std::path::Path;

/// Exit status for a healthy run.
pub const EXIT_OK: i32 = 0;
/// Exit status for damage found, or a bucket or key that is not there.
pub const EXIT_DAMAGED: i32 = 1;
/// Exit status for a command that could not run.
pub const EXIT_CANNOT_RUN: i32 = 2;

/// A failure: what to print on stderr (nothing when `msg` is empty) and the exit status.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub msg: String,
}

impl CliError {
    /// The command could not run (exit 2).
    pub fn cannot_run(msg: impl Into<String>) -> CliError {
        CliError {
            code: EXIT_CANNOT_RUN,
            msg: msg.into(),
        }
    }

    /// Damage or a missing item (exit 1).
    pub fn damaged(msg: impl Into<String>) -> CliError {
        CliError {
            code: EXIT_DAMAGED,
            msg: msg.into(),
        }
    }

    /// Exit with `code` and print nothing (the output already said it all).
    pub fn quiet(code: i32) -> CliError {
        CliError {
            code,
            msg: String::new(),
        }
    }

    /// Usage error (exit 2), e.g. an argument that is not valid hex.
    pub fn usage(msg: impl Into<String>) -> CliError {
        CliError::cannot_run(msg)
    }

    /// A failure of the engine on `file`, classified: corruption is damage (exit 1), the rest
    /// means the command could not run (exit 2), except a missing bucket or key (exit 1).
    pub fn db(file: &Path, e: deadbolt::Error) -> CliError {
        let f = file.display();
        match e {
            deadbolt::Error::Corruption { .. } => {
                CliError::damaged(format!("{f}: database is damaged: {e}"))
            }
            deadbolt::Error::LockTimeout => CliError::cannot_run(format!(
                "{f}: database is locked: {e}; another process (a running daemon?) \
                 holds it open for writing. Stop it, or wait longer with --lock-timeout"
            )),
            // The engine's message says what the file is instead; for a bbolt file it names
            // `deadbolt import-bolt`, the way forward, so it is printed whole, never shortened.
            deadbolt::Error::InvalidFile(_) => CliError::cannot_run(format!("{f}: {e}")),
            // A file this build cannot read is not damaged: a scheduled `check` must not send
            // someone to restore a good file from backup. Both versions are named so that they
            // can tell which release reads it.
            deadbolt::Error::UnsupportedVersion { found, supported } => {
                CliError::cannot_run(format!(
                    "{f}: unsupported format version: the file is version {found}, this build \
                     reads version {supported}; use a deadbolt release that reads version \
                     {found} (the file was not changed)"
                ))
            }
            deadbolt::Error::Io(ref io) => CliError::cannot_run(format!("{f}: {}", io_reason(io))),
            deadbolt::Error::BucketNotFound | deadbolt::Error::IncompatibleValue => {
                CliError::damaged(format!("{f}: {e}"))
            }
            other => CliError::cannot_run(format!("{f}: {other}")),
        }
    }

    /// An I/O failure on `file` (exit 2).
    pub fn io(file: &Path, e: io::Error) -> CliError {
        CliError::cannot_run(format!("{}: {}", file.display(), io_reason(&e)))
    }
}

/// A short, human-readable reason for an I/O error.
pub fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => format!("i/o error: {e}"),
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

/// Writing to stdout failed. A closed pipe (`deadbolt dump db | head`) ends the command
/// quietly; anything else could not run.
impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            CliError::quiet(EXIT_OK)
        } else {
            CliError::cannot_run(format!("writing output: {e}"))
        }
    }
}

/// Attach the database file to an engine error.
pub trait At<T> {
    fn at(self, file: &Path) -> Result<T, CliError>;
}

impl<T> At<T> for Result<T, deadbolt::Error> {
    fn at(self, file: &Path) -> Result<T, CliError> {
        self.map_err(|e| CliError::db(file, e))
    }
}
