//! Tests that run the `deadbolt` binary against real database files built with the library.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use deadbolt::{Db, Error};
use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_deadbolt");

/// Run the binary with `args`; stdout and stderr are pipes, so no progress bar may appear.
fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the deadbolt binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert the exit status, showing both streams when it is not the expected one.
#[track_caller]
fn status(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit status\n--- stdout\n{}\n--- stderr\n{}",
        stdout(o),
        stderr(o)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// A small database with nested buckets, a binary bucket name, a sequence and an empty bucket.
fn fixture(dir: &TempDir) -> PathBuf {
    let path = dir.path().join("fixture.db");
    let db = Db::open(&path).unwrap();
    db.update(|tx| {
        let users = tx.create_bucket(b"users")?;
        users.put(b"alice", b"1")?;
        users.put(b"bob", b"2")?;
        users.set_sequence(7)?;
        let sessions = users.create_bucket(b"sessions")?;
        sessions.put(b"s1", b"\x00\xff")?;
        let bin = tx.create_bucket(b"\x00\xff")?;
        bin.put(b"\x01", b"x")?;
        tx.create_bucket(b"empty")?;
        Ok::<_, Error>(())
    })
    .unwrap();
    path
}

/// The fixture's dump, as the format defines it.
const FIXTURE_DUMP: &str = r#"{"path":[],"bucket":"00ff","sequence":0}
{"path":["00ff"],"key":"01","value":"78"}
{"path":[],"bucket":"656d707479","sequence":0}
{"path":[],"bucket":"7573657273","sequence":7}
{"path":["7573657273"],"key":"616c696365","value":"31"}
{"path":["7573657273"],"key":"626f62","value":"32"}
{"path":["7573657273"],"bucket":"73657373696f6e73","sequence":0}
{"path":["7573657273","73657373696f6e73"],"key":"7331","value":"00ff"}
"#;

/// A larger database: many keys over several pages, a value spanning pages, and deletions
/// that leave free space for `compact` to reclaim.
fn big_fixture(dir: &TempDir) -> PathBuf {
    let path = dir.path().join("big.db");
    let db = Db::open(&path).unwrap();
    for batch in 0..4u32 {
        db.update(|tx| {
            let b = tx.create_bucket_if_not_exists(b"big")?;
            for i in batch * 500..(batch + 1) * 500 {
                b.put(format!("key{i:06}").as_bytes(), &[b'v'; 100])?;
            }
            Ok::<_, Error>(())
        })
        .unwrap();
    }
    db.update(|tx| {
        let b = tx.create_bucket(b"blob")?;
        b.put(b"large", &vec![0xabu8; 20_000])?;
        let big = tx.bucket(b"big")?.expect("created above");
        for i in (0..2000u32).filter(|i| i % 4 != 0) {
            big.delete(format!("key{i:06}").as_bytes())?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    // A last commit that leaves "big" alone, so that its pages are older than the newest
    // commit (open verifies the newest commit's own pages and rolls back past damage there).
    db.update(|tx| {
        tx.bucket(b"blob")?
            .expect("created above")
            .put(b"small", b"s")?;
        Ok::<_, Error>(())
    })
    .unwrap();
    path
}

/// Overwrite part of page `id` with junk, so that its checksum no longer matches.
fn damage_page(path: &Path, id: u64, page_size: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(id * page_size + page_size / 2))
        .unwrap();
    f.write_all(&[0x5a; 64]).unwrap();
    f.sync_all().unwrap();
}

/// The id of a leaf page written before the newest commit (found through the binary's own
/// `info --json` and `pages --json`): damage there is damage, not a torn last commit.
fn a_leaf_page(path: &Path) -> u64 {
    let txid = json(&run(&["info", "--json", s(path)]))["txid"]
        .as_u64()
        .unwrap();
    let o = run(&["pages", "--json", s(path)]);
    status(&o, 0);
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["kind"] == "leaf" && v["txid"].as_u64().unwrap() < txid)
        .and_then(|v| v["id"].as_u64())
        .expect("the file has a leaf page older than its newest commit")
}

fn json(o: &Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

// ---------------------------------------------------------------------------------------------
// usage

#[test]
fn help_and_usage_errors() {
    let o = run(&["--help"]);
    status(&o, 0);
    for cmd in [
        "info", "stats", "check", "buckets", "keys", "get", "pages", "page", "dump", "backup",
        "compact", "bench",
    ] {
        assert!(stdout(&o).contains(cmd), "help lists {cmd}");
    }
    let o = run(&["frobnicate"]);
    status(&o, 2);
    let o = run(&["info"]);
    status(&o, 2);
    assert!(stderr(&o).contains("FILE"), "{}", stderr(&o));
    let o = run(&["--lock-timeout", "soon", "info", "x.db"]);
    status(&o, 2);
}

#[test]
fn missing_file_is_exit_2_with_file_and_reason() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("nope.db");
    for cmd in ["info", "stats", "check", "buckets", "pages", "dump"] {
        let o = run(&[cmd, s(&missing)]);
        status(&o, 2);
        let err = stderr(&o);
        assert!(
            err.contains("nope.db") && err.contains("no such file"),
            "{cmd}: {err}"
        );
        assert!(
            stdout(&o).is_empty() || cmd == "check",
            "{cmd}: {}",
            stdout(&o)
        );
        assert!(!missing.exists(), "{cmd} must not create the file");
    }
    let o = run(&["check", s(dir.path())]);
    status(&o, 2);
    assert!(stderr(&o).contains("directory"), "{}", stderr(&o));
}

#[test]
fn not_a_database_is_exit_2() {
    let dir = TempDir::new().unwrap();
    let junk = dir.path().join("junk.txt");
    std::fs::write(&junk, "this is not a database\n".repeat(1000)).unwrap();
    for cmd in ["info", "check", "dump"] {
        let o = run(&[cmd, s(&junk)]);
        status(&o, 2);
        assert!(stderr(&o).contains("junk.txt"), "{cmd}: {}", stderr(&o));
    }
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let o = run(&["check", s(&empty)]);
    status(&o, 2);
    assert!(stderr(&o).contains("empty.db"), "{}", stderr(&o));
}

#[test]
fn a_writer_holding_the_lock_is_reported() {
    let dir = TempDir::new().unwrap();
    let path = fixture(&dir);
    let _writer = Db::open(&path).unwrap();
    let o = run(&["--lock-timeout", "100ms", "info", s(&path)]);
    status(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("fixture.db") && err.contains("locked"),
        "{err}"
    );
    let o = run(&["check", "--lock-timeout", "0", s(&path)]);
    status(&o, 2);
}

// ---------------------------------------------------------------------------------------------
// info, stats, check

#[test]
fn info_text_and_json() {
    let dir = TempDir::new().unwrap();
    let path = fixture(&dir);
    let o = run(&["info", s(&path)]);
    status(&o, 0);
    let out = stdout(&o);
    let version = format!("Format version:   {}", deadbolt::FORMAT_VERSION);
    for field in [
        "Page size:        4096",
        version.as_str(),
        "Txid:",
        "Confirmed txid:",
        "High-water mark:",
        "File size:",
        "Free pages:",
        "Tree depth:",
    ] {
        assert!(out.contains(field), "{field} in\n{out}");
    }
    assert!(
        stderr(&o).is_empty(),
        "no progress or noise when piped: {}",
        stderr(&o)
    );

    let o = run(&["info", "--json", s(&path)]);
    status(&o, 0);
    let v = json(&o);
    assert_eq!(v["page_size"], 4096);
    assert_eq!(v["format_version"], deadbolt::FORMAT_VERSION);
    assert!(v["txid"].as_u64().unwrap() >= 1);
    // The library's clean close confirmed the last commit.
    assert_eq!(v["confirmed_txid"], v["txid"]);
    let len = std::fs::metadata(&path).unwrap().len();
    assert_eq!(v["file_size"].as_u64(), Some(len));
    assert!(v["high_water"].as_u64().unwrap() * 4096 <= len);
    assert!(v["depth"].as_u64().unwrap() >= 1);
    assert!(v["free_pages"].is_u64());
    assert!(v["rolled_back"].is_null());
}

#[test]
fn stats_per_bucket() {
    let dir = TempDir::new().unwrap();
    let path = fixture(&dir);
    let o = run(&["stats", "--json", s(&path)]);
    status(&o, 0);
    let v = json(&o);
    let rows = v["buckets"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["0x00ff", "empty", "users", "users/sessions"]);
    let users = &rows[2];
    assert_eq!(users["path"], serde_json::json!(["7573657273"]));
    assert!(users["keys"].as_u64().unwrap() >= 2);
    assert!(users["leaf_pages"].is_u64() && users["bytes_used"].is_u64());
    let fill = users["fill"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&fill), "{fill}");
    let sessions = &rows[3];
    assert_eq!(sessions["keys"], 1);
    // Counts include nested buckets, so the top-level rows add up to the total.
    assert_eq!(users["keys"], 3);
    assert_eq!(users["buckets"], 1);
    assert_eq!(v["total"]["keys"], 4);
    assert_eq!(v["total"]["buckets"], 4);

    // A bucket path restricts the report to that subtree.
    let o = run(&["stats", "--json", s(&path), "users", "sessions"]);
    status(&o, 0);
    let v = json(&o);
    assert_eq!(v["buckets"].as_array().unwrap().len(), 1);
    assert_eq!(v["buckets"][0]["name"], "users/sessions");
    assert!(v.get("total").is_none());

    let o = run(&["stats", "--hex", "--json", s(&path), "00ff"]);
    status(&o, 0);
    assert_eq!(json(&o)["buckets"][0]["keys"], 1);

    let o = run(&["stats", s(&path)]);
    status(&o, 0);
    let out = stdout(&o);
    assert!(out.starts_with("BUCKET"), "{out}");
    assert!(
        out.contains("users/sessions") && out.contains("FILL"),
        "{out}"
    );

    let o = run(&["stats", s(&path), "nobody"]);
    status(&o, 1);
    assert!(
        stderr(&o).contains("bucket not found: nobody"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn check_healthy() {
    let dir = TempDir::new().unwrap();
    let path = big_fixture(&dir);
    let o = run(&["check", s(&path)]);
    status(&o, 0);
    assert!(stdout(&o).starts_with("OK"), "{}", stdout(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));

    let o = run(&["check", "--json", s(&path)]);
    status(&o, 0);
    let v = json(&o);
    assert_eq!(v["ok"], true);
    assert_eq!(v["problems"], serde_json::json!([]));
    assert_eq!(v["buckets"], 2);
    assert_eq!(v["keys"], 502);
    assert!(v["pages_total"].as_u64().unwrap() >= v["pages_reachable"].as_u64().unwrap());
}

#[test]
fn check_damaged_page_is_exit_1() {
    let dir = TempDir::new().unwrap();
    let path = big_fixture(&dir);
    let leaf = a_leaf_page(&path);
    damage_page(&path, leaf, 4096);

    let o = run(&["check", s(&path)]);
    status(&o, 1);
    let out = stdout(&o);
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("DAMAGED: ") && first.contains(&format!("page {leaf}")),
        "the verdict and the first problem come first: {out}"
    );

    let o = run(&["check", "--json", s(&path)]);
    status(&o, 1);
    assert!(
        stderr(&o).contains("big.db: database is damaged"),
        "{}",
        stderr(&o)
    );
    let v = json(&o);
    assert_eq!(v["ok"], false);
    let problems = v["problems"].as_array().unwrap();
    assert!(!problems.is_empty());
    assert!(problems.iter().any(|p| p["page"] == leaf), "{problems:?}");
}

#[test]
fn check_both_metas_damaged_is_exit_1() {
    let dir = TempDir::new().unwrap();
    let path = fixture(&dir);
    damage_page(&path, 0, 4096);
    damage_page(&path, 1, 4096);
    let o = run(&["check", "--json", s(&path)]);
    // Damage, not a failure to run: the file was a database.
    status(&o, 1);
    assert_eq!(json(&o)["ok"], false);
}

// ---------------------------------------------------------------------------------------------
// buckets, keys, get

#[test]
fn buckets_keys_get() {
    let dir = TempDir::new().unwrap();
    let path = fixture(&dir);
    let p = s(&path);

    let o = run(&["buckets", p]);
    status(&o, 0);
    assert_eq!(stdout(&o), "0x00ff\nempty\nusers\n");
    let o = run(&["buckets", "--format", "hex", p]);
    assert_eq!(stdout(&o), "00ff\n656d707479\n7573657273\n");
    let o = run(&["buckets", p, "users"]);
    status(&o, 0);
    assert_eq!(stdout(&o), "sessions\n");

    let o = run(&["keys", p, "users"]);
    status(&o, 0);
    assert_eq!(stdout(&o), "alice\nbob\n");
    let o = run(&["keys", "--values", p, "users", "sessions"]);
    status(&o, 0);
    assert_eq!(stdout(&o), "s1\t0x00ff\n");
    let o = run(&["keys", "--hex", p, "00ff"]);
    status(&o, 0);
    assert_eq!(stdout(&o), "0x01\n");
    let o = run(&["keys", p, "empty"]);
    status(&o, 0);
    assert_eq!(stdout(&o), "");

    let o = run(&["get", p, "users", "alice"]);
    status(&o, 0);
    assert_eq!(stdout(&o), "1\n");
    let o = run(&["get", "--format", "raw", p, "users", "sessions", "s1"]);
    status(&o, 0);
    assert_eq!(o.stdout, b"\x00\xff");
    let o = run(&["get", "--hex", "--format", "hex", p, "7573657273", "626f62"]);
    status(&o, 0);
    assert_eq!(stdout(&o), "32\n");

    let o = run(&["get", p, "users", "carol"]);
    status(&o, 1);
    assert!(
        stderr(&o).contains("carol") && stderr(&o).contains("not found"),
        "{}",
        stderr(&o)
    );
    let o = run(&["get", p, "nobody", "alice"]);
    status(&o, 1);
    assert!(stderr(&o).contains("bucket not found"), "{}", stderr(&o));
    let o = run(&["keys", p, "users", "nobody"]);
    status(&o, 1);
    assert!(stderr(&o).contains("users/nobody"), "{}", stderr(&o));
    let o = run(&["get", "--hex", p, "zz", "00"]);
    status(&o, 2);
}

// ---------------------------------------------------------------------------------------------
// pages, page

#[test]
fn pages_and_page() {
    let dir = TempDir::new().unwrap();
    let path = big_fixture(&dir);
    let p = s(&path);
    let high_water = json(&run(&["info", "--json", p]))["high_water"]
        .as_u64()
        .unwrap();

    let o = run(&["pages", "--json", p]);
    status(&o, 0);
    let rows: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0]["id"], 0);
    assert_eq!(rows[0]["kind"], "meta");
    assert_eq!(rows[1]["id"], 1);
    assert_eq!(rows[1]["kind"], "meta");
    // Ids ascend and skip exactly the continuation pages of each span, up to the high-water.
    let mut next = 0;
    for r in &rows {
        assert_eq!(r["id"].as_u64(), Some(next), "{r}");
        assert_eq!(r["checksum_ok"], true, "{r}");
        next += 1 + r["overflow"].as_u64().unwrap();
    }
    assert_eq!(next, high_water);
    assert!(
        rows.iter().any(|r| r["overflow"].as_u64().unwrap() > 0),
        "the blob spans pages"
    );
    assert!(rows.iter().any(|r| r["kind"] == "branch"));

    let o = run(&["pages", p]);
    status(&o, 0);
    let out = stdout(&o);
    assert!(out.starts_with("ID"), "{out}");
    assert_eq!(out.lines().count(), rows.len() + 1);

    let leaf = a_leaf_page(&path);
    let o = run(&["page", p, "0", &leaf.to_string()]);
    status(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("Page:      0\nKind:      meta"), "{out}");
    assert!(
        out.contains(&format!("Page:      {leaf}\nKind:      leaf")),
        "{out}"
    );
    assert!(out.contains("Checksum:  ok"), "{out}");
    assert!(out.contains("Keys"), "{out}");

    let o = run(&["page", "--json", p, &leaf.to_string()]);
    status(&o, 0);
    let v = json(&o);
    assert_eq!(v["kind"], "leaf");
    assert!(!v["keys"].as_array().unwrap().is_empty());

    let o = run(&["page", p, &high_water.to_string()]);
    status(&o, 1);
    assert!(stderr(&o).contains("high-water"), "{}", stderr(&o));
    let o = run(&["page", p, "x"]);
    status(&o, 2);
}

#[test]
fn pages_report_a_damaged_page() {
    let dir = TempDir::new().unwrap();
    let path = big_fixture(&dir);
    let leaf = a_leaf_page(&path);
    damage_page(&path, leaf, 4096);
    let o = run(&["pages", s(&path)]);
    status(&o, 1);
    assert!(stdout(&o).contains("BAD"), "{}", stdout(&o));
    let o = run(&["page", s(&path), &leaf.to_string()]);
    status(&o, 1);
    assert!(stdout(&o).contains("Checksum:  BAD"), "{}", stdout(&o));
}

// ---------------------------------------------------------------------------------------------
// dump

#[test]
fn dump_jsonl_is_exact() {
    let dir = TempDir::new().unwrap();
    let path = fixture(&dir);
    let o = run(&["dump", "--format", "jsonl", s(&path)]);
    status(&o, 0);
    assert_eq!(stdout(&o), FIXTURE_DUMP);
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    // jsonl is the default, and every line is a JSON object.
    let o = run(&["dump", s(&path)]);
    assert_eq!(stdout(&o), FIXTURE_DUMP);
    for line in stdout(&o).lines() {
        assert!(serde_json::from_str::<Value>(line).unwrap().is_object());
    }
}

#[test]
fn dump_text() {
    let dir = TempDir::new().unwrap();
    let path = fixture(&dir);
    let o = run(&["dump", "--format", "text", s(&path)]);
    status(&o, 0);
    assert_eq!(
        stdout(&o),
        "0x00ff/ (sequence 0)\n  0x01 = x\nempty/ (sequence 0)\nusers/ (sequence 7)\n  \
         alice = 1\n  bob = 2\n  sessions/ (sequence 0)\n    s1 = 0x00ff\n"
    );
}

#[test]
fn dump_orders_buckets_before_contents() {
    let dir = TempDir::new().unwrap();
    let path = big_fixture(&dir);
    let o = run(&["dump", s(&path)]);
    status(&o, 0);
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2 + 500 + 2);
    let mut seen_buckets: Vec<Vec<Value>> = vec![vec![]];
    let mut last_key: Option<String> = None;
    for l in &lines {
        let path = l["path"].as_array().unwrap().clone();
        assert!(seen_buckets.contains(&path), "container of {l} came first");
        if let Some(name) = l.get("bucket") {
            let mut p = path.clone();
            p.push(name.clone());
            seen_buckets.push(p);
            last_key = None;
        } else {
            let k = l["key"].as_str().unwrap().to_string();
            assert!(
                last_key.as_ref().is_none_or(|prev| *prev < k),
                "keys ascend"
            );
            last_key = Some(k);
        }
    }
    assert_eq!(lines[0]["bucket"], "626967"); // "big"
}

