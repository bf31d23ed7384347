//! Compiles the gRPC API (`proto/switchboard/v1/switchboard.proto`) with the vendored `protoc`,
//! so a fresh clone builds without a system protobuf compiler, and writes the file descriptor
//! set that server reflection serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    // The same as setting `PROTOC`, without touching the process environment.
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("switchboard_descriptor.bin"))
        // `Debug` of a check request must not show the code; grpc.rs implements it.
        .skip_debug(["switchboard.v1.CheckRequest"])
        .compile_with_config(
            config,
            &[PathBuf::from("proto/switchboard/v1/switchboard.proto")],
            &[PathBuf::from("proto"), protoc_bin_vendored::include_path()?],
        )?;
    Ok(())
}
