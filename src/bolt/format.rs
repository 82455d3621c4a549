//! bbolt's on-disk layout (format version 2): bounds-checked decoding helpers, the meta page
//! and page headers. Nothing here indexes file bytes directly: every read goes through
//! [`u16_at`] / [`u32_at`] / [`u64_at`] / [`slice_at`], which return `None` past the end.

/// Size of a page header (`id u64, flags u16, count u16, overflow u32`).
pub const PAGE_HEADER_SIZE: usize = 16;
/// Size of a branch or leaf element.
pub const ELEMENT_SIZE: usize = 16;
/// Size of a bucket header (`root u64, sequence u64`).
pub const BUCKET_HEADER_SIZE: usize = 16;
/// Page flag: branch page.
pub const FLAG_BRANCH: u16 = 0x01;
/// Page flag: leaf page.
pub const FLAG_LEAF: u16 = 0x02;
/// Page flag: meta page.
pub const FLAG_META: u16 = 0x04;
/// Page flag: freelist page.
pub const FLAG_FREELIST: u16 = 0x10;
/// Leaf element flag: the value is a nested bucket header.
pub const LEAF_FLAG_BUCKET: u32 = 0x01;
/// The meta magic number.
pub const MAGIC: u32 = 0xED0C_DAED;
/// The only format version bbolt has written.
pub const VERSION: u32 = 2;
/// The meta's freelist field when no freelist is stored (`NoFreelistSync`).
pub const PGID_NO_FREELIST: u64 = u64::MAX;
/// Smallest page size accepted (bbolt has no lower bound; 512 is far below any real one).
pub const MIN_PAGE_SIZE: u32 = 512;
/// Largest page size accepted (64 KiB kernels exist; 1 MiB leaves margin).
pub const MAX_PAGE_SIZE: u32 = 1 << 20;
/// Offset of the meta body inside a meta page.
pub const META_OFFSET: usize = PAGE_HEADER_SIZE;
/// Bytes of the meta body covered by its checksum.
pub const META_CHECKSUMMED: usize = 56;
/// Bytes of a meta page that must exist to parse it (header + 64-byte body).
pub const META_PAGE_MIN: usize = META_OFFSET + 64;

/// A sub-slice `[off, off+len)` of `b`, or `None` when it does not fit.
pub fn slice_at(b: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    b.get(off..off.checked_add(len)?)
}

/// Little-endian `u16` at `off`.
pub fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = slice_at(b, off, 2)?;
    Some(u16::from_le_bytes(s.try_into().ok()?))
}

/// Little-endian `u32` at `off`.
pub fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = slice_at(b, off, 4)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

/// Little-endian `u64` at `off`.
pub fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let s = slice_at(b, off, 8)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}

/// 64-bit FNV-1a, the meta checksum.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Human name of a page flags value, as bbolt prints it.
pub fn page_type_name(flags: u16) -> String {
    match flags {
        FLAG_BRANCH => "branch".into(),
        FLAG_LEAF => "leaf".into(),
        FLAG_META => "meta".into(),
        FLAG_FREELIST => "freelist".into(),
        other => format!("unknown<{other:04x}>"),
    }
}

/// A page header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageHeader {
    /// The page id the header claims.
    pub id: u64,
    /// bbolt's page flags (branch 0x01, leaf 0x02, meta 0x04, freelist 0x10).
    pub flags: u16,
    /// Elements on the page.
    pub count: u16,
    /// Continuation pages after this one.
    pub overflow: u32,
}

impl PageHeader {
    /// Decode the 16-byte header at the start of `b`.
    pub fn parse(b: &[u8]) -> Option<PageHeader> {
        Some(PageHeader {
            id: u64_at(b, 0)?,
            flags: u16_at(b, 8)?,
            count: u16_at(b, 10)?,
            overflow: u32_at(b, 12)?,
        })
    }
}

/// One meta page as found in the file, with the verdict on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaInfo {
    /// 0 or 1.
    pub which: u8,
    /// Byte offset of the meta page in the file.
    pub offset: u64,
    /// The page header (None when the file is too short to hold it).
    pub header: Option<PageHeader>,
    /// bbolt's magic number (0xED0CDAED in a valid meta).
    pub magic: u32,
    /// bbolt's format version (2).
    pub version: u32,
    /// The page size the meta records.
    pub page_size: u32,
    /// The meta's flags field.
    pub flags: u32,
    /// The root bucket's root page.
    pub root_pgid: u64,
    /// The root bucket's sequence.
    pub root_sequence: u64,
    /// The freelist page (`u64::MAX` with NoFreelistSync).
    pub freelist_pgid: u64,
    /// Pages `[0, high_water_pgid)` are in use.
    pub high_water_pgid: u64,
    /// The transaction that wrote this meta.
    pub txid: u64,
    /// The FNV-1a checksum stored in the meta.
    pub checksum_stored: u64,
    /// The FNV-1a checksum of the meta's bytes as found.
    pub checksum_computed: u64,
    /// Why bbolt would reject this meta (magic, version, checksum), `None` when it validates.
    pub problem: Option<String>,
}