#[test]
fn dump_stops_with_exit_1_on_damage() {
    let dir = TempDir::new().unwrap();
    let path = big_fixture(&dir);
    let leaf = a_leaf_page(&path);
    damage_page(&path, leaf, 4096);
    let o = run(&["dump", s(&path)]);
    status(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("big.db") && err.contains("damaged"), "{err}");
    // What was written before the damage is whole lines of valid JSON.
    for line in stdout(&o).lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }
    let stopped = stdout(&o).lines().count();
    assert!(
        !stdout(&o).contains("626c6f62"),
        "stopped before the next bucket"
    );

    // --keep-going skips the rest of the damaged bucket and salvages the next one.
    let o = run(&["dump", "--keep-going", s(&path)]);
    status(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("(skipped)") && err.contains("1 damaged part skipped"),
        "{err}"
    );
    let out = stdout(&o);
    assert!(out.lines().count() > stopped, "{out}");
    assert!(
        out.contains(r#"{"path":[],"bucket":"626c6f62","sequence":0}"#),
        "{out}"
    );
    assert!(
        out.contains(r#"{"path":["626c6f62"],"key":"736d616c6c","value":"73"}"#),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// backup, compact

#[test]
fn backup_is_a_faithful_copy() {
    let dir = TempDir::new().unwrap();
    let path = fixture(&dir);
    let copy = dir.path().join("copy.db");
    let o = run(&["backup", s(&path), s(&copy)]);
    status(&o, 0);
    assert!(stdout(&o).contains("copy.db"), "{}", stdout(&o));
    status(&run(&["check", s(&copy)]), 0);
    assert_eq!(stdout(&run(&["dump", s(&copy)])), FIXTURE_DUMP);
    // No staging directory left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".deadbolt"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // An existing destination is only replaced with --force.
    let o = run(&["backup", s(&path), s(&copy)]);
    status(&o, 2);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    let o = run(&["backup", "--force", s(&path), s(&copy)]);
    status(&o, 0);
    // The source itself is never a destination.
    let o = run(&["backup", "--force", s(&path), s(&path)]);
    status(&o, 2);
    assert_eq!(stdout(&run(&["dump", s(&path)])), FIXTURE_DUMP);
    // A destination directory that does not exist is named in the error.
    let o = run(&["backup", s(&path), s(&dir.path().join("no/such/dir/x.db"))]);
    status(&o, 2);
    assert!(stderr(&o).contains("no/such/dir"), "{}", stderr(&o));
    // A missing source is exit 2 and creates nothing.
    let o = run(&[
        "backup",
        s(&dir.path().join("nope.db")),
        s(&dir.path().join("out.db")),
    ]);
    status(&o, 2);
    assert!(!dir.path().join("out.db").exists());
}

#[test]
fn backup_sees_one_snapshot_while_a_library_writer_goes_on() {
    // Across processes a writer's exclusive lock keeps the tool out, so the "writers go on"
    // half is the library's: a read transaction's copy is the snapshot it began with.
    let dir = TempDir::new().unwrap();
    let path = fixture(&dir);
    let db = Db::open(&path).unwrap();
    let copy = dir.path().join("snap.db");
    {
        let tx = db.begin_read().unwrap();
        db.update(|tx| {
            tx.bucket(b"users")?
                .expect("fixture")
                .put(b"zed", b"late")?;
            Ok::<_, Error>(())
        })
        .unwrap();
        let mut f = std::fs::File::create(&copy).unwrap();
        tx.copy_to(&mut f).unwrap();
    }
    drop(db);
    assert_eq!(stdout(&run(&["dump", s(&copy)])), FIXTURE_DUMP);
    let o = run(&["get", s(&path), "users", "zed"]);
    assert_eq!(stdout(&o), "late\n");
}

#[test]
fn compact_shrinks_and_keeps_the_data() {
    let dir = TempDir::new().unwrap();
    let path = big_fixture(&dir);
    let out = dir.path().join("compact.db");
    let o = run(&["compact", s(&path), s(&out)]);
    status(&o, 0);
    assert!(stdout(&o).contains("compact.db"), "{}", stdout(&o));
    let before = std::fs::metadata(&path).unwrap().len();
    let after = std::fs::metadata(&out).unwrap().len();
    assert!(after < before, "{after} < {before}");
    status(&run(&["check", s(&out)]), 0);
    assert_eq!(
        stdout(&run(&["dump", s(&out)])),
        stdout(&run(&["dump", s(&path)]))
    );
    let o = run(&["compact", s(&path), s(&out)]);
    status(&o, 2);
}

#[test]
fn compact_in_place_shrinks_the_file_and_keeps_the_data() {
    let dir = TempDir::new().unwrap();
    let path = big_fixture(&dir);
    let dump = stdout(&run(&["dump", s(&path)]));
    let before = std::fs::metadata(&path).unwrap().len();
    let o = run(&["compact-in-place", "--pages", "4", s(&path)]);
    status(&o, 0);
    assert!(stdout(&o).contains("pages moved"), "{}", stdout(&o));
    let after = std::fs::metadata(&path).unwrap().len();
    assert!(after < before, "{after} < {before}");
    status(&run(&["check", s(&path)]), 0);
    assert_eq!(stdout(&run(&["dump", s(&path)])), dump);
    // Open for writing elsewhere: it says why it cannot run, and changes nothing.
    let db = Db::open(&path).unwrap();
    let o = run(&["--lock-timeout", "100ms", "compact-in-place", s(&path)]);
    status(&o, 2);
    assert!(
        stderr(&o).contains("in use by another process"),
        "{}",
        stderr(&o)
    );
    drop(db);
}

// ---------------------------------------------------------------------------------------------
// bench

#[test]
fn bench_prints_rates() {
    let o = run(&[
        "bench",
        "--count",
        "300",
        "--batch-size",
        "100",
        "--no-sync",
    ]);
    status(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("# Write") && out.contains("# Read"), "{out}");
    assert_eq!(out.matches("op/sec").count(), 2, "{out}");

    let dir = TempDir::new().unwrap();
    let kept = dir.path().join("bench.db");
    let o = run(&[
        "bench",
        "--count",
        "250",
        "--batch-size",
        "64",
        "--value-size",
        "10",
        "--key-size",
        "16",
        "--write-mode",
        "rnd",
        "--read-mode",
        "rnd",
        "--path",
        s(&kept),
    ]);
    status(&o, 0);
    status(&run(&["check", s(&kept)]), 0);
    let v = json(&run(&["stats", "--json", s(&kept), "bench"]));
    assert_eq!(v["buckets"][0]["keys"], 250);
    // It writes a new file only.
    let o = run(&["bench", "--count", "10", "--path", s(&kept)]);
    status(&o, 2);
    let o = run(&["bench", "--key-size", "4"]);
    status(&o, 2);
}

// ---------------------------------------------------------------------------------------------
// progress bars

/// Run `deadbolt ARGS` under a pseudo-terminal with `script(1)`; `None` where it is missing.
fn run_on_terminal(args: &str) -> Option<Output> {
    // Skip where script(1) is missing or cannot allocate a pseudo-terminal.
    let probe = Command::new("script")
        .args(["-qec", "true", "/dev/null"])
        .output()
        .ok()?;
    if !probe.status.success() {
        return None;
    }
    let cmd = format!("{BIN} {args}");
    Some(
        Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .output()
            .expect("script runs"),
    )
}

#[test]
fn progress_bars_only_on_a_terminal() {
    let args = "bench --count 3000 --batch-size 3000 --no-sync";
    let Some(o) = run_on_terminal(args) else {
        eprintln!("script(1) missing or without a pseudo-terminal: terminal half skipped");
        return;
    };
    status(&o, 0);
    let transcript = stdout(&o);
    assert!(transcript.contains("op/sec"), "{transcript}");
    assert!(
        transcript.contains("write") && transcript.contains('\x1b'),
        "{transcript:?}"
    );

    let o = run_on_terminal(&format!("--no-progress {args}")).expect("script ran above");
    status(&o, 0);
    assert!(!stdout(&o).contains('\x1b'), "{:?}", stdout(&o));

    // Piped: nothing but the results.
    let o = run(&[
        "bench",
        "--count",
        "3000",
        "--batch-size",
        "3000",
        "--no-sync",
    ]);
    status(&o, 0);
    assert!(stderr(&o).is_empty(), "{:?}", stderr(&o));
    assert!(!stdout(&o).contains('\x1b'));
}

/// The file as a crash right after the last commit's sync leaves it: one more commit than the
/// fixture, synced, but not yet confirmed (no idle confirmation, no clean close). Returns the
/// txid of that commit.
fn with_an_unconfirmed_last_commit(path: &Path) -> u64 {
    let db = Db::open_with(
        path,
        deadbolt::Options {
            confirm_after: None,
            ..Default::default()
        },
    )
    .unwrap();
    db.update(|tx| {
        tx.bucket(b"users")?.expect("fixture").put(b"zz", b"new")?;
        Ok::<_, Error>(())
    })
    .unwrap();
    let txid = db.stats().txid;
    assert!(db.stats().confirmed_txid < txid, "nothing confirmed it yet");
    // The clean close below confirms it; the bytes read before it are the crash image.
    let crash = std::fs::read(path).unwrap();
    drop(db);
    std::fs::write(path, crash).unwrap();
    txid
}

#[test]
fn an_unconfirmed_newest_commit_that_fails_is_rolled_back_with_a_note_unless_strict() {
    let dir = TempDir::new().unwrap();
    let path = fixture(&dir);
    let txid = with_an_unconfirmed_last_commit(&path);
    let p = s(&path);
    let o = run(&["pages", "--json", p]);
    let newest_leaf = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["kind"] == "leaf" && v["txid"].as_u64() == Some(txid))
        .and_then(|v| v["id"].as_u64())
        .expect("the last commit wrote a leaf");
    damage_page(&path, newest_leaf, 4096);
    let before = std::fs::read(&path).unwrap();

    // Open rolls back to the commit before: consistent, with a note naming the commit and why.
    let o = run(&["check", p]);
    status(&o, 0);
    let out = stdout(&o);
    assert!(out.starts_with("OK: "), "the verdict comes first: {out}");
    assert!(
        out.contains(&format!("note: commit {txid} was never confirmed durable")),
        "{out}"
    );
    assert!(
        out.contains(&format!("unconfirmed commit {txid} did not verify")),
        "the engine's reason: {out}"
    );
    let v = json(&run(&["check", "--json", p]));
    assert_eq!(v["ok"], true);
    assert_eq!(v["txid"], txid - 1);
    assert_eq!(v["confirmed_txid"], txid - 1);
    assert_eq!(v["rolled_back"]["txid"], txid);
    assert!(
        v["rolled_back"]["reason"]
            .as_str()
            .unwrap()
            .contains("unconfirmed"),
        "{v}"
    );

    let o = run(&["check", "--strict", p]);
    status(&o, 1);
    let first = stdout(&o).lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with("DAMAGED: ") && first.contains(&format!("unconfirmed commit {txid}")),
        "{first}"
    );
    let o = run(&["check", "--strict", "--json", p]);
    status(&o, 1);
    let v = json(&o);
    assert_eq!(v["ok"], false);
    assert_eq!(v["rolled_back"]["txid"], txid);

    let v = json(&run(&["info", "--json", p]));
    assert_eq!(v["txid"], txid - 1);
    assert_eq!(v["confirmed_txid"], txid - 1);
    assert_eq!(v["rolled_back"]["txid"], txid);
    let out = stdout(&run(&["info", p]));
    assert!(
        out.contains(&format!(
            "Recovered:        commit {txid} was never confirmed durable"
        )) && out.contains("Confirmed txid:   "),
        "{out}"
    );
    // The dump is the commit before, whole, and says on stderr that it is not the newest.
    let o = run(&["dump", p]);
    status(&o, 0);
    assert_eq!(stdout(&o), FIXTURE_DUMP);
    assert!(
        stderr(&o).contains(&format!(
            "note: {p}: commit {txid} was never confirmed durable"
        )),
        "{}",
        stderr(&o)
    );
    assert!(
        std::fs::read(&path).unwrap() == before,
        "nothing wrote the file"
    );
}

#[test]
fn stats_and_dump_of_an_empty_database() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("new.db");
    drop(Db::open(&path).unwrap());
    let p = s(&path);
    let o = run(&["dump", p]);
    status(&o, 0);
    assert_eq!(stdout(&o), "");
    let o = run(&["stats", p]);
    status(&o, 0);
    assert!(stdout(&o).contains("(no buckets)"), "{}", stdout(&o));
    let o = run(&["buckets", p]);
    status(&o, 0);
    assert_eq!(stdout(&o), "");
    status(&run(&["check", p]), 0);
    let o = run(&["compact", p, s(&dir.path().join("c.db"))]);
    status(&o, 0);
    assert_eq!(stdout(&run(&["dump", s(&dir.path().join("c.db"))])), "");
}

