//! Per-object backoff for failed reconciles: one [`Backoff`] per resource, reset by a success.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::api::DynamicObject;
use kube::runtime::reflector::ObjectRef;
use kube::Resource;
use uni_core::Backoff;

pub struct ObjectBackoff {
    /// Copied, with no failures yet, for each object that fails.
    fresh: Backoff,
    objects: Mutex<HashMap<ObjectRef<DynamicObject>, Backoff>>,
}

impl ObjectBackoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            fresh: Backoff::new(base, max),
            objects: Mutex::new(HashMap::new()),
        }
    }

    /// Records one more failure of `obj` and returns how long to wait before retrying.
    pub fn failed<K: Resource<DynamicType = ()>>(&self, obj: &K) -> Duration {
        let mut objects = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        objects
            .entry(key(obj))
            .or_insert_with(|| self.fresh.clone())
            .fail()
    }

    pub fn succeeded<K: Resource<DynamicType = ()>>(&self, obj: &K) {
        self.objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key(obj));
    }
}

fn key<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectRef<DynamicObject> {
    ObjectRef::from_obj(obj).erase()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use kube::api::ObjectMeta;

    use super::*;

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            ..ObjectMeta::default()
        }
    }

    fn config_map(name: &str) -> ConfigMap {
        ConfigMap {
            metadata: meta(name),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn doubles_caps_and_resets_per_object() {
        let b = ObjectBackoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let (a, other) = (config_map("a"), config_map("b"));
        assert_eq!(b.failed(&a), Duration::from_millis(500));
        assert_eq!(b.failed(&a), Duration::from_secs(1));
        assert_eq!(b.failed(&a), Duration::from_secs(2));
        assert_eq!(b.failed(&other), Duration::from_millis(500));
        // Same name, another kind: its own count.
        let secret = Secret {
            metadata: meta("a"),
            ..Secret::default()
        };
        assert_eq!(b.failed(&secret), Duration::from_millis(500));
        for _ in 0..40 {
            b.failed(&a);
        }
        assert_eq!(b.failed(&a), Duration::from_secs(30));
        b.succeeded(&a);
        assert_eq!(b.failed(&a), Duration::from_millis(500));
        assert_eq!(b.failed(&other), Duration::from_secs(1));
    }
}
