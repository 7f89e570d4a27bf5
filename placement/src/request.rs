//! What one replica asks of a node, in the engine's terms.

use uni_core::catalog::Catalog;
use uni_core::model::WorkloadRef;
use uni_core::model::{
    AcceleratorRequest, Interconnect, Preference, ResourceAmounts, Selector, Toleration, Workload,
    WorkloadKind,
};
use uni_core::units::devices_to_milli;

use super::node_state::DeviceState;

/// Allowed and forbidden accelerator models; empty `allowed` = any. A name matches a device's
/// catalog canonical name or its raw (discovered) name, case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelFilter {
    pub allowed: Vec<String>,
    pub forbidden: Vec<String>,
}

impl ModelFilter {
    pub fn allows(&self, canonical: &str, raw: &str) -> bool {
        let named = |list: &[String]| {
            list.iter()
                .any(|m| m.eq_ignore_ascii_case(canonical) || m.eq_ignore_ascii_case(raw))
        };
        (self.allowed.is_empty() || named(&self.allowed)) && !named(&self.forbidden)
    }

    pub fn allows_device(&self, d: &DeviceState) -> bool {
        self.allows(&d.model, &d.raw_model)
    }

    /// Adds the catalog canonical name of every name the catalog knows (`V100M32` ->
    /// `nvidia-v100-32gb`), so that any alias matches devices discovered under another alias.
    pub fn resolve(&mut self, catalog: &Catalog) {
        for list in [&mut self.allowed, &mut self.forbidden] {
            let canonical: Vec<String> = list
                .iter()
                .filter_map(|m| catalog.accelerator(m).map(|a| a.name.clone()))
                .filter(|c| !list.iter().any(|m| m.eq_ignore_ascii_case(c)))
                .collect();
            list.extend(canonical);
        }
    }
}

/// What a replica needs from accelerators.
#[derive(Debug, Clone, PartialEq)]
pub enum GpuDemand {
    /// A share of ONE device. `milli` is an explicit share (as in the openb trace); without it
    /// the share is derived per device from `memory_bytes` and `tflops` (the larger ratio).
    Fraction {
        milli: Option<u32>,
        memory_bytes: u64,
        tflops: f64,
        models: ModelFilter,
    },
    /// `n` whole devices on one node, `n` in `min_devices..=max_devices`, each providing at
    /// least `total / n` memory and TFLOPS; with `Interconnect::NvLink` all in one island.
    Whole {
        min_devices: u32,
        max_devices: u32,
        memory_bytes_total: u64,
        tflops_total: f64,
        interconnect: Interconnect,
        models: ModelFilter,
    },
}

impl GpuDemand {
    pub fn models(&self) -> &ModelFilter {
        match self {
            Self::Fraction { models, .. } | Self::Whole { models, .. } => models,
        }
    }

    fn models_mut(&mut self) -> &mut ModelFilter {
        match self {
            Self::Fraction { models, .. } | Self::Whole { models, .. } => models,
        }
    }

    /// Whether the demand is stated in capability terms (device memory or throughput), leaving
    /// the choice of device to the scheduler; a bare count or share names devices, and any
    /// device that fits is what was asked for.
    pub fn in_capability_terms(&self) -> bool {
        match self {
            Self::Fraction {
                milli,
                memory_bytes,
                tflops,
                ..
            } => milli.is_none() || *memory_bytes > 0 || *tflops > 0.0,
            Self::Whole {
                memory_bytes_total,
                tflops_total,
                ..
            } => *memory_bytes_total > 0 || *tflops_total > 0.0,
        }
    }

    /// The device counts the demand may use, in order (a fraction uses one device).
    pub fn device_counts(&self) -> std::ops::RangeInclusive<u32> {
        match self {
            Self::Fraction { .. } => 1..=1,
            Self::Whole {
                min_devices,
                max_devices,
                ..
            } => {
                let min = (*min_devices).max(1);
                min..=(*max_devices).max(min)
            }
        }
    }
}

