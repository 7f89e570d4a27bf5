//! `unictl events`: what happened, oldest first.

use uni_core::model::Event;
use uni_proto::v1 as pb;

use super::{now, Ctx};
use crate::client::explain;
use crate::output;

pub async fn run(ctx: &Ctx, involved: Option<&str>) -> anyhow::Result<()> {
    let (kind, name) = match involved {
        Some(x) => match x.split_once('/') {
            Some((k, n)) => (k.to_string(), n.to_string()),
            None => (String::new(), x.to_string()),
        },
        None => (String::new(), String::new()),
    };
    let mut c = ctx.clients().await?;
    let mut events = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .events
            .list_events(pb::ListEventsRequest {
                filter: Some(pb::EventFilter {
                    namespace: ctx.namespace.clone(),
                    all_namespaces: ctx.all_namespaces,
                    involved_kind: kind.clone(),
                    involved_name: name.clone(),
                    ..Default::default()
                }),
                page_size: 500,
                page_token: token,
            })
            .await
            .map_err(explain)?
            .into_inner();
        for e in page.events {
            events.push(Event::try_from(e)?);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    events.sort_by_key(|e| e.last_seen.0);
    print!("{}", output::events_table(&events, now()));
    Ok(())
}
