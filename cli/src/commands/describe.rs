//! `unictl describe`: everything about one object, for a person: spec, status, where each
//! replica runs, and the events that explain it.

use std::fmt::Write;

use uni_core::model::{Event, Node, Queue, Workload, WorkloadPhase};
use uni_core::quantity::{format_bytes, format_milli};
use uni_proto::v1 as pb;

use super::{get_workload, list_nodes, list_workloads, now, resource, Ctx, Resource};
use crate::client::{explain, Clients};
use crate::output::table::{age, Table};
use crate::output::{held, quota};

pub async fn run(ctx: &Ctx, kind: &str, name: &str) -> anyhow::Result<()> {
    let mut c = ctx.clients().await?;
    let text = match resource(kind)? {
        Resource::Workloads(_) => {
            let w = get_workload(&mut c, &ctx.namespace, name).await?;
            let events = events_for(&mut c, &ctx.namespace, name).await?;
            workload(&w, &events, now())
        }
        Resource::Nodes => {
            let nodes = list_nodes(&mut c, "").await?;
            let n = nodes
                .into_iter()
                .find(|n| n.meta.name == name)
                .ok_or_else(|| anyhow::anyhow!("node {name:?} not found"))?;
            node(&n)
        }
        Resource::Queues => {
            let q = c
                .queues
                .get_queue(pb::GetQueueRequest { name: name.into() })
                .await
                .map_err(explain)?
                .into_inner();
            let q = uni_core::model::Queue::try_from(q)?;
            let everywhere = Ctx {
                target: ctx.target.clone(),
                namespace: ctx.namespace.clone(),
                namespace_explicit: false,
                all_namespaces: true,
            };
            let workloads = list_workloads(&mut c, &everywhere, "", None).await?;
            queue(&q, &workloads, now())
        }
        Resource::RoleBindings => {
            let b = super::access::get(&mut c, ctx, name, false).await?;
            serde_yaml::to_string(&b)?
        }
    };
    print!("{text}");
    Ok(())
}

