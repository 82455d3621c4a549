//! Minimal reproduction of bbolt-rs 1.3.10 panicking ("Page N already freed") when deleting
//! keys after a bulk put of random 24-byte keys; kept because the report marks bbolt-rs's
//! removal figure as failed.
use bbolt_rs::{BucketRwApi, DbRwAPI, TxRwRefApi};
fn main() -> bbolt_rs::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut db = bbolt_rs::Bolt::open(dir.path().join("x.db"))?;
    db.update(|mut tx| {
        let mut b = tx.create_bucket_if_not_exists("t")?;
        for i in 0..500 {
            b.put(deadbolt_bench::key(i), deadbolt_bench::value(i))?;
        }
        Ok(())
    })?;
    println!("put ok");
    db.update(|mut tx| {
        let mut b = tx.create_bucket_if_not_exists("t")?;
        for i in 0..100 {
            b.delete(deadbolt_bench::key(i))?;
        }
        Ok(())
    })?;
    println!("delete ok");
    Ok(())
}
