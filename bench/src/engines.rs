//! One adapter per engine, each using the engine's published API with its default durability.

use std::ops::Range;
use std::path::Path;

use crate::buckets::{object, one_key_bucket, one_key_value, Walk, LABELS, ONE_KEY};
use crate::{key, nested_path, value, Engine, Res, KEY_LEN, TABLE};

/// deadbolt with default options (durable commits, 4 KiB pages).
pub struct Deadbolt {
    db: deadbolt::Db,
}

impl Deadbolt {
    pub fn open(dir: &Path) -> Res<Deadbolt> {
        std::fs::create_dir_all(dir)?;
        let db = deadbolt::Db::open_with(dir.join("deadbolt.db"), deadbolt::Options::default())?;
        db.update(|tx| {
            tx.create_bucket_if_not_exists(TABLE.as_bytes())?;
            Ok::<_, deadbolt::Error>(())
        })?;
        Ok(Deadbolt { db })
    }
}

impl Engine for Deadbolt {
    fn write(&self, r: Range<u64>) -> Res<()> {
        self.db.update(|tx| {
            let b = tx.create_bucket_if_not_exists(TABLE.as_bytes())?;
            for i in r {
                b.put(&key(i), &value(i))?;
            }
            Ok::<_, deadbolt::Error>(())
        })?;
        Ok(())
    }

    fn remove(&self, r: Range<u64>) -> Res<()> {
        self.db.update(|tx| {
            let b = tx.create_bucket_if_not_exists(TABLE.as_bytes())?;
            for i in r {
                b.delete(&key(i))?;
            }
            Ok::<_, deadbolt::Error>(())
        })?;
        Ok(())
    }

    fn get(&self, keys: &[[u8; KEY_LEN]]) -> Res<u64> {
        Ok(self.db.view(|tx| {
            let Some(b) = tx.bucket(TABLE.as_bytes())? else {
                return Ok(0);
            };
            let mut n = 0;
            for k in keys {
                if let Some(v) = b.get(k)? {
                    n += u64::from(!v.is_empty());
                }
            }
            Ok::<_, deadbolt::Error>(n)
        })?)
    }

    fn scan(&self, starts: &[[u8; KEY_LEN]], len: usize) -> Res<u64> {
        Ok(self.db.view(|tx| {
            let Some(b) = tx.bucket(TABLE.as_bytes())? else {
                return Ok(0);
            };
            let mut n = 0;
            for s in starts {
                for kv in b.range(s.as_slice()..).take(len) {
                    let (_k, v) = kv?;
                    n += u64::from(!v.is_empty());
                }
            }
            Ok::<_, deadbolt::Error>(n)
        })?)
    }

    fn nested_write(&self, r: Range<u64>) -> Res<()> {
        self.db.update(|tx| {
            for i in r {
                let (o, n) = nested_path(i);
                let b = tx
                    .create_bucket_if_not_exists(&o)?
                    .create_bucket_if_not_exists(&n)?;
                b.put(&key(i), &value(i))?;
            }
            Ok::<_, deadbolt::Error>(())
        })?;
        Ok(())
    }

    fn nested_get(&self, idx: &[u64]) -> Res<u64> {
        Ok(self.db.view(|tx| {
            let mut n = 0;
            for &i in idx {
                let (o, inner) = nested_path(i);
                let Some(ob) = tx.bucket(&o)? else { continue };
                let Some(ib) = ob.bucket(&inner)? else {
                    continue;
                };
                if ib.get(&key(i))?.is_some() {
                    n += 1;
                }
            }
            Ok::<_, deadbolt::Error>(n)
        })?)
    }

    fn nested_native(&self) -> bool {
        true
    }

    fn syncs(&self) -> Option<u64> {
        Some(self.db.stats().syncs)
    }

    fn compact(self: Box<Self>, dir: &Path) -> Res<Option<u64>> {
        let path = dir.join("deadbolt-compact.db");
        self.db.compact_into(&path)?;
        Ok(Some(std::fs::metadata(&path)?.len()))
    }

    fn objects_write(&self, r: Range<u64>) -> Res<()> {
        self.db.update(|tx| {
            for i in r {
                let o = object(i);
                let ob = tx.create_bucket_if_not_exists(o.ns)?.create_bucket(&o.id)?;
                for (k, v) in &o.fields {
                    ob.put(k, v)?;
                }
                let lb = ob.create_bucket(LABELS)?;
                for (k, v) in &o.labels {
                    lb.put(k, v)?;
                }
            }
            Ok::<_, deadbolt::Error>(())
        })?;
        Ok(())
    }

