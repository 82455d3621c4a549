//! Open: choose the commit to open at (docs/FORMAT.md, section 8), roll back only an
//! unconfirmed commit that does not verify, and settle both meta slots on a writable open.

use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::format::meta::{decode_metas, initial_image, valid_page_size, Meta, MAX_PAGE, MIN_PAGE};
use crate::storage::Storage;
use crate::store::confirm::{write_confirmation, write_meta};
use crate::store::free::FreeState;
use crate::store::mvcc::Arc;
use crate::store::shared::{Options, Snapshot, Store};

/// What open found.
#[derive(Clone, Debug, Default)]
pub struct Recovery {
    /// The commit the database opened at.
    pub txid: u64,
    /// Newest commit whose durability the file confirms (a later commit's meta, or a
    /// confirmation written after it was synced). Open never goes back past it.
    pub confirmed: u64,
    /// A newer, *unconfirmed* commit whose meta page was intact but whose pages did not all
    /// verify: a commit interrupted by a crash (or damaged before anything confirmed it). It
    /// was not used. A confirmed commit that fails is never rolled back: open returns
    /// [`Error::Corruption`] instead.
    pub rolled_back: Option<RolledBack>,
    /// A meta slot that could not be decoded at all (normal after a crash during a meta write).
    pub damaged_meta: Option<String>,
    /// Tree pages (spans) open verified, over every candidate it tried: the pages written since
    /// the last sync (docs/FORMAT.md, section 8), so bounded by what the last commits wrote,
    /// never by the size of the file. The free-list chain it loads is not counted.
    pub pages_verified: u64,
}

/// A newer commit that open found incomplete or damaged and did not use. It was never
/// confirmed durable (`txid` is above [`Recovery::confirmed`]).
#[derive(Clone, Debug)]
pub struct RolledBack {
    /// The commit that was not used.
    pub txid: u64,
    /// Why it did not verify.
    pub reason: String,
}

/// What [`Store::choose_commit`] found.
struct Chosen {
    meta: Meta,
    free: FreeState,
    /// The newest confirmed txid.
    confirmed: u64,
    /// The unconfirmed commit rolled back on the way, if any.
    rolled_back: Option<RolledBack>,
    /// Tree pages verified over all candidates.
    pages_verified: u64,
}

impl Store {
    /// Open the store on `storage`: initialise an empty one (atomically, through
    /// [`Storage::create`]), decode both metas, choose the commit to open at, publish it, and
    /// on a writable open settle both meta slots. A failed open writes nothing.
    pub(crate) fn open(storage: Arc<dyn Storage>, opts: Options) -> Result<(Store, Recovery)> {
        if storage.len()? == 0 {
            create(&*storage, &opts)?;
        }
        let view = storage.view()?;
        let bytes = view.bytes();
        let (page_size, metas, damaged) = decode_metas(bytes)?;
        let mut store = Store::new(storage, opts, page_size, view.clone(), &metas);
        let chosen = store.choose_commit(bytes, &metas)?;
        let meta = chosen.meta;
        let recovery = Recovery {
            txid: meta.txid,
            confirmed: chosen.confirmed,
            rolled_back: chosen.rolled_back,
            pages_verified: chosen.pages_verified,
            damaged_meta: (!damaged.is_empty()).then(|| damaged.join("; ")),
        };
        store.shared.publish(Snapshot { meta, view }, meta.txid);
        let w = store.writer.get_mut();
        w.free = chosen.free;
        w.last_synced = meta.txid;
        w.next_slot = 1 - meta.slot;
        w.synced_hwm = meta.hwm;
        w.confirmed = chosen.confirmed;
        store
            .counters
            .confirmed
            .store(chosen.confirmed, Ordering::Relaxed);
        store.counters.publish(w);
        if !store.opts.read_only {
            store.settle_after_open(&meta, &metas)?;
            // Both slots describe `meta` now: the next commit keeps the confirmation.
            store.writer.get_mut().next_slot = meta.slot;
        }
        Ok((store, recovery))
    }

