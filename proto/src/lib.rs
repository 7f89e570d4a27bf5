//! The public gRPC API of Universal (`universal.v1`).
//!
//! Generated from `proto/universal/v1/*.proto`. Domain logic never uses these types directly;
//! `uni-core` converts them into domain types with `From`/`TryFrom`.

pub mod v1 {
    #![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]
    tonic::include_proto!("universal.v1");

    /// Encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("universal_v1_descriptor");
}