    fn objects_delete(&self, idx: &[u64]) -> Res<()> {
        self.db.update(|tx| {
            for &i in idx {
                let o = object(i);
                let nb = tx.bucket(o.ns)?.ok_or(deadbolt::Error::BucketNotFound)?;
                nb.delete_bucket(&o.id)?;
            }
            Ok::<_, deadbolt::Error>(())
        })?;
        Ok(())
    }

    fn one_key_write(&self, r: Range<u64>) -> Res<()> {
        self.db.update(|tx| {
            for i in r {
                tx.create_bucket(&one_key_bucket(i))?
                    .put(ONE_KEY, &one_key_value(i))?;
            }
            Ok::<_, deadbolt::Error>(())
        })?;
        Ok(())
    }

    fn walk(&self) -> Res<Walk> {
        Ok(self.db.view(|tx| {
            let mut w = Walk::default();
            let mut todo = Vec::new();
            for name in tx.buckets() {
                todo.push(tx.bucket(&name?)?.ok_or(deadbolt::Error::BucketNotFound)?);
            }
            while let Some(b) = todo.pop() {
                w.buckets += 1;
                let mut c = b.cursor();
                let mut at = c.first()?;
                while let Some(e) = at {
                    match &e.value {
                        Some(v) => w.key(v),
                        None => todo.push(c.open_bucket(&e.key)?),
                    }
                    at = c.next()?;
                }
            }
            Ok::<_, deadbolt::Error>(w)
        })?)
    }

    fn reopen(
        self: Box<Self>,
        dir: &Path,
        closed: &mut dyn FnMut() -> Res<()>,
    ) -> Res<Box<dyn Engine>> {
        self.db.close()?;
        closed()?;
        Ok(Box::new(Deadbolt::open(dir)?))
    }

    fn pages_read(&self) -> Option<u64> {
        Some(self.db.stats().pages_verified)
    }
}

#[cfg(feature = "peers")]
pub use peers::*;

#[cfg(feature = "peers")]
mod peers {
    use super::*;
    use std::ops::Bound;
    use std::path::PathBuf;

    use crate::buckets::{one_key_flat, prefix_end};
    use crate::{nested_flat_key, BUCKETS_TABLE, NESTED_TABLE};
    use bbolt_rs::{BucketApi, BucketRwApi, CursorApi, DbApi, DbRwAPI, TxApi, TxRwRefApi as _};
    use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

    const REDB_T: TableDefinition<&[u8], &[u8]> = TableDefinition::new(TABLE);
    const REDB_N: TableDefinition<&[u8], &[u8]> = TableDefinition::new(NESTED_TABLE);
    const REDB_B: TableDefinition<&[u8], &[u8]> = TableDefinition::new(BUCKETS_TABLE);

    /// redb with its default durability (`Durability::Immediate`).
    pub struct Redb {
        db: redb::Database,
        path: PathBuf,
    }

    impl Redb {
        pub fn open(dir: &Path) -> Res<Redb> {
            std::fs::create_dir_all(dir)?;
            let path = dir.join("redb.db");
            let db = redb::Database::create(&path)?;
            let tx = db.begin_write()?;
            tx.open_table(REDB_T)?;
            tx.open_table(REDB_N)?;
            tx.open_table(REDB_B)?;
            tx.commit()?;
            Ok(Redb { db, path })
        }

        fn put(&self, def: TableDefinition<&[u8], &[u8]>, r: Range<u64>, nested: bool) -> Res<()> {
            let tx = self.db.begin_write()?;
            {
                let mut t = tx.open_table(def)?;
                for i in r {
                    if nested {
                        t.insert(nested_flat_key(i).as_slice(), value(i).as_slice())?;
                    } else {
                        t.insert(key(i).as_slice(), value(i).as_slice())?;
                    }
                }
            }
            tx.commit()?;
            Ok(())
        }
    }

    impl Engine for Redb {
        fn write(&self, r: Range<u64>) -> Res<()> {
            self.put(REDB_T, r, false)
        }

        fn remove(&self, r: Range<u64>) -> Res<()> {
            let tx = self.db.begin_write()?;
            {
                let mut t = tx.open_table(REDB_T)?;
                for i in r {
                    t.remove(key(i).as_slice())?;
                }
            }
            tx.commit()?;
            Ok(())
        }