// ---------------------------------------------------------------------------------------------
// robustness

#[test]
fn flipped_bits_give_a_verdict_never_a_crash() {
    let dir = TempDir::new().unwrap();
    let clean = big_fixture(&dir);
    let bytes = std::fs::read(&clean).unwrap();
    let high_water = json(&run(&["info", "--json", s(&clean)]))["high_water"]
        .as_u64()
        .unwrap();
    let path = dir.path().join("flipped.db");
    // A fixed linear congruential sequence: the same pages and bits on every run.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x >> 33
    };
    for _ in 0..12 {
        let mut b = bytes.clone();
        let page = 2 + next() % (high_water - 2);
        let off = (page * 4096 + next() % 4096) as usize;
        b[off] ^= 1 << (next() % 8);
        std::fs::write(&path, &b).unwrap();
        let mut codes = Vec::new();
        for args in [
            vec!["check"],
            vec!["dump"],
            vec!["dump", "--keep-going"],
            vec!["stats"],
            vec!["pages"],
            vec!["info"],
        ] {
            let mut a = args.clone();
            a.push(s(&path));
            let o = run(&a);
            let code = o.status.code().expect("exited, not killed");
            assert!(
                (0..=2).contains(&code),
                "{args:?} on page {page}: {}",
                stderr(&o)
            );
            assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
            if code != 0 {
                assert!(stderr(&o).contains("flipped.db") || args[0] == "check");
            }
            codes.push(code);
        }
        // What check passes, dump reads in full.
        if codes[0] == 0 {
            assert_eq!(codes[1], 0, "page {page} offset {off}");
        }
    }
}

