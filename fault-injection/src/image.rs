//! A file's bytes and the writes still pending on them: the media assumptions, what becomes of
//! a write on its way to the media, the unsynced window, and the frozen state a crash image is
//! built from, with the functions that apply pending ops to an image.
//!
//! Both the simulated disk (`disk.rs`) and the crash-image builder (`crash.rs`) work on these;
//! they live below both so that the two do not import each other (the disk calls into the
//! builder for the fsyncgate outcome of a failed sync, so the builder must not need the disk).

/// Media assumptions (fault model §8.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Media {
    /// Sector size in bytes (512 or 4096).
    pub sector: usize,
    /// Powersafe overwrite: bytes outside an unsynced write never change in a crash.
    pub psow: bool,
    /// Sector-write atomicity: a sector is either old or new (or garbage), never split.
    pub sector_atomic: bool,
}

impl Default for Media {
    fn default() -> Self {
        Media {
            sector: 512,
            psow: true,
            sector_atomic: true,
        }
    }
}

/// What happens to a write on its way to the media (F11, F12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Normal,
    /// Reported written and synced, never reaches media.
    Lost,
    /// Lands at this other (sector-aligned) offset instead.
    Misdirected(u64),
}

/// One unsynced operation.
#[derive(Clone, Debug)]
pub enum Pending {
    Write { off: u64, data: Vec<u8>, fate: Fate },
    SetLen(u64),
}

/// Everything a crash image is built from: the durable image, the unsynced ops in issue order,
/// and whether the file's directory entry was ever made durable (F6).
#[derive(Clone, Debug)]
pub struct CrashState {
    pub durable: Vec<u8>,
    pub pending: Vec<Pending>,
    pub current: Vec<u8>,
    pub dir_synced: bool,
    /// Mutating ops issued when the state was frozen.
    pub ops: u64,
}

/// The effect of a `create` that renamed `data` into place: the path names a new file holding
/// exactly `data`, durable as a file (it was synced before the rename). What was pending on the
/// old, empty file is gone with it. Whether the directory entry is durable is the caller's
/// business: it is only after a successful directory sync.
pub fn apply_create(
    durable: &mut Vec<u8>,
    current: &mut Vec<u8>,
    pending: &mut Vec<Pending>,
    data: &[u8],
) {
    *durable = data.to_vec();
    *current = data.to_vec();
    pending.clear();
}

/// Apply `data` at `off` to `buf`, growing it with zeros.
pub fn apply_write(buf: &mut Vec<u8>, off: u64, data: &[u8]) {
    let start = off as usize;
    let end = start + data.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[start..end].copy_from_slice(data);
}

/// Apply the pending ops to `durable` as a successful sync does (fates honoured).
pub fn apply_pending(durable: &mut Vec<u8>, pending: &[Pending]) {
    for p in pending {
        match p {
            Pending::Write { off, data, fate } => match fate {
                Fate::Normal => apply_write(durable, *off, data),
                Fate::Lost => {
                    // The size change of an extending write still happens (metadata), the data not.
                    let end = *off as usize + data.len();
                    if durable.len() < end {
                        durable.resize(end, 0);
                    }
                }
                Fate::Misdirected(to) => {
                    let end = *off as usize + data.len();
                    if durable.len() < end {
                        durable.resize(end, 0);
                    }
                    let to = *to as usize;
                    let n = data.len().min(durable.len().saturating_sub(to));
                    durable[to..to + n].copy_from_slice(&data[..n]);
                }
            },
            Pending::SetLen(n) => durable.resize(*n as usize, 0),
        }
    }
}