impl MetaInfo {
    /// Parse the meta page at byte `offset` of `file`. Never fails: a short file gives a meta
    /// whose `problem` says so.
    pub fn parse(file: &[u8], offset: u64, which: u8) -> MetaInfo {
        let mut m = MetaInfo {
            which,
            offset,
            header: None,
            magic: 0,
            version: 0,
            page_size: 0,
            flags: 0,
            root_pgid: 0,
            root_sequence: 0,
            freelist_pgid: 0,
            high_water_pgid: 0,
            txid: 0,
            checksum_stored: 0,
            checksum_computed: 0,
            problem: None,
        };
        let page = usize::try_from(offset)
            .ok()
            .and_then(|o| slice_at(file, o, META_PAGE_MIN));
        let Some(page) = page else {
            m.problem = Some(format!(
                "file of {} bytes is too short to hold meta page {which} at offset {offset}",
                file.len()
            ));
            return m;
        };
        let body = page.get(META_OFFSET..).unwrap_or(&[]);
        // The slice has exactly META_PAGE_MIN bytes, so every field below is present; the
        // helpers still return Option and a missing field would read as 0 and fail magic.
        m.header = PageHeader::parse(page);
        m.magic = u32_at(body, 0).unwrap_or(0);
        m.version = u32_at(body, 4).unwrap_or(0);
        m.page_size = u32_at(body, 8).unwrap_or(0);
        m.flags = u32_at(body, 12).unwrap_or(0);
        m.root_pgid = u64_at(body, 16).unwrap_or(0);
        m.root_sequence = u64_at(body, 24).unwrap_or(0);
        m.freelist_pgid = u64_at(body, 32).unwrap_or(0);
        m.high_water_pgid = u64_at(body, 40).unwrap_or(0);
        m.txid = u64_at(body, 48).unwrap_or(0);
        m.checksum_stored = u64_at(body, 56).unwrap_or(0);
        m.checksum_computed = fnv1a64(slice_at(body, 0, META_CHECKSUMMED).unwrap_or(&[]));
        m.problem = if m.magic != MAGIC {
            Some(format!(
                "invalid magic {:#010x} (expected {MAGIC:#010x})",
                m.magic
            ))
        } else if m.version != VERSION {
            Some(format!(
                "unsupported version {} (expected {VERSION})",
                m.version
            ))
        } else if m.checksum_stored != 0 && m.checksum_stored != m.checksum_computed {
            Some(format!(
                "bad checksum (stored {:016x}, computed {:016x})",
                m.checksum_stored, m.checksum_computed
            ))
        } else {
            None
        };
        m
    }

    /// True when bbolt would accept this meta (magic, version, checksum).
    pub fn valid(&self) -> bool {
        self.problem.is_none()
    }

    /// Magic and version are right (the checksum may still be wrong): salvage may use it.
    pub fn plausible(&self) -> bool {
        self.magic == MAGIC && self.version == VERSION && page_size_ok(self.page_size)
    }

    /// Structural sanity against the file: problems that make this meta unusable even though
    /// its checksum matches (root or freelist past the high-water mark, high-water mark past
    /// the end of the file).
    pub fn sanity_problems(&self, file_len: u64, page_size: u32) -> Vec<String> {
        let mut out = Vec::new();
        if self.page_size != page_size {
            out.push(format!(
                "page size {} differs from the file's page size {page_size}",
                self.page_size
            ));
        }
        if self.high_water_pgid < 4 {
            out.push(format!(
                "high-water mark {} is below 4",
                self.high_water_pgid
            ));
        }
        let file_pages = file_len / u64::from(page_size.max(1));
        if self.high_water_pgid > file_pages {
            out.push(format!(
                "high-water mark {} exceeds the {file_pages} pages in the file (truncated file?)",
                self.high_water_pgid
            ));
        }
        if self.root_pgid < 2 || self.root_pgid >= self.high_water_pgid {
            out.push(format!(
                "root page {} outside [2, high-water mark {})",
                self.root_pgid, self.high_water_pgid
            ));
        }
        if self.freelist_pgid != PGID_NO_FREELIST
            && (self.freelist_pgid < 2 || self.freelist_pgid >= self.high_water_pgid)
        {
            out.push(format!(
                "freelist page {} outside [2, high-water mark {})",
                self.freelist_pgid, self.high_water_pgid
            ));
        }
        out
    }
}

/// A page size deadbolt's reader accepts: a power of two in [`MIN_PAGE_SIZE`, `MAX_PAGE_SIZE`].
pub fn page_size_ok(ps: u32) -> bool {
    ps.is_power_of_two() && (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&ps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_vectors_from_reference() {
        // Fresh 4 KiB database, meta 0 (reference note, test vectors).
        let mut body = Vec::new();
        body.extend_from_slice(&MAGIC.to_le_bytes());
        body.extend_from_slice(&2u32.to_le_bytes());
        body.extend_from_slice(&4096u32.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        for v in [3u64, 0, 2, 4, 0] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(fnv1a64(&body), 0x0751_6e11_4689_fdee);
        body.truncate(48);
        body.extend_from_slice(&1u64.to_le_bytes());
        assert_eq!(fnv1a64(&body), 0x264c_351a_5179_480f);
    }

    #[test]
    fn short_reads_are_none() {
        let b = [1u8, 2, 3];
        assert_eq!(u16_at(&b, 1), Some(0x0302));
        assert_eq!(u16_at(&b, 2), None);
        assert_eq!(u64_at(&b, usize::MAX), None);
        assert_eq!(slice_at(&b, usize::MAX, 2), None);
        let m = MetaInfo::parse(&b, 0, 0);
        assert!(!m.valid());
    }
}