/// Regression: random inserts once committed a branch page whose separators were out of
/// order (the leftmost separator was not lowered when smaller keys went into its child; fixed
/// on main in bf8d8b4). `bench --write-mode rnd` is how the tool found it.
#[test]
fn bench_random_writes_in_large_batches() {
    let o = run(&[
        "bench",
        "--count",
        "5000",
        "--batch-size",
        "5000",
        "--write-mode",
        "rnd",
        "--no-sync",
    ]);
    status(&o, 0);
}

#[test]
fn inspection_never_writes_and_shares_the_lock_with_readers() {
    let dir = TempDir::new().unwrap();
    let path = big_fixture(&dir);
    let p = s(&path);
    let before = std::fs::read(&path).unwrap();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    // Another read-only handle holds a shared lock the whole time.
    let reader = Db::open_with(
        &path,
        deadbolt::Options {
            read_only: true,
            ..Default::default()
        },
    )
    .unwrap();
    let out1 = dir.path().join("o1.db");
    let out2 = dir.path().join("o2.db");
    for args in [
        vec!["info", p],
        vec!["stats", p],
        vec!["check", p],
        vec!["buckets", p],
        vec!["keys", p, "blob"],
        vec!["get", p, "blob", "small"],
        vec!["pages", p],
        vec!["page", p, "0", "1", "2"],
        vec!["dump", p],
        vec!["backup", p, s(&out1)],
        vec!["compact", p, s(&out2)],
    ] {
        let o = run(&args);
        status(&o, 0);
    }
    drop(reader);
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the file was not changed"
    );
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
}

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/bolt")
        .join(name)
}

