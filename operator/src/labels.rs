//! Names the operator writes on Kubernetes and Universal objects.

/// Prefix of every label and annotation the operator owns.
pub const PREFIX: &str = "universal.dev/";

/// Label on Universal objects the operator created: `universal.dev/managed-by=uni-operator`.
pub const MANAGED_BY: &str = uni_core::model::MANAGED_BY;
pub const OPERATOR: &str = "uni-operator";

/// Label on Universal workloads: the kind of the resource they mirror.
pub const KIND: &str = "universal.dev/kind";

/// Annotation on Universal objects: fingerprint of the spec last written.
pub const FINGERPRINT: &str = "universal.dev/spec-fingerprint";

/// Annotation on Universal objects: uid of the resource they mirror.
pub const OWNER_UID: &str = "universal.dev/owner-uid";

/// Finalizer on resources: the Universal object is gone before the resource goes.
pub const FINALIZER: &str = "universal.dev/cleanup";

/// Label selector for every Universal workload the operator manages.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={OPERATOR}")
}