async fn events_for(c: &mut Clients, ns: &str, name: &str) -> anyhow::Result<Vec<Event>> {
    let resp = c
        .events
        .list_events(pb::ListEventsRequest {
            filter: Some(pb::EventFilter {
                namespace: ns.to_string(),
                involved_name: name.to_string(),
                ..Default::default()
            }),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .map_err(explain)?
        .into_inner();
    let mut events = resp
        .events
        .into_iter()
        .map(Event::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    events.sort_by_key(|e| e.last_seen.0);
    Ok(events)
}

/// The text of `describe queue`: its quotas, where it stands in the tree, and why each of
/// its workloads waits (or was stopped).
pub fn queue(q: &Queue, workloads: &[Workload], now: i64) -> String {
    let mut o = String::new();
    let (spec, st) = (&q.spec, &q.status);
    let _ = writeln!(o, "Name:             {}", q.meta.name);
    let parent = if spec.parent.is_empty() {
        "<none>"
    } else {
        &spec.parent
    };
    let _ = writeln!(o, "Parent:           {parent}");
    let _ = writeln!(o, "Created:          {} ago", age(q.meta.created.0, now));
    let _ = writeln!(o, "Priority:         {}", spec.priority);
    let _ = writeln!(o, "Weight:           {}", spec.weight);
    let _ = writeln!(o, "Guaranteed:       {}", quota(&spec.guaranteed));
    let _ = writeln!(o, "Max:              {}", quota(&spec.max));
    let _ = writeln!(o, "Borrowing limit:  {}", quota(&spec.borrowing_limit));
    let _ = writeln!(o, "Lending limit:    {}", quota(&spec.lending_limit));
    let _ = writeln!(o, "Used:             {}", held(&st.usage));
    let _ = writeln!(o, "Borrowed:         {}", held(&st.borrowed));
    let _ = writeln!(o, "Lent:             {}", held(&st.lent));
    let _ = writeln!(
        o,
        "Workloads:        {} running | {} pending",
        st.running_workloads, st.pending_workloads
    );
    let mut waiting: Vec<&Workload> = workloads
        .iter()
        .filter(|w| w.spec.queue() == q.meta.name)
        .filter(|w| {
            matches!(
                w.status.phase,
                WorkloadPhase::Pending | WorkloadPhase::Preempted
            )
        })
        .collect();
    waiting.sort_by_key(|w| (-w.spec.priority(), w.meta.created.0));
    let _ = writeln!(o, "Waiting:");
    if waiting.is_empty() {
        let _ = writeln!(o, "  <none>");
    } else {
        let mut t = Table::new(vec!["WORKLOAD", "PRIORITY", "PHASE", "WAITING", "WHY"]);
        for w in waiting {
            t.row(vec![
                format!("{}/{}", w.meta.namespace, w.meta.name),
                w.spec.priority().to_string(),
                format!("{:?}", w.status.phase),
                age(w.meta.created.0, now),
                if w.status.message.is_empty() {
                    "-".into()
                } else {
                    w.status.message.clone()
                },
            ]);
        }
        for line in t.render().lines() {
            let _ = writeln!(o, "  {line}");
        }
    }
    o
}

/// The text of `describe workload`.
pub fn workload(w: &Workload, events: &[Event], now: i64) -> String {
    let mut o = String::new();
    let s = &w.status;
    let t = w.spec.template();
    let r = &t.resources;
    let _ = writeln!(o, "Name:         {}", w.meta.name);
    let _ = writeln!(o, "Namespace:    {}", w.meta.namespace);
    let _ = writeln!(o, "Kind:         {}", w.kind());
    let labels: Vec<String> = w
        .meta
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(
        o,
        "Labels:       {}",
        if labels.is_empty() {
            "<none>".into()
        } else {
            labels.join(",")
        }
    );
    let _ = writeln!(o, "Created:      {} ago", age(w.meta.created.0, now));
    let _ = writeln!(o, "Priority:     {}", w.spec.priority());
    let _ = writeln!(o, "Queue:        {}", w.spec.queue());
    let _ = writeln!(
        o,
        "Command:      {}",
        t.command
            .iter()
            .chain(&t.args)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut req = format!(
        "compute={} memory={}",
        format_milli(r.compute_milli),
        format_bytes(r.memory_bytes)
    );
    if let Some(a) = &r.accelerator {
        let _ = write!(
            req,
            " accelerator-memory={} devices={}..{}{}",
            format_bytes(a.memory_bytes),
            a.min_devices,
            a.max_devices,
            if a.shareable { " shareable" } else { "" }
        );
    }
    let _ = writeln!(o, "Requests:     {req}");
    let _ = writeln!(o, "Phase:        {:?}", s.phase);
    if !s.reason.is_empty() {
        let _ = writeln!(o, "Reason:       {}", s.reason);
        let _ = writeln!(o, "Message:      {}", s.message);
    }
    let _ = writeln!(
        o,
        "Replicas:     {} desired | {} placed | {} ready",
        w.spec.desired_replicas(),
        s.replicas_placed,
        s.replicas_ready
    );
    let _ = writeln!(o, "Cost:         ${:.4}/h", s.cost_per_hour);
    if !s.endpoint.is_empty() {
        let _ = writeln!(o, "Endpoint:     {}", s.endpoint);
    }
    if matches!(w.spec, uni_core::model::WorkloadSpec::Training(_)) {
        let _ = writeln!(o, "Restarts:     {}", s.restarts);
    }
    let inference = matches!(w.spec, uni_core::model::WorkloadSpec::Inference(_));
    if inference && s.revision > 0 {
        let _ = writeln!(
            o,
            "Revision:     {} ({} updated, {} ready)",
            s.revision, s.updated_replicas, s.updated_ready_replicas
        );
    }
    if !s.rollout.is_empty() {
        let _ = writeln!(o, "Rollout:      {}", s.rollout);
    }
    let _ = writeln!(o, "Placement:");
    if s.replicas.is_empty() {
        let _ = writeln!(o, "  <none>");
    } else {
        let mut table = Table::new(vec![
            "REPLICA", "NODE", "PORT", "DEVICES", "PHASE", "RESTARTS", "REVISION",
        ]);
        for v in &s.replicas {
            let devices: Vec<String> = v
                .devices
                .iter()
                .map(|d| {
                    if d.share_milli >= 1000 {
                        format!("{}", d.index)
                    } else {
                        format!("{}({}m)", d.index, d.share_milli)
                    }
                })
                .collect();
            table.row(vec![
                v.replica.to_string(),
                v.node.clone(),
                v.port.to_string(),
                if devices.is_empty() {
                    "-".into()
                } else {
                    devices.join(",")
                },
                if v.draining {
                    format!("{:?},Draining", v.phase)
                } else {
                    format!("{:?}", v.phase)
                },
                v.restarts.to_string(),
                if v.revision == 0 {
                    "-".into()
                } else {
                    v.revision.to_string()
                },
            ]);
        }
        for line in table.render().lines() {
            let _ = writeln!(o, "  {line}");
        }
    }
    let _ = writeln!(o, "Events:");
    if events.is_empty() {
        let _ = writeln!(o, "  <none>");
    } else {
        let mut table = Table::new(vec!["TYPE", "REASON", "AGE", "MESSAGE"]);
        for e in events {
            let count = if e.count > 1 {
                format!(" (x{})", e.count)
            } else {
                String::new()
            };
            table.row(vec![
                format!("{:?}", e.event_type),
                e.reason.clone(),
                format!("{}{count}", age(e.last_seen.0, now)),
                e.message.clone(),
            ]);
        }
        for line in table.render().lines() {
            let _ = writeln!(o, "  {line}");
        }
    }
    o
}

fn node(n: &Node) -> String {
    let mut o = String::new();
    let s = &n.status;
    let _ = writeln!(o, "Name:          {}", n.meta.name);
    let _ = writeln!(o, "Ready:         {}", s.ready);
    let _ = writeln!(o, "Cordoned:      {}", n.spec.cordoned);
    let _ = writeln!(o, "Draining:      {}", s.draining);
    let _ = writeln!(o, "Address:       {}", s.address);
    let _ = writeln!(o, "Class:         {}", s.node_class);
    let _ = writeln!(
        o,
        "CPU:           {} ({} threads)",
        s.inventory.cpu.model, s.inventory.cpu.threads
    );
    let _ = writeln!(
        o,
        "Compute:       {} of {} UCU allocated",
        format_milli(s.allocated.compute_milli),
        format_milli(s.allocatable.compute_milli)
    );
    let _ = writeln!(
        o,
        "Memory:        {} of {} allocated",
        format_bytes(s.allocated.memory_bytes),
        format_bytes(s.allocatable.memory_bytes)
    );
    let _ = writeln!(o, "Accelerators:");
    if s.inventory.accelerators.is_empty() {
        let _ = writeln!(o, "  <none>");
    }
    for d in &s.inventory.accelerators {
        let used = s
            .devices
            .iter()
            .find(|u| u.index == d.index)
            .map_or(0, |u| u.allocated_milli);
        let _ = writeln!(
            o,
            "  {}: {} {} ({} allocated: {}m)",
            d.index,
            d.model,
            format_bytes(d.memory_bytes),
            d.uuid,
            used
        );
    }
    let _ = writeln!(o, "Replicas:      {}", s.replicas);
    o
}