#[test]
fn check_bolt_healthy_and_damaged() {
    let o = run(&["check-bolt", s(&corpus("j_docker_volumes.db"))]);
    status(&o, 0);
    let o = run(&["check-bolt", s(&corpus("corrupt_01_branch_to_freelist.db"))]);
    status(&o, 1);
    assert!(stdout(&o).contains("page 438"), "{}", stdout(&o));
    let o = run(&["check-bolt", "/nonexistent/file.db"]);
    status(&o, 2);
}

#[test]
fn import_bolt_then_dump_and_salvage() {
    let dir = TempDir::new().unwrap();
    let dst = dir.path().join("volumes.db");
    let o = run(&["import-bolt", s(&corpus("j_docker_volumes.db")), s(&dst)]);
    status(&o, 0);
    let o = run(&["dump", s(&dst)]);
    status(&o, 0);
    assert_eq!(
        stdout(&o).lines().count(),
        5001,
        "one bucket line and 5,000 keys"
    );
    // A damaged source is refused without --salvage and nothing is left behind.
    let bad = dir.path().join("bad.db");
    let o = run(&[
        "import-bolt",
        s(&corpus("corrupt_01_branch_to_freelist.db")),
        s(&bad),
    ]);
    status(&o, 1);
    assert!(!bad.exists());
    let o = run(&[
        "import-bolt",
        "--salvage",
        s(&corpus("corrupt_01_branch_to_freelist.db")),
        s(&bad),
    ]);
    assert!(
        o.status.code() == Some(0) || o.status.code() == Some(1),
        "{}",
        stderr(&o)
    );
    let o = run(&["check", s(&bad)]);
    status(&o, 0);
    // salvage of a damaged deadbolt file.
    let copy = dir.path().join("copy.db");
    std::fs::copy(&dst, &copy).unwrap();
    {
        // One more commit, so the volumes leaves are older than the newest commit.
        let db = Db::open(&copy).unwrap();
        db.update(|tx| tx.create_bucket(b"other").map(|_| ()))
            .unwrap();
    }
    let leaf = a_leaf_page(&copy);
    damage_page(&copy, leaf, 4096);
    let out = dir.path().join("saved.db");
    let o = run(&["salvage", s(&copy), s(&out)]);
    status(&o, 1);
    assert!(stdout(&o).contains("lost"), "{}", stdout(&o));
    let o = run(&["check", s(&out)]);
    status(&o, 0);
}

