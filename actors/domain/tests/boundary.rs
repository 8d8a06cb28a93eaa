//! The domain's boundary, held by its manifest: no runtime, no I/O, no telemetry.

const FORBIDDEN: [&str; 8] = ["actix", "actix-rt", "actix-web", "tokio", "redis", "metrics", "tracing", "futures-util"];

#[test]
fn the_domain_depends_on_no_runtime_io_or_telemetry() {
    let manifest: toml::Table = toml::from_str(include_str!("../Cargo.toml")).unwrap();
    let deps = manifest["dependencies"].as_table().unwrap();
    assert!(!deps.is_empty(), "the manifest was read");
    for name in deps.keys() {
        assert!(!FORBIDDEN.contains(&name.as_str()), "restrictd-domain must not depend on {name}");
    }
    for table in ["target", "build-dependencies"] {
        assert!(!manifest.contains_key(table), "restrictd-domain has no [{table}] dependencies");
    }
}