    /// Choose the commit to open at (docs/FORMAT.md, section 8): the newest valid meta whose
    /// commit verifies. An unconfirmed commit that fails is rolled back (reported); a confirmed
    /// one that fails is `Error::Corruption`, never a fallback to an older state.
    fn choose_commit(&self, bytes: &[u8], metas: &[Meta]) -> Result<Chosen> {
        let confirmed = metas.iter().map(Meta::confirms).max().unwrap_or(0);
        // One candidate per txid: a commit and its confirmation copy must say the same.
        let mut candidates: Vec<Meta> = Vec::new();
        for m in metas {
            match candidates.last() {
                Some(c) if c.txid == m.txid => {
                    if *c != m.plain() {
                        return Err(Error::corrupt(
                            m.slot(),
                            format!("the two meta slots disagree about commit {}", m.txid),
                        ));
                    }
                }
                _ => candidates.push(m.plain()),
            }
        }
        let mut rolled_back = None;
        let mut failures = Vec::new();
        let mut pages_verified = 0;
        for m in &candidates {
            // Only what followed the last sync can be torn: the commits after the meta's
            // durable base. A confirmed commit was synced whole, so of it open re-reads only the
            // pages the commit itself wrote (damage to what was acknowledged last is found
            // here; older pages are verified when first read). Without this a `no_sync`
            // lifetime, whose durable base stays at the open that began it, made the next open
            // read every page written since.
            let base = if m.txid <= confirmed {
                m.txid.saturating_sub(1).max(m.durable_base)
            } else {
                m.durable_base
            };
            let before = self.counters.pages_verified.load(Ordering::Relaxed);
            let r = self.verify_commit(bytes, m, base);
            pages_verified += self.counters.pages_verified.load(Ordering::Relaxed) - before;
            let r = r.and_then(|_| self.load_freelist(bytes, m));
            match r {
                Ok(free) => {
                    return Ok(Chosen {
                        meta: *m,
                        free,
                        confirmed,
                        rolled_back,
                        pages_verified,
                    })
                }
                Err(Error::Corruption { page, detail }) if m.txid <= confirmed => {
                    return Err(Error::Corruption {
                        page,
                        detail: format!(
                            "{detail} (in commit {}, whose durability is confirmed: it is not \
                             rolled back; `deadbolt salvage` copies what still verifies)",
                            m.txid
                        ),
                    });
                }
                Err(e) if m.txid <= confirmed => return Err(e),
                Err(e) => {
                    failures.push(format!("txid {}: {e}", m.txid));
                    rolled_back.get_or_insert(RolledBack {
                        txid: m.txid,
                        reason: format!("unconfirmed commit {} did not verify: {e}", m.txid),
                    });
                }
            }
        }
        Err(Error::corrupt(
            candidates.first().map_or(0, |m| m.slot),
            format!("no commit verifies: {}", failures.join("; ")),
        ))
    }

    /// After a writable open at `meta`: make everything open verified durable (a process crash
    /// may have left it in the page cache only), then make sure both slots describe `meta`:
    /// its own meta in its slot (where open found it, or the other one than its confirmation)
    /// and its confirmation in the other. Each is written (and
    /// synced) only if it is not there already, the own slot first, so that at every moment one
    /// slot names `meta`. Writing them also replaces whatever those slots held: an older commit
    /// (no longer needed once this one is confirmed), a newer one that was rolled back, or a
    /// torn meta. None of those may stay. The next commit overwrites one of the two (`meta`'s
    /// own slot, keeping the confirmation), so the other must hold `meta` (else a crash in that
    /// commit would leave no valid meta at all), and a rolled-back commit left in a slot could,
    /// under a torn write of it, come back to life.
    fn settle_after_open(&self, meta: &Meta, metas: &[Meta]) -> Result<()> {
        self.storage.sync_data()?;
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        let has = |confirmation: bool| {
            metas
                .iter()
                .any(|m| m.confirmation == confirmation && m.txid == meta.txid)
        };
        let mut w = self.writer.lock();
        if !has(false) {
            write_meta(self, &mut w, meta, "repairing the meta of")?;
        }
        if !has(true) {
            write_confirmation(self, &mut w, meta)?;
        }
        Ok(())
    }
}

/// Initialise an empty storage with the image of a new database, in one atomic step.
fn create(storage: &dyn Storage, opts: &Options) -> Result<()> {
    if opts.read_only {
        return Err(Error::InvalidFile("empty file".into()));
    }
    if !valid_page_size(opts.page_size) {
        return Err(Error::InvalidArgument(format!(
            "page size {} is not a power of two from {MIN_PAGE} to {MAX_PAGE}",
            opts.page_size
        )));
    }
    storage.create(&initial_image(opts.page_size))?;
    Ok(())
}
