//! Adding and removing the operator's finalizer, guarded by the resource version read so a
//! concurrent change makes the patch fail (and the reconcile retry) instead of losing it.
//!
//! Not `kube::runtime::finalizer`: that helper owns the reconcile's control flow, while here
//! `decide` picks the finalizer steps like any other. With the helper, adding the finalizer
//! would end the reconcile (here the same pass goes on to create), cleanup returning Ok
//! removes the finalizer at once (here a workload still shutting down keeps it and requeues,
//! which the helper could only express as an error), and errors would come wrapped in its
//! `finalizer::Error<Error>`.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::Result;
use crate::labels::FINALIZER;

pub fn has<K: Resource>(obj: &K) -> bool {
    obj.finalizers().iter().any(|f| f == FINALIZER)
}

pub async fn add<K>(api: &Api<K>, obj: &K) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut finalizers = obj.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    set(api, obj, finalizers).await
}

pub async fn remove<K>(api: &Api<K>, obj: &K) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let finalizers: Vec<String> = obj
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    set(api, obj, finalizers).await
}

async fn set<K>(api: &Api<K>, obj: &K, finalizers: Vec<String>) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": obj.resource_version(),
        }
    });
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}
