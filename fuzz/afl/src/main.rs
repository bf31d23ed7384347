//! `fuzz-target <name>`: runs one switchboard fuzz target under AFL++ (persistent mode).
//! Built and started by `scripts/fuzz`; the names are `switchboard_fuzz::TARGETS`.

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(target) = switchboard_fuzz::target(&name) else {
        let names: Vec<&str> = switchboard_fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!("usage: fuzz-target <{}>", names.join("|"));
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| {
        (target.run)(data);
    });
}
