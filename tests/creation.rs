//! Creation (issue 11, point 5): a writable open of a non-empty file that is not a deadbolt
//! database refuses it and leaves it byte for byte as it was; only an empty or missing file is
//! initialised, and atomically (`Storage::create`: a crash or an error leaves the file empty or
//! whole, never a part of the image, and no temporary file behind).

mod common;

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use deadbolt::{Db, Error, MemStorage, Options, Storage, View};

/// The names in `dir` other than `keep` (a temporary file of a creation would show up here).
fn strays(dir: &Path, keep: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != keep)
        .collect();
    v.sort();
    v
}

/// Write `content` to a file, open it for writing, and check the open is refused as
/// `InvalidFile` and the file is untouched: same bytes, same inode, nothing beside it.
fn assert_refused_untouched(content: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign");
    std::fs::write(&path, content).unwrap();
    let before = std::fs::metadata(&path).unwrap();
    let r = Db::open(&path);
    assert!(
        matches!(r, Err(Error::InvalidFile(_))),
        "{} bytes: expected InvalidFile, got {:?}",
        content.len(),
        r.as_ref().err()
    );
    drop(r);
    assert_eq!(std::fs::read(&path).unwrap(), content, "byte for byte");
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (after.dev(), after.ino()),
        (before.dev(), before.ino()),
        "not replaced"
    );
    assert_eq!(strays(dir.path(), "foreign"), Vec::<String>::new());
    // A read-only open refuses it too.
    let ro = Db::open_with(
        &path,
        Options {
            read_only: true,
            ..Options::default()
        },
    );
    assert!(matches!(ro, Err(Error::InvalidFile(_))), "{:?}", ro.err());
    assert_eq!(std::fs::read(&path).unwrap(), content);
}

#[test]
fn overwrite_of_a_one_byte_file_on_open_is_refused_and_the_file_left_byte_for_byte() {
    assert_refused_untouched(b"\n");
}

#[test]
fn overwrite_of_a_4_kib_random_file_on_open_is_refused_and_the_file_left_byte_for_byte() {
    let mut rng = common::Rng::new(0x4b1d);
    assert_refused_untouched(&rng.bytes(4096));
}

#[test]
fn overwrite_of_a_48_byte_json_config_on_open_is_refused_and_the_file_left_byte_for_byte() {
    let json = b"{\"name\": \"billing\", \"port\": 8080, \"tls\": false}\n";
    assert_eq!(json.len(), 48);
    assert_refused_untouched(json);
}

#[test]
fn zero_byte_file_refused_as_foreign_is_not_it_is_initialised() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").unwrap();
    let db = Db::open(&path).unwrap();
    db.update(|tx| tx.create_bucket(b"b")?.put(b"k", b"v"))
        .unwrap();
    drop(db);
    assert!(std::fs::metadata(&path).unwrap().len() > 0);
    let db = Db::open(&path).unwrap();
    let v = db
        .view(|tx| {
            Ok::<_, Error>(
                tx.bucket(b"b")?
                    .and_then(|b| b.get(b"k").ok()?.map(|v| v.to_vec())),
            )
        })
        .unwrap();
    assert_eq!(v.as_deref(), Some(&b"v"[..]));
    assert_eq!(strays(dir.path(), "empty.db"), Vec::<String>::new());
}

#[test]
fn temporary_file_left_behind_by_creating_a_missing_file_is_gone_and_the_file_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let db = Db::open(&path).unwrap();
    assert_eq!(strays(dir.path(), "new.db"), Vec::<String>::new());
    // Whole at once: both meta pages are there as soon as open returns.
    let len = std::fs::metadata(&path).unwrap().len();
    assert_eq!(len, 2 * db.page_size() as u64);
    drop(db);
    assert!(Db::open(&path).unwrap().check().unwrap().is_ok());
    assert_eq!(strays(dir.path(), "new.db"), Vec::<String>::new());
}

/// What the engine asked of a storage, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Write(u64, usize),
    SetLen(u64),
    Sync,
    SyncDir,
    Create(usize),
}

/// A memory storage that records every mutating call and can fail `create`.
struct Recorder {
    mem: MemStorage,
    calls: Mutex<Vec<Call>>,
    fail_create: bool,
}

