//! Buckets (API stub).
use std::borrow::Cow;
use std::marker::PhantomData;
use std::ops::RangeBounds;

use crate::{Cursor, Result};

/// A bucket inside a transaction.
pub struct Bucket<'tx> {
    _p: PhantomData<&'tx ()>,
}

/// Iterator over key/value pairs (nested buckets are skipped).
pub struct Iter<'tx> {
    _p: PhantomData<&'tx ()>,
}

impl<'tx> Iterator for Iter<'tx> {
    type Item = Result<(Cow<'tx, [u8]>, Cow<'tx, [u8]>)>;
    fn next(&mut self) -> Option<Self::Item> {
        todo!()
    }
}
impl<'tx> DoubleEndedIterator for Iter<'tx> {
    fn next_back(&mut self) -> Option<Self::Item> {
        todo!()
    }
}

/// Iterator over nested bucket names.
pub struct BucketNames<'tx> {
    _p: PhantomData<&'tx ()>,
}
impl<'tx> Iterator for BucketNames<'tx> {
    type Item = Result<Cow<'tx, [u8]>>;
    fn next(&mut self) -> Option<Self::Item> {
        todo!()
    }
}

impl<'tx> Bucket<'tx> {
    pub fn get(&self, _key: &[u8]) -> Result<Option<Cow<'tx, [u8]>>> {
        todo!()
    }
    pub fn put(&self, _key: &[u8], _value: &[u8]) -> Result<()> {
        todo!()
    }
    pub fn delete(&self, _key: &[u8]) -> Result<()> {
        todo!()
    }
    pub fn bucket(&self, _name: &[u8]) -> Result<Option<Bucket<'tx>>> {
        todo!()
    }
    pub fn create_bucket(&self, _name: &[u8]) -> Result<Bucket<'tx>> {
        todo!()
    }
    pub fn create_bucket_if_not_exists(&self, _name: &[u8]) -> Result<Bucket<'tx>> {
        todo!()
    }
    pub fn delete_bucket(&self, _name: &[u8]) -> Result<()> {
        todo!()
    }
    pub fn sequence(&self) -> u64 {
        todo!()
    }
    pub fn set_sequence(&self, _v: u64) -> Result<()> {
        todo!()
    }
    pub fn next_sequence(&self) -> Result<u64> {
        todo!()
    }
    pub fn iter(&self) -> Iter<'tx> {
        todo!()
    }
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, _r: R) -> Iter<'tx> {
        todo!()
    }
    pub fn buckets(&self) -> BucketNames<'tx> {
        todo!()
    }
    pub fn cursor(&self) -> Cursor<'tx> {
        todo!()
    }
    pub fn stats(&self) -> Result<crate::BucketStats> {
        todo!()
    }
}
