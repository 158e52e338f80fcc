//! The generated protobuf and gRPC code: etcd's v3 API, gRPC health, and Synod's command.
#![allow(missing_docs, clippy::all, clippy::pedantic, unused_qualifications)]

pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}
pub mod health {
    tonic::include_proto!("grpc.health.v1");
}
pub mod synodpb {
    tonic::include_proto!("synodpb");
}
