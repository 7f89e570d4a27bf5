//! The store layer: one `KvStore` trait, an etcd and an embedded implementation.
