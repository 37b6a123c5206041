use super::*;

#[test]
fn round_trips_and_rejects_torn_files() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(read(dir.path()), None);
    let mut w = Witness::open(dir.path()).unwrap();
    w.write(41).unwrap();
    w.write(42).unwrap();
    assert_eq!(read(dir.path()), Some(42));
    let mut bytes = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
    bytes[5] ^= 1;
    std::fs::write(dir.path().join(FILE_NAME), &bytes).unwrap();
    assert_eq!(read(dir.path()), None);
    std::fs::write(dir.path().join(FILE_NAME), b"pfw1").unwrap();
    assert_eq!(read(dir.path()), None);
}
