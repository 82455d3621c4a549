//! Create a database, write and read it, and print its stats.
//!
//! `cargo run --release --example quickstart [PATH]`

use deadbolt::{Db, Error};

fn main() -> Result<(), Error> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "quickstart.db".to_string());
    let db = Db::open(&path)?;
    if let Some(rb) = &db.recovery().rolled_back {
        eprintln!(
            "note: an interrupted commit {} was rolled back at open ({})",
            rb.txid, rb.reason
        );
    }

    // One durable commit: a bucket of volumes, like a container engine's metadata store.
    db.update(|tx| {
        let volumes = tx.create_bucket_if_not_exists(b"volumes")?;
        for i in 0..1000u32 {
            let name = format!("vol-{i:04}");
            let meta = format!(r#"{{"Name":"{name}","Driver":"local"}}"#);
            volumes.put(name.as_bytes(), meta.as_bytes())?;
        }
        let labels = volumes.create_bucket_if_not_exists(b"labels")?;
        labels.put(b"vol-0042", b"com.example.role=db")?;
        let id = volumes.next_sequence()?;
        println!("wrote 1000 volumes (sequence now {id})");
        Ok::<_, Error>(())
    })?;

    // Readers see a consistent snapshot; values borrow from the mapped file.
    db.view(|tx| {
        let volumes = tx.bucket(b"volumes")?.ok_or(Error::BucketNotFound)?;
        let v = volumes.get(b"vol-0042")?.ok_or(Error::BucketNotFound)?;
        println!("vol-0042 = {}", String::from_utf8_lossy(&v));
        let first_three: Vec<String> = volumes
            .iter()
            .take(3)
            .map(|kv| kv.map(|(k, _)| String::from_utf8_lossy(&k).into_owned()))
            .collect::<Result<_, _>>()?;
        println!("first keys: {first_three:?}");
        let n = volumes
            .range(b"vol-0100".as_slice()..b"vol-0200".as_slice())
            .count();
        println!("keys in [vol-0100, vol-0200): {n}");
        Ok::<_, Error>(())
    })?;

    let report = db.check()?;
    println!("integrity check: {report}");
    let s = db.stats();
    println!(
        "stats: txid {} | page size {} | {} pages in use | file {} bytes | {} free + {} pending pages | {} commits, {} syncs since open | tree depth {}",
        s.txid, s.page_size, s.high_water, s.file_size, s.free_pages, s.pending_pages, s.commits, s.syncs, s.depth
    );
    Ok(())
}
