//! Quick inspection: `buckets`, `keys` and `get`.
use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use crate::error::{At, CliError};
use crate::util::{
    decode_args, display, find_bucket, format_bytes, open_read_only, ByteFormat, Ctx,
};

#[derive(clap::Args, Debug)]
pub struct BucketsArgs {
    /// Database file
    pub file: PathBuf,
    /// List the buckets nested in this bucket (a path: top-level name first)
    pub bucket: Vec<OsString>,
    /// Bucket names are given in hex
    #[arg(long)]
    pub hex: bool,
    /// How to print names
    #[arg(long, value_enum, default_value_t = ByteFormat::Auto)]
    pub format: ByteFormat,
}

#[derive(clap::Args, Debug)]
pub struct KeysArgs {
    /// Database file
    pub file: PathBuf,
    /// The bucket (a path: top-level name first, then nested names)
    #[arg(required = true)]
    pub bucket: Vec<OsString>,
    /// Bucket names are given in hex
    #[arg(long)]
    pub hex: bool,
    /// How to print keys
    #[arg(long, value_enum, default_value_t = ByteFormat::Auto)]
    pub format: ByteFormat,
    /// Print each key's value too, as KEY<TAB>VALUE
    #[arg(long)]
    pub values: bool,
}

#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// Database file
    pub file: PathBuf,
    /// The bucket (a path: top-level name first, then nested names)
    #[arg(required = true, num_args = 1..)]
    pub bucket: Vec<OsString>,
    /// The key
    pub key: OsString,
    /// Bucket names and the key are given in hex
    #[arg(long)]
    pub hex: bool,
    /// How to print the value ("raw" writes it exactly, without a trailing newline)
    #[arg(long, value_enum, default_value_t = ByteFormat::Auto)]
    pub format: ByteFormat,
}

pub fn buckets(a: BucketsArgs, ctx: &Ctx) -> Result<(), CliError> {
    let path = decode_args(&a.bucket, a.hex)?;
    let file = a.file.as_path();
    let db = open_read_only(file, ctx)?;
    let tx = db.begin_read().at(file)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut print = |name: &[u8]| -> Result<(), CliError> {
        out.write_all(&format_bytes(name, a.format))?;
        out.write_all(b"\n")?;
        Ok(())
    };
    if path.is_empty() {
        for name in tx.buckets() {
            print(&name.at(file)?)?;
        }
    } else {
        let b = find_bucket(&tx, file, &path)?;
        for name in b.buckets() {
            print(&name.at(file)?)?;
        }
    }
    out.flush()?;
    Ok(())
}

pub fn keys(a: KeysArgs, ctx: &Ctx) -> Result<(), CliError> {
    let path = decode_args(&a.bucket, a.hex)?;
    let file = a.file.as_path();
    let db = open_read_only(file, ctx)?;
    let tx = db.begin_read().at(file)?;
    let b = find_bucket(&tx, file, &path)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    for kv in b.iter() {
        let (k, v) = match kv {
            Ok(kv) => kv,
            Err(e) => {
                out.flush()?;
                return Err(CliError::db(file, e));
            }
        };
        out.write_all(&format_bytes(&k, a.format))?;
        if a.values {
            out.write_all(b"\t")?;
            out.write_all(&format_bytes(&v, a.format))?;
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

pub fn get(a: GetArgs, ctx: &Ctx) -> Result<(), CliError> {
    let path = decode_args(&a.bucket, a.hex)?;
    let Some(key) = decode_args(std::slice::from_ref(&a.key), a.hex)?.pop() else {
        return Err(CliError::usage("a key is required"));
    };
    let file = a.file.as_path();
    let db = open_read_only(file, ctx)?;
    let tx = db.begin_read().at(file)?;
    let b = find_bucket(&tx, file, &path)?;
    let value = b.get(&key).at(file)?;
    let Some(value) = value else {
        let what = if b.bucket(&key).at(file)?.is_some() {
            "is a bucket, not a key"
        } else {
            "not found"
        };
        return Err(CliError::damaged(format!(
            "{}: key {} in bucket {}: {what}",
            file.display(),
            display(&key),
            crate::util::display_path(&path)
        )));
    };
    let mut out = std::io::stdout().lock();
    out.write_all(&format_bytes(&value, a.format))?;
    if a.format != ByteFormat::Raw {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