/// One replica (or training worker) to place.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaRequest {
    pub workload: WorkloadRef,
    pub compute_milli: u64,
    pub memory_bytes: u64,
    pub gpu: Option<GpuDemand>,
    pub selector: Option<Selector>,
    pub tolerations: Vec<Toleration>,
    pub allowed_classes: Vec<String>,
    pub forbidden_classes: Vec<String>,
    pub prefer: Preference,
    /// Prefer nodes with fewer replicas of the same workload.
    pub spread: bool,
    /// CPU-only work must leave a GPU node enough host compute and memory for its free
    /// accelerators (see `filter::host_reserve`). Trace replays of published baselines turn
    /// this off to stay faithful to them.
    pub reserve_host_for_accelerators: bool,
}

impl ReplicaRequest {
    /// A CPU-only request with no constraints (tests, trace replay).
    pub fn new(workload: WorkloadRef, compute_milli: u64, memory_bytes: u64) -> Self {
        Self {
            workload,
            compute_milli,
            memory_bytes,
            gpu: None,
            selector: None,
            tolerations: Vec::new(),
            allowed_classes: Vec::new(),
            forbidden_classes: Vec::new(),
            prefer: Preference::Cost,
            spread: false,
            reserve_host_for_accelerators: false,
        }
    }

    /// One replica of `workload`: its template's resources and placement. Inference replicas
    /// spread over nodes; a shareable accelerator request that may use a single device becomes
    /// a `Fraction`, anything else `Whole`.
    pub fn from_workload(workload: &Workload) -> ReplicaRequest {
        let template = workload.spec.template();
        let resources = &template.resources;
        let placement = &template.placement;
        ReplicaRequest {
            workload: WorkloadRef::new(&workload.meta.namespace, &workload.meta.name),
            compute_milli: resources.compute_milli,
            memory_bytes: resources.memory_bytes,
            gpu: resources.accelerator.as_ref().map(gpu_demand),
            selector: (!placement.node_selector.is_empty())
                .then(|| placement.node_selector.clone()),
            tolerations: placement.tolerations.clone(),
            allowed_classes: placement.allowed_classes.clone(),
            forbidden_classes: placement.forbidden_classes.clone(),
            prefer: placement.prefer,
            spread: workload.kind() == WorkloadKind::InferenceService,
            reserve_host_for_accelerators: true,
        }
    }

    /// The least one replica takes (a share's size is known only once a device is chosen:
    /// at least a thousandth), for quota checks made before placement.
    pub fn least_amounts(&self) -> ResourceAmounts {
        let (device_milli, device_memory_bytes) = match &self.gpu {
            None => (0, 0),
            Some(GpuDemand::Fraction {
                milli,
                memory_bytes,
                ..
            }) => (u64::from(milli.unwrap_or(1).max(1)), *memory_bytes),
            Some(GpuDemand::Whole {
                min_devices,
                memory_bytes_total,
                ..
            }) => (devices_to_milli((*min_devices).max(1)), *memory_bytes_total),
        };
        ResourceAmounts {
            compute_milli: self.compute_milli,
            memory_bytes: self.memory_bytes,
            device_milli,
            device_memory_bytes,
        }
    }

    /// The device models the request allows (empty: any).
    pub fn allowed_models(&self) -> Vec<String> {
        self.gpu
            .as_ref()
            .map_or_else(Vec::new, |g| g.models().allowed.clone())
    }

    /// Lets catalog aliases in the model filter match devices discovered under other names.
    pub fn resolve_models(&mut self, catalog: &Catalog) {
        if let Some(gpu) = &mut self.gpu {
            gpu.models_mut().resolve(catalog);
        }
    }

    pub fn allows_class(&self, class: &str) -> bool {
        (self.allowed_classes.is_empty() || self.allowed_classes.iter().any(|c| c == class))
            && !self.forbidden_classes.iter().any(|c| c == class)
    }
}

fn gpu_demand(a: &AcceleratorRequest) -> GpuDemand {
    let models = ModelFilter {
        allowed: a.allowed_models.clone(),
        forbidden: a.forbidden_models.clone(),
    };
    if a.shareable && a.min_devices <= 1 {
        GpuDemand::Fraction {
            milli: None,
            memory_bytes: a.memory_bytes,
            tflops: a.bf16_tflops,
            models,
        }
    } else {
        GpuDemand::Whole {
            min_devices: a.min_devices,
            max_devices: a.max_devices,
            memory_bytes_total: a.memory_bytes,
            tflops_total: a.bf16_tflops,
            interconnect: a.interconnect,
            models,
        }
    }
}

