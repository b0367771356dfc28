//! Compiles `proto/*.proto` with the protoc shipped by `protoc-bin-vendored`, so a fresh
//! machine needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto/cluster.proto");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&["proto/cluster.proto"], &["proto"])?;
    Ok(())
}