// ---------------------------------------------------------------------------------------------
// confirmed commits (issue 11): damage to one is damage, never a quiet rollback

/// CRC-32 (IEEE, what crc32fast computes), bit by bit: enough for patching one meta page,
/// without adding a dependency (and a lock-file change) for it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_flipped_bit_in_a_confirmed_imported_commit_makes_check_say_damaged_first_and_dump_fail() {
    // The issue's reproduction: `deadbolt import-bolt j_docker_volumes.db vol.db` (5,000
    // volumes), one bit flipped in page 5, then `check` and `dump`.
    let dir = TempDir::new().unwrap();
    let vol = dir.path().join("vol.db");
    let p = s(&vol);
    let o = run(&["import-bolt", s(&corpus("j_docker_volumes.db")), p]);
    status(&o, 0);
    let info = json(&run(&["info", "--json", p]));
    let page_size = info["page_size"].as_u64().unwrap();
    let txid = info["txid"].as_u64().unwrap();
    assert_eq!(
        info["confirmed_txid"], txid,
        "import-bolt's clean close confirmed the import"
    );
    // Page 5 as in the issue, if it is still a leaf the import wrote; otherwise the first one.
    let leaves: Vec<u64> = stdout(&run(&["pages", "--json", p]))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "leaf" && v["txid"].as_u64() == Some(txid))
        .filter_map(|v| v["id"].as_u64())
        .collect();
    let page = if leaves.contains(&5) { 5 } else { leaves[0] };
    let mut bytes = std::fs::read(&vol).unwrap();
    bytes[(page * page_size + page_size / 2 + 3) as usize] ^= 0x10;
    std::fs::write(&vol, &bytes).unwrap();

    let o = run(&["check", p]);
    status(&o, 1);
    let out = stdout(&o);
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("DAMAGED: ") && first.contains(&format!("page {page}")),
        "{out}"
    );
    assert!(
        !out.contains("rolled back at open"),
        "not a rollback: {out}"
    );
    let o = run(&["check", "--json", p]);
    status(&o, 1);
    let v = json(&o);
    assert_eq!(v["ok"], false);
    assert_eq!(v["problems"][0]["page"], page);
    assert!(v["rolled_back"].is_null(), "{v}");

    // No command passes off less than the confirmed commit holds as the database.
    for args in [
        vec!["dump"],
        vec!["dump", "--keep-going"],
        vec!["dump", "--format", "text"],
        vec!["info"],
        vec!["stats"],
        vec!["buckets"],
    ] {
        let mut a = args.clone();
        a.push(p);
        let o = run(&a);
        status(&o, 1);
        assert!(
            stderr(&o).contains("vol.db: database is damaged"),
            "{args:?}: {}",
            stderr(&o)
        );
        assert!(
            stdout(&o).lines().count() < 5001,
            "{args:?} printed everything"
        );
    }
    assert!(
        std::fs::read(&vol).unwrap() == bytes,
        "nothing wrote the file"
    );
}

