//! Replays every committed corpus file (and every past finding) through its target, so a
//! regression of something the fuzzer once found fails `cargo test`, on stable, in CI.

use std::path::Path;

#[test]
fn every_corpus_file_runs_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut ran = 0;
    for (name, target) in voxboard_fuzz::TARGETS {
        let dir = root.join(name);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (every target keeps a corpus)", dir.display()));
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let data = std::fs::read(&path).expect("corpus file");
            // A panic names the file: `cargo fuzz run NAME --features libfuzzer PATH` replays it.
            println!("{name}: {}", path.display());
            target(&data);
            ran += 1;
        }
    }
    assert!(
        ran >= voxboard_fuzz::TARGETS.len(),
        "only {ran} corpus files"
    );
}
