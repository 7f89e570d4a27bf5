//! Kubernetes operator for Universal.
