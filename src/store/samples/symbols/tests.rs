use super::*;

fn tree() -> (tempfile::TempDir, sled::Db, sled::Tree) {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new().path(dir.path()).open().unwrap();
    let tree = db.open_tree("symbols").unwrap();
    (dir, db, tree)
}

#[test]
fn symbols_are_written_in_batches_counted_and_collected() {
    let (_dir, _db, tree) = tree();
    let (mut syms, bad) = Symbols::load(&tree).unwrap();
    assert!(bad.is_empty());
    let [job, api, up, web]: [LabelStr; 4] = ["job", "api", "up", "web"].map(LabelStr::from);
    let a = syms.id_or_new(&job).unwrap();
    let b = syms.id_or_new(&api).unwrap();
    assert_eq!(syms.id_or_new(&job).unwrap(), a, "one id per string");
    let c = syms.id_or_new(&up).unwrap();
    syms.commit(&tree).unwrap();
    assert_eq!(tree.len(), 1, "one batch");
    let d = syms.id_or_new(&web).unwrap();
    syms.commit(&tree).unwrap();
    assert_eq!(tree.len(), 2);
    syms.retain(&[a, b, a, c, d]);
    syms.release(&[a, c, d]);
    assert_eq!(syms.refs("job"), Some(1));
    // `up` goes from the first batch, which is rewritten; the second goes whole.
    assert_eq!(syms.collect(&tree, 10).unwrap(), (2, false));
    assert_eq!(tree.len(), 1);
    assert_eq!(syms.get(c), None);
    assert_eq!(syms.get(a).map(|s| &**s), Some("job"));

    let (mut again, bad) = Symbols::load(&tree).unwrap();
    assert!(bad.is_empty());
    assert_eq!(again.len(), 2);
    assert_eq!(again.get(b).map(|s| &**s), Some("api"));
    assert_eq!(
        again.id_or_new(&up).unwrap(),
        2,
        "ids go on after the largest"
    );
    // A damaged batch is reported, the rest loads, and its ids are not handed out again.
    tree.insert(9u32.to_be_bytes(), &[7, 1]).unwrap();
    tree.insert(20u32.to_be_bytes(), &[SYMBOLS_V1, 1, 0, 1, 0xff])
        .unwrap();
    tree.insert([1, 2], &[SYMBOLS_V1, 0]).unwrap();
    let (mut third, bad) = Symbols::load(&tree).unwrap();
    assert_eq!(
        bad,
        [
            DecodeError::UnknownFormat(7),
            DecodeError::Utf8,
            DecodeError::OutOfRange
        ]
    );
    assert_eq!(third.len(), 2);
    assert_eq!(third.id_or_new(&up).unwrap(), 21);
}

#[test]
fn a_failed_or_abandoned_commit_forgets_its_symbols() {
    let (_dir, _db, tree) = tree();
    let mut syms = Symbols::default();
    let x: LabelStr = "x".into();
    let id = syms.id_or_new(&x).unwrap();
    syms.rollback();
    assert_eq!(syms.get(id), None);
    assert_eq!(syms.collect(&tree, 10).unwrap(), (0, false));
    let again = syms.id_or_new(&x).unwrap();
    assert_ne!(again, id, "an id is never handed out twice in a process");
    // Not yet committed: not collected either.
    assert_eq!(syms.collect(&tree, 10).unwrap(), (0, false));
    syms.commit(&tree).unwrap();
    assert_eq!(syms.collect(&tree, 10).unwrap(), (1, false));
    assert!(tree.is_empty());
}

#[test]
fn collection_is_budgeted_by_batch() {
    let (_dir, _db, tree) = tree();
    let mut syms = Symbols::default();
    for i in 0..5 {
        syms.id_or_new(&LabelStr::from(i.to_string())).unwrap();
        syms.commit(&tree).unwrap();
    }
    assert_eq!(syms.collect(&tree, 2).unwrap(), (2, true));
    assert_eq!(syms.collect(&tree, 2).unwrap(), (2, true));
    assert_eq!(syms.collect(&tree, 2).unwrap(), (1, false));
    assert!(tree.is_empty());
}
