//! Resources, accelerator requests and placement.

use uni_proto::v1 as pb;

use super::{bytes, enum_value, join, list, milli, FromProto};
use crate::error::FieldErrors;
use crate::model::{AcceleratorRequest, Interconnect, Placement, Preference, Resources, Selector};
use crate::quantity::{format_bytes, format_milli};

impl From<&Resources> for pb::Resources {
    fn from(r: &Resources) -> Self {
        Self {
            compute: format_milli(r.compute_milli),
            memory: format_bytes(r.memory_bytes),
            accelerator: r.accelerator.as_ref().map(Into::into),
        }
    }
}

impl FromProto<pb::Resources> for Resources {
    fn from_proto(p: &pb::Resources, path: &str, errs: &mut FieldErrors) -> Self {
        Self {
            compute_milli: milli(&p.compute, path, "compute", errs),
            memory_bytes: bytes(&p.memory, path, "memory", errs),
            accelerator: p
                .accelerator
                .as_ref()
                .map(|a| AcceleratorRequest::from_proto(a, &join(path, "accelerator"), errs)),
        }
    }
}

impl From<Interconnect> for pb::Interconnect {
    fn from(i: Interconnect) -> Self {
        match i {
            Interconnect::Any => Self::Any,
            Interconnect::SameNode => Self::SameNode,
            Interconnect::NvLink => Self::Nvlink,
        }
    }
}

impl From<&AcceleratorRequest> for pb::AcceleratorRequest {
    fn from(a: &AcceleratorRequest) -> Self {
        Self {
            memory: format_bytes(a.memory_bytes),
            bf16_tflops: a.bf16_tflops,
            min_devices: a.min_devices,
            max_devices: a.max_devices,
            shareable: a.shareable,
            interconnect: pb::Interconnect::from(a.interconnect).into(),
            allowed_models: a.allowed_models.clone(),
            forbidden_models: a.forbidden_models.clone(),
        }
    }
}

impl FromProto<pb::AcceleratorRequest> for AcceleratorRequest {
    fn from_proto(p: &pb::AcceleratorRequest, path: &str, errs: &mut FieldErrors) -> Self {
        let interconnect = match enum_value(p.interconnect, path, "interconnect", errs) {
            Some(pb::Interconnect::SameNode) => Interconnect::SameNode,
            Some(pb::Interconnect::Nvlink) => Interconnect::NvLink,
            _ => Interconnect::Any,
        };
        let min_devices = p.min_devices.max(1);
        Self {
            memory_bytes: bytes(&p.memory, path, "memory", errs),
            bf16_tflops: p.bf16_tflops,
            min_devices,
            max_devices: if p.max_devices == 0 {
                min_devices
            } else {
                p.max_devices
            },
            shareable: p.shareable,
            interconnect,
            allowed_models: p.allowed_models.clone(),
            forbidden_models: p.forbidden_models.clone(),
        }
    }
}

impl From<&Placement> for pb::Placement {
    fn from(p: &Placement) -> Self {
        let prefer = match p.prefer {
            Preference::Cost => pb::Preference::Cost,
            Preference::Speed => pb::Preference::Speed,
        };
        Self {
            node_selector: p.node_selector.to_string(),
            allowed_classes: p.allowed_classes.clone(),
            forbidden_classes: p.forbidden_classes.clone(),
            tolerations: p.tolerations.iter().map(Into::into).collect(),
            prefer: prefer.into(),
        }
    }
}

impl FromProto<pb::Placement> for Placement {
    fn from_proto(p: &pb::Placement, path: &str, errs: &mut FieldErrors) -> Self {
        let node_selector = Selector::parse(&p.node_selector).unwrap_or_else(|e| {
            errs.push(join(path, "node_selector"), e);
            Selector::everything()
        });
        let prefer = match enum_value(p.prefer, path, "prefer", errs) {
            Some(pb::Preference::Speed) => Preference::Speed,
            _ => Preference::Cost,
        };
        Self {
            node_selector,
            allowed_classes: p.allowed_classes.clone(),
            forbidden_classes: p.forbidden_classes.clone(),
            tolerations: list(&p.tolerations, path, "tolerations", errs),
            prefer,
        }
    }
}
