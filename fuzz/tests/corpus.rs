//! Replays every committed input through its target as a plain test: the seed corpora
//! (`fuzz/corpus/<target>/`) and every input that once crashed a target
//! (`fuzz/regressions/<target>/`). Also checks that each target in `TARGETS` has its
//! libFuzzer binary and seeds, so a new target cannot be half added.
//!
//! One input by hand: `FUZZ_REPLAY=<target>:<file> cargo test -p ringcast-fuzz --test
//! corpus replay_one -- --nocapture`.

use std::fs;
use std::panic::catch_unwind;
use std::path::{Path, PathBuf};

use ringcast_fuzz::{TARGETS, Target, target};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files directly in `dir`, sorted (none when it does not exist).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// Run `t` on every file of `dir`; the files whose run panicked.
fn replay_dir(t: &Target, dir: &Path) -> (usize, Vec<String>) {
    let mut failed = Vec::new();
    let inputs = files(dir);
    for path in &inputs {
        let data = fs::read(path).expect("read a corpus file");
        if catch_unwind(|| (t.run)(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    (inputs.len(), failed)
}

#[test]
fn seed_corpora() {
    let mut failed = Vec::new();
    for t in TARGETS {
        let dir = fuzz_dir().join("corpus").join(t.name);
        let (n, f) = replay_dir(t, &dir);
        assert!(n > 0, "no seeds in {}", dir.display());
        eprintln!("{}: {n} seeds", t.name);
        failed.extend(f);
    }
    assert!(failed.is_empty(), "inputs that fail: {failed:#?}");
}

#[test]
fn past_crashes() {
    let mut failed = Vec::new();
    for t in TARGETS {
        let (n, f) = replay_dir(t, &fuzz_dir().join("regressions").join(t.name));
        eprintln!("{}: {n} past crashes", t.name);
        failed.extend(f);
    }
    assert!(
        failed.is_empty(),
        "past crashes that fail again: {failed:#?}"
    );
    // No directory for a target that does not exist (a renamed target loses its checks).
    for dir in fs::read_dir(fuzz_dir().join("regressions"))
        .into_iter()
        .flatten()
    {
        let name = dir.expect("read regressions/").file_name();
        let name = name.to_string_lossy();
        assert!(target(&name).is_some(), "regressions/{name} is no target");
    }
}

/// Every target has its libFuzzer binary and `[[bin]]` entry, and every binary a target.
#[test]
fn targets_have_binaries() {
    let lf = fuzz_dir().join("libfuzzer");
    let manifest = fs::read_to_string(lf.join("Cargo.toml")).expect("libfuzzer/Cargo.toml");
    for t in TARGETS {
        let bin = lf.join("fuzz_targets").join(format!("{}.rs", t.name));
        let src = fs::read_to_string(&bin)
            .unwrap_or_else(|_| panic!("{} has no binary {}", t.name, bin.display()));
        assert!(
            src.contains(&format!("ringcast_fuzz::{}::run", t.name)),
            "{} does not run target {}",
            bin.display(),
            t.name
        );
        assert!(
            manifest.contains(&format!("name = \"{}\"", t.name)),
            "no [[bin]] {} in libfuzzer/Cargo.toml",
            t.name
        );
    }
    for bin in files(&lf.join("fuzz_targets")) {
        let stem = bin.file_stem().unwrap_or_default().to_string_lossy();
        assert!(target(&stem).is_some(), "{} is no target", bin.display());
    }
}

/// `FUZZ_REPLAY=<target>:<file>` (absolute, or relative to the repository root): run one input (a crash artifact, say) with the panic
/// message and backtrace in view. Passes trivially when the variable is unset.
#[test]
fn replay_one() {
    let Ok(spec) = std::env::var("FUZZ_REPLAY") else {
        return;
    };
    let (name, path) = spec.split_once(':').expect("FUZZ_REPLAY=<target>:<file>");
    let t = target(name).unwrap_or_else(|| panic!("no target {name}"));
    // Relative to the repository root (the test itself runs in fuzz/).
    let path = fuzz_dir().join("..").join(path);
    let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (t.run)(&data);
}
