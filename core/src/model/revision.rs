//! Revisions of what an inference service's replicas run: a rolling update replaces replicas
//! of older revisions with the current one, and `rollout undo` goes back to a recorded one.

use serde::{Deserialize, Serialize};

use super::inference::{InferenceServiceSpec, Probe};
use super::template::ReplicaTemplate;
use super::time::UnixMillis;

/// Revisions a service keeps for `rollout history` and `undo`.
pub const KEPT_REVISIONS: usize = 10;

/// The part of an inference service's spec that a replica runs: changing it rolls the
/// replicas; changing the replica count or autoscaling does not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceTemplate {
    pub template: ReplicaTemplate,
    pub port: u16,
    pub readiness_probe: Option<Probe>,
    pub liveness_probe: Option<Probe>,
}

impl ServiceTemplate {
    pub fn of(s: &InferenceServiceSpec) -> Self {
        Self {
            template: s.template.clone(),
            port: s.port,
            readiness_probe: s.readiness_probe.clone(),
            liveness_probe: s.liveness_probe.clone(),
        }
    }

    /// Puts this template back into `s`.
    pub fn apply_to(&self, s: &mut InferenceServiceSpec) {
        s.template = self.template.clone();
        s.port = self.port;
        s.readiness_probe = self.readiness_probe.clone();
        s.liveness_probe = self.liveness_probe.clone();
    }

    /// A stable digest (FNV-1a over the canonical JSON), the same on every replica and
    /// release, so replicas are compared without storing their whole template.
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in json {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    /// One line for `rollout history`: the command and what a replica asks for.
    pub fn summary(&self) -> String {
        let mut cmd = self.template.command.join(" ");
        if !self.template.args.is_empty() {
            cmd.push(' ');
            cmd.push_str(&self.template.args.join(" "));
        }
        const MAX: usize = 60;
        if cmd.chars().count() > MAX {
            cmd = cmd.chars().take(MAX - 3).collect::<String>() + "...";
        }
        cmd.replace('\n', " ")
    }
}

/// Records `t` as the newest revision in `revisions` unless it is already the newest; going
/// back to an earlier template moves it to the end under a new number. Keeps the last
/// [`KEPT_REVISIONS`]. Returns whether anything changed.
pub fn record(revisions: &mut Vec<TemplateRevision>, t: &ServiceTemplate, now: UnixMillis) -> bool {
    let hash = t.hash();
    if revisions.last().is_some_and(|x| x.hash == hash) {
        return false;
    }
    let number = revisions.iter().map(|x| x.revision).max().unwrap_or(0) + 1;
    revisions.retain(|x| x.hash != hash);
    revisions.push(TemplateRevision {
        revision: number,
        hash,
        created: now,
        template: Some(t.clone()),
        summary: t.summary(),
    });
    let extra = revisions.len().saturating_sub(KEPT_REVISIONS);
    revisions.drain(..extra);
    true
}

/// One recorded revision of a service's template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateRevision {
    /// 1, 2, ... in the order they were first run.
    pub revision: u32,
    pub hash: String,
    pub created: UnixMillis,
    /// Kept where the workload is stored; not sent to clients (they get `summary`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<ServiceTemplate>,
    pub summary: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_follows_what_replicas_run_and_nothing_else() {
        let mut s = InferenceServiceSpec::default();
        s.template.command = vec!["serve".into(), "--model".into(), "a".into()];
        let h = ServiceTemplate::of(&s).hash();
        s.replicas.desired = 7;
        s.replicas.max = 9;
        assert_eq!(
            ServiceTemplate::of(&s).hash(),
            h,
            "scaling is not a new revision"
        );
        s.template.command[2] = "b".into();
        assert_ne!(ServiceTemplate::of(&s).hash(), h);
        assert_eq!(h.len(), 16);
    }
}