        fn get(&self, keys: &[[u8; KEY_LEN]]) -> Res<u64> {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(REDB_T)?;
            let mut n = 0;
            for k in keys {
                if let Some(v) = t.get(k.as_slice())? {
                    n += u64::from(!v.value().is_empty());
                }
            }
            Ok(n)
        }

        fn scan(&self, starts: &[[u8; KEY_LEN]], len: usize) -> Res<u64> {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(REDB_T)?;
            let mut n = 0;
            for s in starts {
                for kv in t.range(s.as_slice()..)?.take(len) {
                    let (_k, v) = kv?;
                    n += u64::from(!v.value().is_empty());
                }
            }
            Ok(n)
        }

        fn nested_write(&self, r: Range<u64>) -> Res<()> {
            self.put(REDB_N, r, true)
        }

        fn nested_get(&self, idx: &[u64]) -> Res<u64> {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(REDB_N)?;
            let mut n = 0;
            for &i in idx {
                n += u64::from(t.get(nested_flat_key(i).as_slice())?.is_some());
            }
            Ok(n)
        }

        fn nested_native(&self) -> bool {
            false
        }

        fn compact(mut self: Box<Self>, _dir: &Path) -> Res<Option<u64>> {
            self.db.compact()?;
            drop(self.db);
            Ok(Some(std::fs::metadata(&self.path)?.len()))
        }

        fn objects_write(&self, r: Range<u64>) -> Res<()> {
            let tx = self.db.begin_write()?;
            {
                let mut t = tx.open_table(REDB_B)?;
                for i in r {
                    for (k, v) in object(i).flat_entries() {
                        t.insert(k.as_slice(), v)?;
                    }
                }
            }
            tx.commit()?;
            Ok(())
        }

        fn objects_delete(&self, idx: &[u64]) -> Res<()> {
            let tx = self.db.begin_write()?;
            {
                let mut t = tx.open_table(REDB_B)?;
                for &i in idx {
                    let p = object(i).prefix();
                    let end = prefix_end(&p);
                    t.retain_in(p.as_slice()..end.as_slice(), |_, _| false)?;
                }
            }
            tx.commit()?;
            Ok(())
        }

        fn one_key_write(&self, r: Range<u64>) -> Res<()> {
            let tx = self.db.begin_write()?;
            {
                let mut t = tx.open_table(REDB_B)?;
                for i in r {
                    t.insert(one_key_flat(i).as_slice(), one_key_value(i).as_slice())?;
                }
            }
            tx.commit()?;
            Ok(())
        }

        fn walk(&self) -> Res<Walk> {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(REDB_B)?;
            let mut w = Walk::default();
            for kv in t.iter()? {
                w.key(kv?.1.value());
            }
            Ok(w)
        }

        fn reopen(
            self: Box<Self>,
            dir: &Path,
            closed: &mut dyn FnMut() -> Res<()>,
        ) -> Res<Box<dyn Engine>> {
            drop(self.db);
            closed()?;
            Ok(Box::new(Redb::open(dir)?))
        }

        fn tree_pages(&self) -> Res<Option<u64>> {
            let tx = self.db.begin_read()?;
            let st = tx.open_table(REDB_B)?.stats()?;
            Ok(Some(st.leaf_pages() + st.branch_pages()))
        }
    }

    type Bytes = heed::types::Bytes;

    /// LMDB through heed, with LMDB's default flags (durable commits, no WRITEMAP).
    pub struct Lmdb {
        env: &'static heed::Env,
        t: heed::Database<'static, Bytes, Bytes>,
        n: heed::Database<'static, Bytes, Bytes>,
        b: heed::Database<'static, Bytes, Bytes>,
    }

    impl Lmdb {
        pub fn open(dir: &Path) -> Res<Lmdb> {
            Lmdb::open_with_map_size(dir, 64 << 30)
        }

