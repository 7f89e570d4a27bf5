//! Test support: a real etcd on free ports.
