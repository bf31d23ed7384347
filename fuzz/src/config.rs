//! Configuration loading: the TOML of a config file (over the embedded defaults, with its
//! validation) and of a route table file.
//!
//! Input: TOML text. Invariant: an error, never a panic; a config that loads names its
//! default application.

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = switchboard::Config::from_toml(text) {
        assert!(
            config.app(switchboard::config::DEFAULT_APP).is_some(),
            "a loaded config has its default application"
        );
    }
    let _ = switchboard::routing::RouteTable::from_toml(text);
}