        /// [`Lmdb::open`] with a map (LMDB's reservation of address space for the file) of
        /// `bytes` instead of 64 GiB, which valgrind cannot reserve (it stops below 32 GiB).
        pub fn open_with_map_size(dir: &Path, bytes: usize) -> Res<Lmdb> {
            std::fs::create_dir_all(dir)?;
            let mut o = heed::EnvOpenOptions::new();
            o.map_size(bytes).max_dbs(4);
            // SAFETY: the directory is fresh and only this process opens it.
            let env = unsafe { o.open(dir)? };
            // heed ties database handles to the environment's lifetime; the process opens one
            // environment and exits, so leaking it is the simple way to keep both together.
            let env: &'static heed::Env = Box::leak(Box::new(env));
            let wtxn = env.write_txn()?;
            let (t, n, b) = env
                .create_databases_and_commit(wtxn, |wdo, wtxn| -> Res<_> {
                    let t = wdo.create_database::<Bytes, Bytes>(wtxn, Some(TABLE))?;
                    let n = wdo.create_database::<Bytes, Bytes>(wtxn, Some(NESTED_TABLE))?;
                    let b = wdo.create_database::<Bytes, Bytes>(wtxn, Some(BUCKETS_TABLE))?;
                    Ok(heed::CommitOrAbort::<_, ()>::Commit((t, n, b)))
                })?
                .unwrap_commit();
            Ok(Lmdb { env, t, n, b })
        }
    }

    impl Engine for Lmdb {
        fn write(&self, r: Range<u64>) -> Res<()> {
            let mut tx = self.env.write_txn()?;
            for i in r {
                self.t.put(&mut tx, &key(i), &value(i))?;
            }
            tx.commit()?;
            Ok(())
        }

        fn remove(&self, r: Range<u64>) -> Res<()> {
            let mut tx = self.env.write_txn()?;
            for i in r {
                self.t.delete(&mut tx, &key(i))?;
            }
            tx.commit()?;
            Ok(())
        }

        fn get(&self, keys: &[[u8; KEY_LEN]]) -> Res<u64> {
            let tx = self.env.read_txn()?;
            let mut n = 0;
            for k in keys {
                if let Some(v) = self.t.get(&tx, k)? {
                    n += u64::from(!v.is_empty());
                }
            }
            Ok(n)
        }

        fn scan(&self, starts: &[[u8; KEY_LEN]], len: usize) -> Res<u64> {
            let tx = self.env.read_txn()?;
            let mut n = 0;
            for s in starts {
                for kv in self
                    .t
                    .range(&tx, &(Bound::Included(s.as_slice()), Bound::Unbounded))?
                    .take(len)
                {
                    let (_k, v) = kv?;
                    n += u64::from(!v.is_empty());
                }
            }
            Ok(n)
        }

        fn nested_write(&self, r: Range<u64>) -> Res<()> {
            let mut tx = self.env.write_txn()?;
            for i in r {
                self.n.put(&mut tx, &nested_flat_key(i), &value(i))?;
            }
            tx.commit()?;
            Ok(())
        }

        fn nested_get(&self, idx: &[u64]) -> Res<u64> {
            let tx = self.env.read_txn()?;
            let mut n = 0;
            for &i in idx {
                n += u64::from(self.n.get(&tx, &nested_flat_key(i))?.is_some());
            }
            Ok(n)
        }

        fn nested_native(&self) -> bool {
            false
        }

        fn compact(self: Box<Self>, dir: &Path) -> Res<Option<u64>> {
            let path = dir.join("lmdb-compact.mdb");
            self.env
                .copy_to_path(&path, heed::CompactionOption::Enabled)?;
            Ok(Some(std::fs::metadata(&path)?.len()))
        }

        fn objects_write(&self, r: Range<u64>) -> Res<()> {
            let mut tx = self.env.write_txn()?;
            for i in r {
                for (k, v) in object(i).flat_entries() {
                    self.b.put(&mut tx, &k, v)?;
                }
            }
            tx.commit()?;
            Ok(())
        }

        fn objects_delete(&self, idx: &[u64]) -> Res<()> {
            let mut tx = self.env.write_txn()?;
            for &i in idx {
                let p = object(i).prefix();
                let end = prefix_end(&p);
                let range = (
                    Bound::Included(p.as_slice()),
                    Bound::Excluded(end.as_slice()),
                );
                self.b.delete_range(&mut tx, &range)?;
            }
            tx.commit()?;
            Ok(())
        }

        fn one_key_write(&self, r: Range<u64>) -> Res<()> {
            let mut tx = self.env.write_txn()?;
            for i in r {
                self.b.put(&mut tx, &one_key_flat(i), &one_key_value(i))?;
            }
            tx.commit()?;
            Ok(())
        }

        fn walk(&self) -> Res<Walk> {
            let tx = self.env.read_txn()?;
            let mut w = Walk::default();
            for kv in self.b.iter(&tx)? {
                w.key(kv?.1);
            }
            Ok(w)
        }

