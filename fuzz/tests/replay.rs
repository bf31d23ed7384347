//! Replays every committed fuzz input through its target, as an ordinary test (no AFL needed):
//! the corpus each target grew under AFL++ (`fuzz/corpus/<target>/`, minimised) and the inputs
//! that once crashed it (`fuzz/regressions/<target>/`, each fixed). A target that panics on any
//! of them fails here, naming the file.

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(name: &str) {
    let target = switchboard_fuzz::target(name).expect("a fuzz target of that name");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = inputs(&root.join("corpus").join(name));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{name} holds the target's corpus"
    );
    let regressions = inputs(&root.join("regressions").join(name));
    for file in corpus.iter().chain(&regressions) {
        let data = std::fs::read(file).expect("a corpus file");
        let outcome = std::panic::catch_unwind(|| (target.run)(&data));
        assert!(outcome.is_ok(), "{} crashes `{name}`", file.display());
    }
}

#[test]
fn phone_parsing_survives_its_corpus_and_regressions() {
    replay("phone");
}

#[test]
fn http_api_bodies_survive_their_corpus_and_regressions() {
    replay("http");
}

#[test]
fn grpc_api_messages_survive_their_corpus_and_regressions() {
    replay("grpc");
}

#[test]
fn provider_receipts_survive_their_corpus_and_regressions() {
    replay("receipts");
}

#[test]
fn receipt_seeds_with_honest_proofs_reach_every_parser() {
    // Seeds 0-4: one real status callback per provider (twilio, meta_whatsapp, telegram,
    // vonage, infobip) signed as the provider would: each must get past its verifier, or the
    // target would only ever fuzz the signature check.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/receipts");
    for i in 0..5 {
        let data = std::fs::read(dir.join(format!("seed-{i:03}"))).expect("a receipt seed");
        let outcome = switchboard_fuzz::receipts::receipts(&data);
        assert!(
            matches!(outcome, Some(Ok(n)) if n > 0),
            "seed-{i:03} is parsed into receipts: {outcome:?}"
        );
    }
}

#[test]
fn webhook_canonicaliser_survives_its_corpus_and_regressions() {
    replay("canonical");
}

#[test]
fn configuration_loading_survives_its_corpus_and_regressions() {
    replay("config");
}

#[test]
fn every_target_is_replayed_here() {
    let replayed = ["phone", "http", "grpc", "receipts", "canonical", "config"];
    let names: Vec<&str> = switchboard_fuzz::TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(names, replayed, "a new target gets its replay test above");
}
