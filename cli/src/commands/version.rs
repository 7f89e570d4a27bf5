//! `unictl version`.

use uni_proto::v1 as pb;

use super::Ctx;

pub async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    println!("Client Version: {}", env!("CARGO_PKG_VERSION"));
    let server = match ctx.clients().await {
        Ok(mut c) => match c.cluster.get_version(pb::GetVersionRequest {}).await {
            Ok(v) => {
                let v = v.into_inner();
                format!("{} (API {})", v.version, v.api_version)
            }
            Err(s) => format!("unknown ({})", s.message()),
        },
        Err(e) => format!("unreachable ({e:#})"),
    };
    println!("Server Version: {server}");
    Ok(())
}