impl Recorder {
    fn new(bytes: Vec<u8>, fail_create: bool) -> Arc<Recorder> {
        Arc::new(Recorder {
            mem: MemStorage::from_bytes(bytes),
            calls: Mutex::new(Vec::new()),
            fail_create,
        })
    }
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    fn log(&self, c: Call) {
        self.calls.lock().unwrap().push(c);
    }
}

impl Storage for Recorder {
    fn len(&self) -> io::Result<u64> {
        self.mem.len()
    }
    fn view(&self) -> io::Result<Arc<dyn View>> {
        self.mem.view()
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.log(Call::Write(offset, data.len()));
        self.mem.write_at(offset, data)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.log(Call::SetLen(len));
        self.mem.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.log(Call::Sync);
        self.mem.sync_data()
    }
    fn sync_dir(&self) -> io::Result<()> {
        self.log(Call::SyncDir);
        self.mem.sync_dir()
    }
    fn create(&self, image: &[u8]) -> io::Result<()> {
        self.log(Call::Create(image.len()));
        if self.fail_create {
            // As a real failed creation: nothing reached the storage.
            return Err(io::Error::other("injected: creation failed"));
        }
        self.mem.create(image)
    }
}

#[test]
fn write_to_a_foreign_file_before_refusing_it_is_never_issued() {
    let json = b"{\"name\": \"billing\", \"port\": 8080, \"tls\": false}\n".to_vec();
    for bytes in [vec![0xAB], vec![0xAB; 1500], json] {
        let s = Recorder::new(bytes.clone(), false);
        let r = Db::open_storage(s.clone(), Options::default());
        assert!(matches!(r, Err(Error::InvalidFile(_))), "{:?}", r.err());
        assert_eq!(s.calls(), Vec::<Call>::new(), "{} bytes", bytes.len());
        assert_eq!(s.mem.to_bytes(), bytes);
    }
}

#[test]
fn non_atomic_creation_by_writes_in_place_is_gone_the_first_mutation_is_one_create() {
    let s = Recorder::new(Vec::new(), false);
    let db = Db::open_storage(s.clone(), Options::default()).unwrap();
    let calls = s.calls();
    assert_eq!(
        calls.first(),
        Some(&Call::Create(2 * db.page_size())),
        "{calls:?}"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| matches!(c, Call::Create(_)))
            .count(),
        1,
        "{calls:?}"
    );
}

#[test]
fn partial_file_after_a_failure_in_the_middle_of_creation_is_never_left() {
    // The storage's creation fails (for the real file: the temporary file could not be written
    // or synced, so it was removed). Open reports it, and writes nothing else in its place.
    let s = Recorder::new(Vec::new(), true);
    let r = Db::open_storage(s.clone(), Options::default());
    assert!(matches!(r, Err(Error::Io(_))), "{:?}", r.err());
    assert_eq!(
        s.calls(),
        vec![Call::Create(2 * Options::default().page_size)]
    );
    assert_eq!(s.mem.to_bytes(), Vec::<u8>::new(), "still empty");
    // And the empty storage is simply created by the next open.
    let ok = Recorder::new(s.mem.to_bytes(), false);
    Db::open_storage(ok, Options::default()).unwrap();
}

#[test]
fn second_opener_that_waited_on_the_replaced_empty_file_clobbering_the_new_database_is_gone() {
    // Several handles open the same empty file at once. The first to get the lock creates the
    // database by renaming a new file over the path; the others may have opened the old empty
    // file already and waited for its lock. Had they kept it, each would find it empty and
    // create the database again over the first one, losing its commits. The interleaving is
    // up to the scheduler, so this can only fail (never pass wrongly) when the race is hit.
    for round in 0..8 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.db");
        std::fs::write(&path, b"").unwrap();
        let threads: Vec<_> = (0..4u8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let db = Db::open(&path).unwrap();
                    db.update(|tx| tx.create_bucket_if_not_exists(b"b")?.put(&[i], b"v"))
                        .unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let db = Db::open(&path).unwrap();
        let keys = db
            .view(|tx| {
                let b = tx.bucket(b"b")?.expect("bucket");
                let mut keys = Vec::new();
                for kv in b.iter() {
                    keys.push(kv?.0.to_vec());
                }
                Ok::<_, Error>(keys)
            })
            .unwrap();
        assert_eq!(
            keys,
            vec![vec![0], vec![1], vec![2], vec![3]],
            "round {round}"
        );
        assert_eq!(strays(dir.path(), "shared.db"), Vec::<String>::new());
    }
}
