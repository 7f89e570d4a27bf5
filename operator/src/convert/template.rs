//! The replica template, from the custom resource's form to the Universal wire form.

use uni_proto::v1 as pb;

use crate::crd::template::{
    AcceleratorRequest, Interconnect, Placement, Preference, ReplicaTemplate, TaintEffect,
    Toleration, TolerationOperator,
};

pub fn template(t: &ReplicaTemplate) -> pb::ReplicaTemplate {
    pb::ReplicaTemplate {
        command: t.command.clone(),
        args: t.args.clone(),
        env: t
            .env
            .iter()
            .map(|e| pb::EnvVar {
                name: e.name.clone(),
                value: e.value.clone(),
            })
            .collect(),
        working_dir: t.working_dir.clone().unwrap_or_default(),
        resources: Some(pb::Resources {
            compute: t.resources.compute.clone(),
            memory: t.resources.memory.clone(),
            accelerator: t.resources.accelerator.as_ref().map(accelerator),
        }),
        placement: t.placement.as_ref().map(placement),
        run_as_user: t.run_as_user,
        run_as_group: t.run_as_group,
    }
}

fn accelerator(a: &AcceleratorRequest) -> pb::AcceleratorRequest {
    pb::AcceleratorRequest {
        memory: a.memory.clone(),
        bf16_tflops: a.bf16_tflops.unwrap_or(0.0),
        min_devices: a.min_devices.unwrap_or(0),
        max_devices: a.max_devices.unwrap_or(0),
        shareable: a.shareable.unwrap_or(false),
        interconnect: a
            .interconnect
            .map_or(pb::Interconnect::Unspecified, |i| match i {
                Interconnect::Any => pb::Interconnect::Any,
                Interconnect::SameNode => pb::Interconnect::SameNode,
                Interconnect::NvLink => pb::Interconnect::Nvlink,
            }) as i32,
        allowed_models: a.allowed_models.clone(),
        forbidden_models: a.forbidden_models.clone(),
    }
}

fn placement(p: &Placement) -> pb::Placement {
    pb::Placement {
        node_selector: p.node_selector.clone().unwrap_or_default(),
        allowed_classes: p.allowed_classes.clone(),
        forbidden_classes: p.forbidden_classes.clone(),
        tolerations: p.tolerations.iter().map(toleration).collect(),
        prefer: p.prefer.map_or(pb::Preference::Unspecified, |p| match p {
            Preference::Cost => pb::Preference::Cost,
            Preference::Speed => pb::Preference::Speed,
        }) as i32,
    }
}

fn toleration(t: &Toleration) -> pb::Toleration {
    pb::Toleration {
        key: t.key.clone().unwrap_or_default(),
        operator: t
            .operator
            .map_or(pb::TolerationOperator::Unspecified, |o| match o {
                TolerationOperator::Equal => pb::TolerationOperator::Equal,
                TolerationOperator::Exists => pb::TolerationOperator::Exists,
            }) as i32,
        value: t.value.clone().unwrap_or_default(),
        effect: t.effect.map_or(pb::TaintEffect::Unspecified, |e| match e {
            TaintEffect::NoSchedule => pb::TaintEffect::NoSchedule,
            TaintEffect::PreferNoSchedule => pb::TaintEffect::PreferNoSchedule,
            TaintEffect::NoExecute => pb::TaintEffect::NoExecute,
        }) as i32,
        toleration_seconds: t.toleration_seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replica_identity_reaches_the_wire_and_unset_stays_unset() {
        let yaml = "command: [/bin/serve]\nresources: {compute: 1, memory: 1Gi}\n\
                    runAsUser: 0\nrunAsGroup: 1000\n";
        let t: ReplicaTemplate = serde_yaml::from_str(yaml).expect("custom resource form");
        let wire = template(&t);
        assert_eq!((wire.run_as_user, wire.run_as_group), (Some(0), Some(1000)));
        let unset = template(&ReplicaTemplate::default());
        assert_eq!((unset.run_as_user, unset.run_as_group), (None, None));
    }
}
