//! Cursors (API stub).
use std::borrow::Cow;
use std::marker::PhantomData;

use crate::Result;

/// One position of a cursor: a key and its value, or `None` for a nested bucket.
#[derive(Debug, Clone)]
pub struct Entry<'tx> {
    pub key: Cow<'tx, [u8]>,
    pub value: Option<Cow<'tx, [u8]>>,
}

/// A bounded cursor over one bucket.
pub struct Cursor<'tx> {
    _p: PhantomData<&'tx ()>,
}

impl<'tx> Cursor<'tx> {
    pub fn first(&mut self) -> Result<Option<Entry<'tx>>> {
        todo!()
    }
    pub fn last(&mut self) -> Result<Option<Entry<'tx>>> {
        todo!()
    }
    pub fn next(&mut self) -> Result<Option<Entry<'tx>>> {
        todo!()
    }
    pub fn prev(&mut self) -> Result<Option<Entry<'tx>>> {
        todo!()
    }
    pub fn seek(&mut self, _key: &[u8]) -> Result<Option<Entry<'tx>>> {
        todo!()
    }
    pub fn delete(&mut self) -> Result<()> {
        todo!()
    }
}
