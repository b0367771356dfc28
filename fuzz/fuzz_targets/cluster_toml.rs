//! `cluster.toml` as an operator could write it, with environment overrides: loading never
//! panics, and a config that loads survives a round trip through TOML unchanged.

#![no_main]

use gru::config::ClusterConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Lines `GRU_…=…` after a `%%` line are environment overrides.
    let (file, env) = text.split_once("\n%%\n").unwrap_or((text, ""));
    let env: Vec<(String, String)> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Ok(config) = ClusterConfig::from_toml_str(file, env) {
        let again = toml::to_string(&config).expect("a loaded config serializes");
        let back = ClusterConfig::from_toml_str(&again, []).expect("and loads again");
        assert_eq!(back, config);
    }
});
