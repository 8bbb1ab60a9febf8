//! Generates the node-to-node gRPC services from `proto/hoard.proto`. protox parses the file in Rust, so
//! building hoard needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let files = protox::compile(["hoard.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(false)
        .bytes(".")
        .compile_fds(files)?;
    Ok(())
}