#[test]
fn a_newer_format_version_is_exit_2_naming_both_versions_and_never_damaged() {
    let dir = TempDir::new().unwrap();
    let path = fixture(&dir);
    let p = s(&path);
    let page_size = json(&run(&["info", "--json", p]))["page_size"]
        .as_u64()
        .unwrap() as usize;
    let mut b = std::fs::read(&path).unwrap();
    assert_eq!(crc32(b"123456789"), 0xcbf4_3926, "the standard check value");
    assert_eq!(
        crc32(&b[4..page_size]).to_le_bytes(),
        b[0..4],
        "meta 0's checksum is CRC-32 of bytes [4, page_size)"
    );
    let newer = deadbolt::FORMAT_VERSION + 1;
    b[40..44].copy_from_slice(&newer.to_le_bytes());
    let crc = crc32(&b[4..page_size]);
    b[0..4].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &b).unwrap();

    for args in [
        vec!["check"],
        vec!["check", "--json"],
        vec!["check", "--strict"],
        vec!["info"],
        vec!["dump"],
        vec!["stats"],
    ] {
        let mut a = args.clone();
        a.push(p);
        let o = run(&a);
        status(&o, 2);
        let err = stderr(&o);
        assert!(
            err.contains("fixture.db")
                && err.contains(&format!("version {newer}"))
                && err.contains(&format!("reads version {}", deadbolt::FORMAT_VERSION)),
            "{args:?}: {err}"
        );
        let all = format!("{}{err}", stdout(&o));
        assert!(
            !all.to_lowercase().contains("damaged"),
            "{args:?}: not damage: {all}"
        );
    }
    assert!(
        std::fs::read(&path).unwrap() == b,
        "the file was not changed"
    );
}