        /// LMDB is not closed: heed refuses to open an environment twice in one process and
        /// this adapter leaks its environment (see [`Lmdb::open`]). Closing would change nothing
        /// measured: LMDB's data file is only ever written at page offsets (not extended or
        /// truncated at close) and LMDB keeps no cache of its own, so `closed` measures the
        /// same file and the walk reads the same mapping a reopened environment would.
        fn reopen(
            self: Box<Self>,
            _dir: &Path,
            closed: &mut dyn FnMut() -> Res<()>,
        ) -> Res<Box<dyn Engine>> {
            self.env.force_sync()?;
            closed()?;
            Ok(self)
        }

        fn tree_pages(&self) -> Res<Option<u64>> {
            let tx = self.env.read_txn()?;
            let st = self.b.stat(&tx)?;
            Ok(Some(
                (st.branch_pages + st.leaf_pages + st.overflow_pages) as u64,
            ))
        }
    }

    /// sled 0.34 (the newest non-alpha release); a durable commit is the write plus `flush()`.
    pub struct Sled {
        db: sled::Db,
        t: sled::Tree,
        n: sled::Tree,
        b: sled::Tree,
    }

    impl Sled {
        pub fn open(dir: &Path) -> Res<Sled> {
            std::fs::create_dir_all(dir)?;
            let db = sled::Config::new().path(dir.join("sled")).open()?;
            let t = db.open_tree(TABLE)?;
            let n = db.open_tree(NESTED_TABLE)?;
            let b = db.open_tree(BUCKETS_TABLE)?;
            db.flush()?;
            Ok(Sled { db, t, n, b })
        }
    }

    impl Engine for Sled {
        fn write(&self, r: Range<u64>) -> Res<()> {
            let mut b = sled::Batch::default();
            for i in r {
                b.insert(key(i).as_slice(), value(i).as_slice());
            }
            self.t.apply_batch(b)?;
            self.db.flush()?;
            Ok(())
        }

        fn remove(&self, r: Range<u64>) -> Res<()> {
            let mut b = sled::Batch::default();
            for i in r {
                b.remove(key(i).as_slice());
            }
            self.t.apply_batch(b)?;
            self.db.flush()?;
            Ok(())
        }

        fn get(&self, keys: &[[u8; KEY_LEN]]) -> Res<u64> {
            let mut n = 0;
            for k in keys {
                if let Some(v) = self.t.get(k)? {
                    n += u64::from(!v.is_empty());
                }
            }
            Ok(n)
        }

        fn scan(&self, starts: &[[u8; KEY_LEN]], len: usize) -> Res<u64> {
            let mut n = 0;
            for s in starts {
                for kv in self.t.range(s.as_slice()..).take(len) {
                    let (_k, v) = kv?;
                    n += u64::from(!v.is_empty());
                }
            }
            Ok(n)
        }

        fn nested_write(&self, r: Range<u64>) -> Res<()> {
            let mut b = sled::Batch::default();
            for i in r {
                b.insert(nested_flat_key(i).as_slice(), value(i).as_slice());
            }
            self.n.apply_batch(b)?;
            self.db.flush()?;
            Ok(())
        }

        fn nested_get(&self, idx: &[u64]) -> Res<u64> {
            let mut n = 0;
            for &i in idx {
                n += u64::from(self.n.get(nested_flat_key(i))?.is_some());
            }
            Ok(n)
        }

        fn nested_native(&self) -> bool {
            false
        }

        fn compact(self: Box<Self>, _dir: &Path) -> Res<Option<u64>> {
            Ok(None)
        }

        fn objects_write(&self, r: Range<u64>) -> Res<()> {
            let mut b = sled::Batch::default();
            for i in r {
                for (k, v) in object(i).flat_entries() {
                    b.insert(k, v);
                }
            }
            self.b.apply_batch(b)?;
            self.db.flush()?;
            Ok(())
        }

        fn objects_delete(&self, idx: &[u64]) -> Res<()> {
            let mut b = sled::Batch::default();
            for &i in idx {
                for kv in self.b.scan_prefix(object(i).prefix()) {
                    b.remove(kv?.0);
                }
            }
            self.b.apply_batch(b)?;
            self.db.flush()?;
            Ok(())
        }

        fn one_key_write(&self, r: Range<u64>) -> Res<()> {
            let mut b = sled::Batch::default();
            for i in r {
                b.insert(one_key_flat(i), one_key_value(i).as_slice());
            }
            self.b.apply_batch(b)?;
            self.db.flush()?;
            Ok(())
        }

