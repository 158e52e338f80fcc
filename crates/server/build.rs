//! Compiles the etcd v3 API and Synod's command protobufs with a protoc from crates.io, so
//! building needs nothing beyond the Rust toolchain; and the JSON mapping of the etcd API's
//! messages for the gateway.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let protos = [
        "proto/mvccpb/kv.proto",
        "proto/authpb/auth.proto",
        "proto/etcdserverpb/rpc.proto",
        "proto/v3lockpb/v3lock.proto",
        "proto/v3electionpb/v3election.proto",
        "proto/grpc/health/v1/health.proto",
        "proto/synodpb/command.proto",
    ];
    let descriptors = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("descriptors.bin");
    tonic_prost_build::configure()
        .build_client(true)
        .file_descriptor_set_path(&descriptors)
        .compile_protos(&protos, &["proto"])?;
    // The JSON gateway's mapping (proto3 JSON with the .proto's field names, as etcd's
    // grpc-gateway writes them) for the etcd API's messages.
    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptors)?)?
        .preserve_proto_field_names()
        .build(&[
            ".mvccpb",
            ".authpb",
            ".etcdserverpb",
            ".v3lockpb",
            ".v3electionpb",
        ])?;
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
