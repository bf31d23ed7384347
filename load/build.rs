//! Compiles the sidecar's gRPC API (`../proto/switchboard/v1/switchboard.proto`) into a client,
//! with the vendored `protoc`, so the load generator does not depend on what the `switchboard`
//! crate chooses to export.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("..");
    let proto_dir = root.join("proto");
    println!("cargo:rerun-if-changed={}", proto_dir.display());
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_with_config(
            config,
            &[proto_dir.join("switchboard/v1/switchboard.proto")],
            &[proto_dir, protoc_bin_vendored::include_path()?],
        )?;
    Ok(())
}
