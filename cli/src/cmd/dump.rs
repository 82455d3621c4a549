//! `deadbolt dump FILE`: every bucket and key, from one read transaction.
//!
//! The JSON-lines format is what scripts and tests compare, so it is written by hand, byte for
//! byte: `{"path":[...],"bucket":"<hex>","sequence":N}` for a bucket and
//! `{"path":[...],"key":"<hex>","value":"<hex>"}` for a key, where `path` lists the enclosing
//! buckets from the top, in hex. The walk is depth-first in key order: a bucket's line comes
//! before its keys and nested buckets, which are interleaved in key order.
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use deadbolt::{Bucket, Cursor, Entry};

use crate::cmd::stats::MAX_NESTING;
use crate::error::{At, CliError, EXIT_DAMAGED};
use crate::util::{display, display_path, hex, open_read_only, Ctx, Progress};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line, names, keys and values in hex
    Jsonl,
    /// An indented tree for people, printable names and values as text, the rest as 0x<hex>
    Text,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Database file
    pub file: PathBuf,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// On damage, report it on stderr, skip the damaged bucket (or the rest of it) and go on,
    /// to salvage what can be read; the exit status is still 1
    #[arg(long)]
    pub keep_going: bool,
}

struct Frame<'tx> {
    /// Path of this bucket, its own name last.
    path: Vec<Vec<u8>>,
    bucket: Bucket<'tx>,
    cursor: Cursor<'tx>,
    started: bool,
}

struct Writer<W: Write> {
    out: W,
    format: Format,
}

impl<W: Write> Writer<W> {
    fn path(&mut self, path: &[Vec<u8>]) -> std::io::Result<()> {
        self.out.write_all(b"{\"path\":[")?;
        for (i, p) in path.iter().enumerate() {
            if i > 0 {
                self.out.write_all(b",")?;
            }
            write!(self.out, "\"{}\"", hex(p))?;
        }
        self.out.write_all(b"]")
    }

    fn bucket(&mut self, parents: &[Vec<u8>], name: &[u8], sequence: u64) -> std::io::Result<()> {
        match self.format {
            Format::Jsonl => {
                self.path(parents)?;
                writeln!(
                    self.out,
                    ",\"bucket\":\"{}\",\"sequence\":{sequence}}}",
                    hex(name)
                )
            }
            Format::Text => writeln!(
                self.out,
                "{:indent$}{}/ (sequence {sequence})",
                "",
                display(name),
                indent = parents.len() * 2
            ),
        }
    }

    fn key(&mut self, parents: &[Vec<u8>], key: &[u8], value: &[u8]) -> std::io::Result<()> {
        match self.format {
            Format::Jsonl => {
                self.path(parents)?;
                writeln!(
                    self.out,
                    ",\"key\":\"{}\",\"value\":\"{}\"}}",
                    hex(key),
                    hex(value)
                )
            }
            Format::Text => writeln!(
                self.out,
                "{:indent$}{} = {}",
                "",
                display(key),
                display(value),
                indent = parents.len() * 2
            ),
        }
    }
}

/// Damage met during the walk, with where it was met.
fn damaged_at(file: &Path, path: &[Vec<u8>], e: deadbolt::Error) -> CliError {
    let mut err = CliError::db(file, e);
    if !path.is_empty() {
        err.msg = format!("{} (in bucket {})", err.msg, display_path(path));
    }
    err
}

