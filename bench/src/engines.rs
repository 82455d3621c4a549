//! One adapter per engine, each using the engine's published API with its default durability.

use std::ops::Range;
use std::path::Path;

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
}

#[cfg(feature = "peers")]
pub use peers::*;

#[cfg(feature = "peers")]
mod peers {
    use super::*;
    use std::ops::Bound;
    use std::path::PathBuf;

    use crate::{nested_flat_key, NESTED_TABLE};
    use bbolt_rs::{BucketApi, BucketRwApi, CursorApi, DbApi, DbRwAPI, TxApi, TxRwRefApi as _};
    use redb::{ReadableDatabase, TableDefinition};

    const REDB_T: TableDefinition<&[u8], &[u8]> = TableDefinition::new(TABLE);
    const REDB_N: TableDefinition<&[u8], &[u8]> = TableDefinition::new(NESTED_TABLE);

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
    }

    type Bytes = heed::types::Bytes;

    /// LMDB through heed, with LMDB's default flags (durable commits, no WRITEMAP).
    pub struct Lmdb {
        env: &'static heed::Env,
        t: heed::Database<'static, Bytes, Bytes>,
        n: heed::Database<'static, Bytes, Bytes>,
    }

    impl Lmdb {
        pub fn open(dir: &Path) -> Res<Lmdb> {
            std::fs::create_dir_all(dir)?;
            let mut o = heed::EnvOpenOptions::new();
            o.map_size(64 << 30).max_dbs(4);
            // SAFETY: the directory is fresh and only this process opens it.
            let env = unsafe { o.open(dir)? };
            // heed ties database handles to the environment's lifetime; the process opens one
            // environment and exits, so leaking it is the simple way to keep both together.
            let env: &'static heed::Env = Box::leak(Box::new(env));
            let wtxn = env.write_txn()?;
            let (t, n) = env
                .create_databases_and_commit(wtxn, |wdo, wtxn| -> Res<_> {
                    let t = wdo.create_database::<Bytes, Bytes>(wtxn, Some(TABLE))?;
                    let n = wdo.create_database::<Bytes, Bytes>(wtxn, Some(NESTED_TABLE))?;
                    Ok(heed::CommitOrAbort::<_, ()>::Commit((t, n)))
                })?
                .unwrap_commit();
            Ok(Lmdb { env, t, n })
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
    }

    /// sled 0.34 (the newest non-alpha release); a durable commit is the write plus `flush()`.
    pub struct Sled {
        db: sled::Db,
        t: sled::Tree,
        n: sled::Tree,
    }

    impl Sled {
        pub fn open(dir: &Path) -> Res<Sled> {
            std::fs::create_dir_all(dir)?;
            let db = sled::Config::new().path(dir.join("sled")).open()?;
            let t = db.open_tree(TABLE)?;
            let n = db.open_tree(NESTED_TABLE)?;
            db.flush()?;
            Ok(Sled { db, t, n })
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
            let (mut want, mut got) = (0u64, 0u64);
            self.db.view(|tx| {
                if let Some(b) = tx.bucket(TABLE) {
                    want = b.iter_entries().count() as u64;
                }
                Ok(())
            })?;
            dst.view(|tx| {
                if let Some(b) = tx.bucket(TABLE) {
                    got = b.iter_entries().count() as u64;
                }
                Ok(())
            })?;
            drop(dst);
            if want != got {
                return Err(
                    format!("bbolt_rs::util::compact copied {got} of {want} entries").into(),
                );
            }
            Ok(Some(std::fs::metadata(&path)?.len()))
        }
    }
}
