use deadbolt::{Db, Error, Options};

#[test]
fn put_get_commit_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    {
        let db = Db::open(&path).unwrap();
        db.update(|tx| {
            let b = tx.create_bucket(b"widgets")?;
            b.put(b"foo", b"bar")?;
            b.put(b"baz", b"qux")?;
            let n = b.create_bucket(b"nested")?;
            n.put(b"x", b"y")?;
            Ok::<_, Error>(())
        })
        .unwrap();
        db.view(|tx| {
            let b = tx.bucket(b"widgets")?.unwrap();
            assert_eq!(b.get(b"foo")?.as_deref(), Some(&b"bar"[..]));
            assert_eq!(b.get(b"nope")?, None);
            Ok::<_, Error>(())
        })
        .unwrap();
    }
    let db = Db::open(&path).unwrap();
    db.view(|tx| {
        let b = tx.bucket(b"widgets")?.unwrap();
        assert_eq!(b.get(b"foo")?.as_deref(), Some(&b"bar"[..]));
        assert_eq!(b.get(b"baz")?.as_deref(), Some(&b"qux"[..]));
        let n = b.bucket(b"nested")?.unwrap();
        assert_eq!(n.get(b"x")?.as_deref(), Some(&b"y"[..]));
        let keys: Vec<Vec<u8>> = b.iter().map(|r| r.unwrap().0.to_vec()).collect();
        assert_eq!(keys, vec![b"baz".to_vec(), b"foo".to_vec()]);
        Ok::<_, Error>(())
    })
    .unwrap();
    let _ = Options::default();
}

#[test]
fn many_keys_split_and_delete() {
    let db = Db::in_memory().unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..20000u32 {
            b.put(format!("key{i:08}").as_bytes(), &[7u8; 50])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    db.view(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        assert_eq!(b.iter().count(), 20000);
        assert_eq!(b.iter().rev().count(), 20000);
        assert!(b.get(b"key00012345")?.is_some());
        Ok::<_, Error>(())
    })
    .unwrap();
    db.update(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        for i in 0..20000u32 {
            if i % 3 != 0 {
                b.delete(format!("key{i:08}").as_bytes())?;
            }
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    db.view(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        assert_eq!(b.iter().count(), 6667);
        Ok::<_, Error>(())
    })
    .unwrap();
    println!("{:?}", db.stats());
}