#[cfg(test)]
mod tests {
    use uni_core::model::{
        InferenceServiceSpec, ObjectMeta, ReplicaTemplate, Resources, TrainingJobSpec, WorkloadSpec,
    };
    use uni_core::units::GIB;

    use super::*;

    #[test]
    fn model_filter_matches_canonical_or_raw_ignoring_case() {
        let f = ModelFilter {
            allowed: vec!["NVIDIA-A100-80GB".into(), "t4".into()],
            forbidden: vec!["Tesla T4".into()],
        };
        assert!(f.allows("nvidia-a100-80gb", "NVIDIA A100-SXM4-80GB"));
        assert!(!f.allows("nvidia-t4", "Tesla T4"));
        assert!(f.allows("nvidia-t4", "T4"));
        assert!(!f.allows("nvidia-h100-sxm", "H100"));
        assert!(ModelFilter::default().allows("anything", "at all"));
    }

    #[test]
    fn resolve_adds_canonical_names() {
        let catalog = Catalog::builtin().expect("catalog");
        let mut f = ModelFilter {
            allowed: vec!["V100M32".into(), "unknown".into()],
            forbidden: vec![],
        };
        f.resolve(&catalog);
        assert!(f.allows("nvidia-v100-32gb", "Tesla V100-SXM2-32GB"));
        assert_eq!(f.allowed.len(), 3);
    }

    fn workload(spec: WorkloadSpec) -> Workload {
        Workload {
            meta: ObjectMeta::namespaced("ns", "w"),
            spec,
            ..Workload::default()
        }
    }

    #[test]
    fn from_workload_maps_template_and_kind() {
        let template = ReplicaTemplate {
            resources: Resources {
                compute_milli: 4000,
                memory_bytes: 16 * GIB,
                accelerator: Some(AcceleratorRequest {
                    memory_bytes: 20 * GIB,
                    shareable: true,
                    allowed_models: vec!["nvidia-l4".into()],
                    ..AcceleratorRequest::default()
                }),
            },
            ..ReplicaTemplate::default()
        };
        let inference = workload(WorkloadSpec::Inference(InferenceServiceSpec {
            template: template.clone(),
            ..InferenceServiceSpec::default()
        }));
        let req = ReplicaRequest::from_workload(&inference);
        assert_eq!(req.workload, WorkloadRef::new("ns", "w"));
        assert_eq!((req.compute_milli, req.memory_bytes), (4000, 16 * GIB));
        assert!(req.spread);
        assert!(req.selector.is_none());
        match &req.gpu {
            Some(GpuDemand::Fraction {
                milli: None,
                memory_bytes,
                models,
                ..
            }) => {
                assert_eq!(*memory_bytes, 20 * GIB);
                assert_eq!(models.allowed, vec!["nvidia-l4".to_string()]);
            }
            other => panic!("expected a fraction, got {other:?}"),
        }

        let mut whole = template;
        whole.resources.accelerator = Some(AcceleratorRequest {
            memory_bytes: 160 * GIB,
            min_devices: 2,
            max_devices: 4,
            interconnect: Interconnect::NvLink,
            ..AcceleratorRequest::default()
        });
        whole.placement.node_selector = Selector::parse("zone=a").expect("selector");
        let training = workload(WorkloadSpec::Training(TrainingJobSpec {
            template: whole,
            ..TrainingJobSpec::default()
        }));
        let req = ReplicaRequest::from_workload(&training);
        assert!(!req.spread);
        assert!(req.selector.is_some());
        let gpu = req.gpu.expect("gpu");
        assert_eq!(gpu.device_counts(), 2..=4);
        assert!(matches!(
            gpu,
            GpuDemand::Whole {
                memory_bytes_total,
                interconnect: Interconnect::NvLink,
                ..
            } if memory_bytes_total == 160 * GIB
        ));
    }
}