        fn walk(&self) -> Res<Walk> {
            let mut w = Walk::default();
            for kv in self.b.iter() {
                w.key(&kv?.1);
            }
            Ok(w)
        }

        fn reopen(
            self: Box<Self>,
            dir: &Path,
            closed: &mut dyn FnMut() -> Res<()>,
        ) -> Res<Box<dyn Engine>> {
            self.db.flush()?;
            drop(self);
            closed()?;
            // sled releases its file lock from its flusher thread, a moment after the last
            // handle is dropped: retry the lock for a bounded time (a bench on a busy machine
            // otherwise fails at random with "could not acquire lock").
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                match Sled::open(dir) {
                    Ok(s) => return Ok(Box::new(s)),
                    Err(e)
                        if e.to_string().contains("could not acquire lock")
                            && std::time::Instant::now() < deadline =>
                    {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// jammdb with default options.
    pub struct Jammdb {
        db: jammdb::DB,
    }

    impl Jammdb {
        pub fn open(dir: &Path) -> Res<Jammdb> {
            std::fs::create_dir_all(dir)?;
            let db = jammdb::DB::open(dir.join("jammdb.db"))?;
            let tx = db.tx(true)?;
            tx.get_or_create_bucket(TABLE)?;
            tx.commit()?;
            Ok(Jammdb { db })
        }
    }

    impl Engine for Jammdb {
        fn write(&self, r: Range<u64>) -> Res<()> {
            let tx = self.db.tx(true)?;
            {
                let b = tx.get_or_create_bucket(TABLE)?;
                for i in r {
                    // jammdb's put needs data that outlives the transaction: owned buffers.
                    b.put(key(i).to_vec(), value(i).to_vec())?;
                }
            }
            tx.commit()?;
            Ok(())
        }

        fn remove(&self, r: Range<u64>) -> Res<()> {
            let tx = self.db.tx(true)?;
            {
                let b = tx.get_or_create_bucket(TABLE)?;
                for i in r {
                    b.delete(key(i))?;
                }
            }
            tx.commit()?;
            Ok(())
        }

        fn get(&self, keys: &[[u8; KEY_LEN]]) -> Res<u64> {
            let tx = self.db.tx(false)?;
            let b = tx.get_bucket(TABLE)?;
            let mut n = 0;
            for k in keys {
                if let Some(jammdb::Data::KeyValue(kv)) = b.get(k) {
                    n += u64::from(!kv.value().is_empty());
                }
            }
            Ok(n)
        }

        fn scan(&self, starts: &[[u8; KEY_LEN]], len: usize) -> Res<u64> {
            let tx = self.db.tx(false)?;
            let b = tx.get_bucket(TABLE)?;
            let mut n = 0;
            for s in starts {
                for d in b.range(s.as_slice()..).take(len) {
                    if let jammdb::Data::KeyValue(kv) = d {
                        n += u64::from(!kv.value().is_empty());
                    }
                }
            }
            Ok(n)
        }

        fn nested_write(&self, r: Range<u64>) -> Res<()> {
            let tx = self.db.tx(true)?;
            for i in r {
                let (o, inner) = nested_path(i);
                let b = tx
                    .get_or_create_bucket(o.to_vec())?
                    .get_or_create_bucket(inner.to_vec())?;
                b.put(key(i).to_vec(), value(i).to_vec())?;
            }
            tx.commit()?;
            Ok(())
        }

        fn nested_get(&self, idx: &[u64]) -> Res<u64> {
            // jammdb's lookups need names that outlive the transaction.
            let paths: Vec<_> = idx.iter().map(|&i| nested_path(i)).collect();
            let tx = self.db.tx(false)?;
            let mut n = 0;
            for (&i, (o, inner)) in idx.iter().zip(&paths) {
                let Ok(ob) = tx.get_bucket(o.as_slice()) else {
                    continue;
                };
                let Ok(ib) = ob.get_bucket(inner.as_slice()) else {
                    continue;
                };
                n += u64::from(ib.get(key(i)).is_some());
            }
            Ok(n)
        }

        fn nested_native(&self) -> bool {
            true
        }

        fn compact(self: Box<Self>, _dir: &Path) -> Res<Option<u64>> {
            Ok(None)
        }

        fn objects_write(&self, r: Range<u64>) -> Res<()> {
            let tx = self.db.tx(true)?;
            for i in r {
                let o = object(i);
                let ob = tx
                    .get_or_create_bucket(o.ns)?
                    .create_bucket(o.id.to_vec())?;
                for (k, v) in o.fields {
                    ob.put(k, v)?;
                }
                let lb = ob.create_bucket(LABELS)?;
                for (k, v) in o.labels {
                    lb.put(k, v)?;
                }
            }
            tx.commit()?;
            Ok(())
        }

        fn objects_delete(&self, idx: &[u64]) -> Res<()> {
            let tx = self.db.tx(true)?;
            for &i in idx {
                let o = object(i);
                tx.get_bucket(o.ns)?.delete_bucket(o.id.to_vec())?;
            }
            tx.commit()?;
            Ok(())
        }

        fn one_key_write(&self, r: Range<u64>) -> Res<()> {
            let tx = self.db.tx(true)?;
            for i in r {
                tx.create_bucket(one_key_bucket(i))?
                    .put(ONE_KEY, one_key_value(i))?;
            }
            tx.commit()?;
            Ok(())
        }

        fn walk(&self) -> Res<Walk> {
            fn walk_bucket(b: &jammdb::Bucket<'_, '_>, w: &mut Walk) {
                w.buckets += 1;
                for kv in b.kv_pairs() {
                    w.key(kv.value());
                }
                for (_, sub) in b.buckets() {
                    walk_bucket(&sub, w);
                }
            }
            let tx = self.db.tx(false)?;
            let mut w = Walk::default();
            for (_, b) in tx.buckets() {
                walk_bucket(&b, &mut w);
            }
            Ok(w)
        }

        fn reopen(
            self: Box<Self>,
            dir: &Path,
            closed: &mut dyn FnMut() -> Res<()>,
        ) -> Res<Box<dyn Engine>> {
            drop(self);
            closed()?;
            Ok(Box::new(Jammdb::open(dir)?))
        }
    }

    /// bbolt-rs (a port of bbolt) with default options.
    pub struct BboltRs {
        db: bbolt_rs::Bolt,
    }

    impl BboltRs {
        pub fn open(dir: &Path) -> Res<BboltRs> {
            std::fs::create_dir_all(dir)?;
            let db = bbolt_rs::Bolt::open(dir.join("bbolt-rs.db"))?;
            Ok(BboltRs { db })
        }
    }

    impl Engine for BboltRs {
        fn write(&self, r: Range<u64>) -> Res<()> {
            let mut db = self.db.clone();
            db.update(|mut tx| {
                let mut b = tx.create_bucket_if_not_exists(TABLE)?;
                for i in r.clone() {
                    b.put(key(i), value(i))?;
                }
                Ok(())
            })?;
            Ok(())
        }

        fn remove(&self, r: Range<u64>) -> Res<()> {
            let mut db = self.db.clone();
            db.update(|mut tx| {
                let Some(mut b) = tx.bucket_mut(TABLE) else {
                    return Ok(());
                };
                for i in r.clone() {
                    b.delete(key(i))?;
                }
                Ok(())
            })?;
            Ok(())
        }

        fn get(&self, keys: &[[u8; KEY_LEN]]) -> Res<u64> {
            let mut n = 0;
            self.db.view(|tx| {
                if let Some(b) = tx.bucket(TABLE) {
                    for k in keys {
                        if let Some(v) = b.get(k) {
                            n += u64::from(!v.is_empty());
                        }
                    }
                }
                Ok(())
            })?;
            Ok(n)
        }

        fn scan(&self, starts: &[[u8; KEY_LEN]], len: usize) -> Res<u64> {
            let mut n = 0;
            self.db.view(|tx| {
                if let Some(b) = tx.bucket(TABLE) {
                    for s in starts {
                        let mut c = b.cursor();
                        let mut cur = c.seek(s);
                        let mut left = len;
                        while let Some((_k, v)) = cur {
                            if left == 0 {
                                break;
                            }
                            left -= 1;
                            n += u64::from(v.is_some_and(|v| !v.is_empty()));
                            cur = c.next();
                        }
                    }
                }
                Ok(())
            })?;
            Ok(n)
        }

        fn nested_write(&self, r: Range<u64>) -> Res<()> {
            let mut db = self.db.clone();
            db.update(|mut tx| {
                for i in r.clone() {
                    let (o, inner) = nested_path(i);
                    let mut ob = tx.create_bucket_if_not_exists(o)?;
                    let mut ib = ob.create_bucket_if_not_exists(inner)?;
                    ib.put(key(i), value(i))?;
                }
                Ok(())
            })?;
            Ok(())
        }

        fn nested_get(&self, idx: &[u64]) -> Res<u64> {
            let mut n = 0;
            self.db.view(|tx| {
                for &i in idx {
                    let (o, inner) = nested_path(i);
                    let Some(ob) = tx.bucket(o) else { continue };
                    let Some(ib) = ob.bucket(inner) else { continue };
                    n += u64::from(ib.get(key(i)).is_some());
                }
                Ok(())
            })?;
            Ok(n)
        }

        fn nested_native(&self) -> bool {
            true
        }

        fn compact(self: Box<Self>, dir: &Path) -> Res<Option<u64>> {
            let path = dir.join("bbolt-rs-compact.db");
            let mut dst = bbolt_rs::Bolt::open(&path)?;
            bbolt_rs::util::compact(&self.db, &mut dst, 64 << 20)?;
            // Check that the copy holds the data: report no figure rather than a wrong one.
            let (want, got) = (walk_bolt(&self.db)?, walk_bolt(&dst)?);
            drop(dst);
            if (want.keys, want.value_bytes) != (got.keys, got.value_bytes) {
                return Err(format!(
                    "bbolt_rs::util::compact copied {} of {} keys",
                    got.keys, want.keys
                )
                .into());
            }
            Ok(Some(std::fs::metadata(&path)?.len()))
        }

        fn objects_write(&self, r: Range<u64>) -> Res<()> {
            let mut db = self.db.clone();
            db.update(|mut tx| {
                for i in r.clone() {
                    let o = object(i);
                    let mut nb = tx.create_bucket_if_not_exists(o.ns)?;
                    let mut ob = nb.create_bucket(o.id)?;
                    for (k, v) in &o.fields {
                        ob.put(k, v)?;
                    }
                    let mut lb = ob.create_bucket(LABELS)?;
                    for (k, v) in &o.labels {
                        lb.put(k, v)?;
                    }
                }
                Ok(())
            })?;
            Ok(())
        }

        fn objects_delete(&self, idx: &[u64]) -> Res<()> {
            let mut db = self.db.clone();
            db.update(|mut tx| {
                for &i in idx {
                    let o = object(i);
                    if let Some(mut nb) = tx.bucket_mut(o.ns) {
                        nb.delete_bucket(o.id)?;
                    }
                }
                Ok(())
            })?;
            Ok(())
        }

        fn one_key_write(&self, r: Range<u64>) -> Res<()> {
            let mut db = self.db.clone();
            db.update(|mut tx| {
                for i in r.clone() {
                    tx.create_bucket(one_key_bucket(i))?
                        .put(ONE_KEY, one_key_value(i))?;
                }
                Ok(())
            })?;
            Ok(())
        }

        fn walk(&self) -> Res<Walk> {
            walk_bolt(&self.db)
        }

        fn reopen(
            self: Box<Self>,
            dir: &Path,
            closed: &mut dyn FnMut() -> Res<()>,
        ) -> Res<Box<dyn Engine>> {
            self.db.close();
            closed()?;
            Ok(Box::new(BboltRs::open(dir)?))
        }

        fn tree_pages(&self) -> Res<Option<u64>> {
            let mut pages = 0;
            self.db.view(|tx| {
                for (_, b) in tx.iter_buckets() {
                    let st = b.stats();
                    pages += st.branch_page_n()
                        + st.branch_overflow_n()
                        + st.leaf_page_n()
                        + st.leaf_overflow_n();
                }
                Ok(())
            })?;
            Ok(Some(pages as u64))
        }
    }

    /// Every bucket and key of a bbolt-rs database, in one read transaction.
    fn walk_bolt(db: &bbolt_rs::Bolt) -> Res<Walk> {
        fn walk_bucket(b: &bbolt_rs::BucketImpl<'_, '_>, w: &mut Walk) {
            w.buckets += 1;
            for (_, v) in b.iter_entries() {
                w.key(v);
            }
            for (_, sub) in b.iter_buckets() {
                walk_bucket(&sub, w);
            }
        }
        let mut w = Walk::default();
        db.view(|tx| {
            for (_, b) in tx.iter_buckets() {
                walk_bucket(&b, &mut w);
            }
            Ok(())
        })?;
        Ok(w)
    }
}
