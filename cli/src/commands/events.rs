//! `unictl events`: what happened, oldest first.

use uni_core::model::Event;
use uni_proto::v1 as pb;

use super::{all_pages, decode_all, now, Ctx};
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
    let client = ctx.clients().await?.events;
    let mut events: Vec<Event> = all_pages(|page_token| {
        let mut client = client.clone();
        let req = pb::ListEventsRequest {
            filter: Some(pb::EventFilter {
                namespace: ctx.namespace.clone(),
                all_namespaces: ctx.all_namespaces,
                involved_kind: kind.clone(),
                involved_name: name.clone(),
                ..Default::default()
            }),
            page_size: 500,
            page_token,
        };
        async move {
            let page = client.list_events(req).await.map_err(explain)?.into_inner();
            Ok((decode_all(page.events)?, page.next_page_token))
        }
    })
    .await?;
    events.sort_by_key(|e| e.last_seen.0);
    print!("{}", output::events_table(&events, now()));
    Ok(())
}
