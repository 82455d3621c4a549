//! Transactions (API stub).
use std::marker::PhantomData;

use crate::{Bucket, BucketNames, Result};

/// A read or write transaction.
pub struct Tx<'db> {
    _p: PhantomData<&'db ()>,
}

impl<'db> Tx<'db> {
    pub fn id(&self) -> u64 {
        todo!()
    }
    pub fn writable(&self) -> bool {
        todo!()
    }
    pub fn bucket(&self, _name: &[u8]) -> Result<Option<Bucket<'_>>> {
        todo!()
    }
    pub fn create_bucket(&self, _name: &[u8]) -> Result<Bucket<'_>> {
        todo!()
    }
    pub fn create_bucket_if_not_exists(&self, _name: &[u8]) -> Result<Bucket<'_>> {
        todo!()
    }
    pub fn delete_bucket(&self, _name: &[u8]) -> Result<()> {
        todo!()
    }
    pub fn buckets(&self) -> BucketNames<'_> {
        todo!()
    }
    pub fn commit(self) -> Result<()> {
        todo!()
    }
    pub fn rollback(self) {}
    /// Write a consistent copy of this transaction's snapshot, as a valid database file, to `w`.
    /// Returns the number of bytes written.
    pub fn copy_to(&self, _w: &mut dyn std::io::Write) -> Result<u64> {
        todo!()
    }
}