#[test]
fn a_bbolt_file_given_to_deadbolt_commands_is_exit_2_naming_import_bolt_and_is_never_written() {
    let dir = TempDir::new().unwrap();
    let original = std::fs::read(corpus("j_docker_volumes.db")).unwrap();
    let bolt = dir.path().join("volumes.db");
    std::fs::write(&bolt, &original).unwrap();
    let b = s(&bolt);
    let dst = dir.path().join("new.db");
    let d = s(&dst);
    for args in [
        vec!["check", b],
        vec!["check", "--json", b],
        vec!["info", b],
        vec!["info", "--json", b],
        vec!["stats", b],
        vec!["buckets", b],
        vec!["keys", b, "volumes"],
        vec!["get", b, "volumes", "x"],
        vec!["pages", b],
        vec!["page", b, "0"],
        vec!["dump", b],
        vec!["dump", "--keep-going", b],
        vec!["backup", b, d],
        vec!["compact", b, d],
        vec!["salvage", b, d],
    ] {
        let o = run(&args);
        status(&o, 2);
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            all.contains("volumes.db") && all.contains("deadbolt import-bolt"),
            "{args:?}: {all}"
        );
        assert!(!dst.exists(), "{args:?} left {d} behind");
    }
    let o = run(&["check", b]);
    assert!(
        stderr(&o).contains(&format!("deadbolt check-bolt {b}")),
        "{}",
        stderr(&o)
    );
    assert!(
        std::fs::read(&bolt).unwrap() == original,
        "the bbolt file is byte for byte unchanged"
    );
}
