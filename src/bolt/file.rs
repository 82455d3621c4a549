//! A bbolt file whose meta has been chosen: the geometry (page size, high-water mark, pages in
//! the file) that every page access is checked against, and bounds-checked page access.
//! Choosing the meta is [`BoltFile::open_outcome`]'s.

use super::format::*;

/// A bbolt file whose meta has been chosen: the geometry every page access is checked against.
#[derive(Clone, Copy, Debug)]
pub struct BoltFile<'a> {
    bytes: &'a [u8],
    /// Page size in bytes.
    pub page_size: u32,
    /// The active meta's high-water mark (first never-allocated page id).
    pub high_water: u64,
    /// Whole pages in the file.
    pub file_pages: u64,
    /// `min(high_water, file_pages)`: page ids below this can be read.
    pub limit: u64,
    /// Root page of the root bucket (from the active meta).
    pub root_pgid: u64,
    /// Sequence of the root bucket.
    pub root_sequence: u64,
    /// Freelist page id, or [`PGID_NO_FREELIST`].
    pub freelist_pgid: u64,
    /// Transaction id of the active meta.
    pub txid: u64,
    /// Which meta is active (0 or 1).
    pub active_meta: u8,
    /// True when no meta validated and salvage chose one whose checksum is wrong.
    pub meta_unverified: bool,
}

impl<'a> BoltFile<'a> {
    /// The geometry of `bytes` read through meta `m` with page size `page_size` (the caller
    /// has chosen `m`; `unverified` when its checksum is wrong).
    pub(super) fn with_meta(
        bytes: &'a [u8],
        page_size: u32,
        m: &MetaInfo,
        unverified: bool,
    ) -> BoltFile<'a> {
        let file_pages = bytes.len() as u64 / u64::from(page_size);
        BoltFile {
            bytes,
            page_size,
            high_water: m.high_water_pgid,
            file_pages,
            limit: m.high_water_pgid.min(file_pages),
            root_pgid: m.root_pgid,
            root_sequence: m.root_sequence,
            freelist_pgid: m.freelist_pgid,
            txid: m.txid,
            active_meta: m.which,
            meta_unverified: unverified,
        }
    }

    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Load page `id` with its overflow span: the id must be below the high-water mark and
    /// inside the file, the header must name the page itself, and the span must fit too.
    /// The page type is the caller's to check.
    pub fn page(&self, id: u64) -> std::result::Result<(PageHeader, &'a [u8]), String> {
        if id >= self.high_water {
            let eof = if id >= self.file_pages {
                format!(
                    " and beyond the end of the file ({} pages)",
                    self.file_pages
                )
            } else {
                String::new()
            };
            return Err(format!(
                "page id {id} is at or beyond the high-water mark {}{eof}",
                self.high_water
            ));
        }
        if id >= self.file_pages {
            return Err(format!(
                "page id {id} lies beyond the end of the file ({} pages)",
                self.file_pages
            ));
        }
        let ps = u64::from(self.page_size);
        let start = id * ps; // id < file_pages, so this is < file length
        let start_us = usize::try_from(start).map_err(|_| "page offset too large".to_string())?;
        let head = slice_at(self.bytes, start_us, ps as usize)
            .ok_or_else(|| format!("page {id} is not inside the file"))?;
        let h = PageHeader::parse(head).ok_or_else(|| format!("page {id} header unreadable"))?;
        if h.id != id {
            return Err(format!(
                "page header identifies itself as page {} (flags {}), expected {id}",
                h.id,
                page_type_name(h.flags)
            ));
        }
        let end = id + 1 + u64::from(h.overflow); // no overflow: id < 2^64 / 4096, overflow < 2^32
        if end > self.high_water || end > self.file_pages {
            return Err(format!(
                "page {id} ({}) claims {} overflow pages, running past the high-water mark {} or the end of the file ({} pages)",
                page_type_name(h.flags),
                h.overflow,
                self.high_water,
                self.file_pages
            ));
        }
        let span =
            usize::try_from((end - id) * ps).map_err(|_| "page span too large".to_string())?;
        let data = slice_at(self.bytes, start_us, span)
            .ok_or_else(|| format!("page {id} span is not inside the file"))?;
        Ok((h, data))
    }
}