pub fn run(a: Args, ctx: &Ctx) -> Result<(), CliError> {
    let file = a.file.as_path();
    // A dump must never end in success with less than the newest confirmed commit holds. Open
    // does not fall back past a confirmed commit: damage to it is an error here, exit 1 with
    // --keep-going too (there is nothing opened to walk on; `deadbolt salvage` copies what still
    // verifies). An unconfirmed commit it rolled back is noted on stderr by `open_read_only`.
    let db = open_read_only(file, ctx)?;
    let tx = db.begin_read().at(file)?;
    let progress = Progress::spinner(ctx.progress_while_streaming(), "dump: records");
    let mut walk = Walk {
        file,
        w: Writer {
            out: BufWriter::new(std::io::stdout().lock()),
            format: a.format,
        },
        progress: &progress,
        keep_going: a.keep_going,
        skipped: 0,
    };
    let res = walk.run(&tx);
    progress.finish();
    // Whatever was written before damage stopped the walk is valid output: hand it on.
    walk.w.out.flush()?;
    res?;
    if walk.skipped > 0 {
        return Err(CliError::damaged(format!(
            "{}: database is damaged: {} damaged part{} skipped",
            file.display(),
            walk.skipped,
            if walk.skipped == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

struct Walk<'a, W: Write> {
    file: &'a Path,
    w: Writer<W>,
    progress: &'a Progress,
    keep_going: bool,
    skipped: u64,
}

impl<W: Write> Walk<'_, W> {
    /// Damage met: stop, or with `--keep-going` report it and let the caller skip that part.
    /// Anything but damage (an I/O error, a closed output) always stops.
    fn damage(&mut self, e: CliError) -> Result<(), CliError> {
        if !self.keep_going || e.code != EXIT_DAMAGED {
            return Err(e);
        }
        self.w.out.flush()?;
        eprintln!("deadbolt: {} (skipped)", e.msg);
        self.skipped += 1;
        Ok(())
    }

    fn run(&mut self, tx: &deadbolt::Tx<'_>) -> Result<(), CliError> {
        let file = self.file;
        for name in tx.buckets() {
            let name = match name {
                Ok(n) => n.into_owned(),
                Err(e) => {
                    // The list of top-level buckets itself is damaged: nothing more to trust.
                    return self.damage(damaged_at(file, &[], e));
                }
            };
            let root = match tx.bucket(&name) {
                Ok(Some(b)) => b,
                Ok(None) => {
                    self.damage(vanished(file, &[], &name))?;
                    continue;
                }
                Err(e) => {
                    self.damage(damaged_at(file, &[name], e))?;
                    continue;
                }
            };
            self.w.bucket(&[], &name, root.sequence())?;
            self.progress.inc(1);
            let mut stack = vec![Frame {
                path: vec![name],
                cursor: root.cursor(),
                bucket: root,
                started: false,
            }];
            while let Some(top) = stack.last_mut() {
                let next = if top.started {
                    top.cursor.next()
                } else {
                    top.started = true;
                    top.cursor.first()
                };
                let entry = match next {
                    Ok(e) => e,
                    Err(e) => {
                        // The rest of this bucket cannot be reached: skip it.
                        let err = damaged_at(file, &top.path, e);
                        stack.pop();
                        self.damage(err)?;
                        continue;
                    }
                };
                match entry {
                    None => {
                        stack.pop();
                    }
                    Some(Entry {
                        key,
                        value: Some(value),
                    }) => {
                        self.w.key(&top.path, &key, &value)?;
                        self.progress.inc(1);
                    }
                    Some(Entry { key, value: None }) => {
                        let mut path = top.path.clone();
                        let child = match top.bucket.bucket(&key) {
                            Ok(Some(c)) => c,
                            Ok(None) => {
                                self.damage(vanished(file, &path, &key))?;
                                continue;
                            }
                            Err(e) => {
                                path.push(key.into_owned());
                                self.damage(damaged_at(file, &path, e))?;
                                continue;
                            }
                        };
                        self.w.bucket(&path, &key, child.sequence())?;
                        self.progress.inc(1);
                        path.push(key.into_owned());
                        if path.len() > MAX_NESTING {
                            self.damage(CliError::damaged(format!(
                                "{}: database is damaged: buckets nested deeper than \
                                 {MAX_NESTING} levels under {} (a cycle?)",
                                file.display(),
                                display_path(&path[..1])
                            )))?;
                            continue;
                        }
                        stack.push(Frame {
                            path,
                            cursor: child.cursor(),
                            bucket: child,
                            started: false,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// A name the cursor reported as a bucket that then could not be opened as one.
fn vanished(file: &Path, parents: &[Vec<u8>], name: &[u8]) -> CliError {
    CliError::damaged(format!(
        "{}: database is damaged: bucket {} is listed{} but cannot be opened",
        file.display(),
        display(name),
        if parents.is_empty() {
            String::new()
        } else {
            format!(" in {}", display_path(parents))
        }
    ))
}
