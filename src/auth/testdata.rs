//! The committed test keys (`tests/data/auth/`, made with openssl and
//! `make_vectors.py`).

use std::path::PathBuf;

pub(crate) fn data(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/auth")).join(name)
}

pub(crate) fn read(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}
