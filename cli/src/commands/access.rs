//! Role bindings (`get/delete rolebindings`, `create rolebinding`) and `auth whoami|can-i`.

use anyhow::bail;
use tonic::Code;
use uni_core::model::{ObjectMeta, Role, RoleBinding};
use uni_proto::v1 as pb;

use super::{decode, decode_all, now, Ctx};
use crate::client::{explain, Clients};
use crate::output::table::{age, Table};
use crate::output::Format;

#[derive(clap::Args)]
pub struct CreateArgs {
    name: String,
    /// view, edit, admin, or (with --cluster-wide) cluster-admin.
    #[arg(long)]
    role: String,
    /// A user to bind (repeatable).
    #[arg(long = "user")]
    users: Vec<String>,
    /// A group to bind (repeatable).
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Bind the role in every namespace instead of one.
    #[arg(long)]
    cluster_wide: bool,
}

#[derive(clap::Subcommand)]
pub enum AuthCommand {
    /// Who the server takes you to be, and what you may do in the namespace.
    Whoami,
    /// Whether you may do VERB on RESOURCE in the namespace: prints yes or no, exits 1 on no.
    CanI { verb: String, resource: String },
}

/// The namespace rolebinding commands act in: `--cluster-wide`/`-A` mean cluster-wide.
fn scope(ctx: &Ctx, cluster_wide: bool) -> String {
    if cluster_wide {
        String::new()
    } else {
        ctx.namespace.clone()
    }
}

pub async fn create(ctx: &Ctx, args: CreateArgs) -> anyhow::Result<()> {
    let role: Role = args.role.parse().map_err(anyhow::Error::msg)?;
    let binding = RoleBinding {
        meta: ObjectMeta {
            name: args.name.clone(),
            namespace: scope(ctx, args.cluster_wide),
            ..Default::default()
        },
        role,
        users: args.users,
        groups: args.groups,
    };
    let mut c = ctx.clients().await?;
    c.access
        .create_role_binding(pb::CreateRoleBindingRequest {
            role_binding: Some((&binding).into()),
        })
        .await
        .map_err(explain)?;
    println!("rolebinding/{} created", args.name);
    Ok(())
}

pub async fn list(
    c: &mut Clients,
    ctx: &Ctx,
    cluster_wide: bool,
) -> anyhow::Result<Vec<RoleBinding>> {
    let resp = c
        .access
        .list_role_bindings(pb::ListRoleBindingsRequest {
            namespace: scope(ctx, cluster_wide),
            all_namespaces: ctx.all_namespaces,
        })
        .await
        .map_err(explain)?
        .into_inner();
    decode_all(resp.role_bindings)
}

pub async fn get(
    c: &mut Clients,
    ctx: &Ctx,
    name: &str,
    cluster_wide: bool,
) -> anyhow::Result<RoleBinding> {
    let b = c
        .access
        .get_role_binding(pb::GetRoleBindingRequest {
            namespace: scope(ctx, cluster_wide),
            name: name.to_string(),
        })
        .await
        .map_err(explain)?
        .into_inner();
    decode(b)
}

/// Deletes one binding; `false` when it did not exist.
pub async fn delete(c: &mut Clients, ns: &str, name: &str) -> anyhow::Result<bool> {
    match c
        .access
        .delete_role_binding(pb::DeleteRoleBindingRequest {
            namespace: ns.to_string(),
            name: name.to_string(),
        })
        .await
    {
        Ok(_) => Ok(true),
        Err(s) if s.code() == Code::NotFound => Ok(false),
        Err(s) => Err(explain(s)),
    }
}

pub fn render(bindings: &[RoleBinding], format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Table | Format::Wide => {
            let mut t = Table::new(vec!["NAMESPACE", "NAME", "ROLE", "USERS", "GROUPS", "AGE"]);
            for b in bindings {
                let ns = if b.cluster_wide() {
                    "*"
                } else {
                    &b.meta.namespace
                };
                t.row(vec![
                    ns.to_string(),
                    b.meta.name.clone(),
                    b.role.as_str().to_string(),
                    b.users.join(","),
                    b.groups.join(","),
                    age(b.meta.created.0, now()),
                ]);
            }
            t.render()
        }
        Format::Name => bindings
            .iter()
            .map(|b| format!("rolebinding/{}\n", b.meta.name))
            .collect(),
        Format::Json => format!("{}\n", serde_json::to_string_pretty(bindings)?),
        Format::Yaml => serde_yaml::to_string(bindings)?,
    })
}

pub async fn auth(ctx: &Ctx, cmd: AuthCommand) -> anyhow::Result<()> {
    let mut c = ctx.clients().await?;
    let me = c
        .access
        .who_am_i(pb::WhoAmIRequest {
            namespace: ctx.namespace.clone(),
        })
        .await
        .map_err(explain)?
        .into_inner();
    match cmd {
        AuthCommand::Whoami => {
            println!("user:      {}", me.user);
            println!("groups:    {}", me.groups.join(", "));
            println!("namespace: {}", ctx.namespace);
            println!("allowed:");
            for a in &me.allowed {
                println!("  {a}");
            }
            Ok(())
        }
        AuthCommand::CanI { verb, resource } => {
            let resource = canonical_resource(&resource)?;
            let asked = format!("{} {resource}", verb.to_ascii_lowercase());
            if me.allowed.contains(&asked) {
                println!("yes");
                Ok(())
            } else {
                println!("no");
                std::process::exit(1);
            }
        }
    }
}

/// The server's name for a resource given as kubectl users type it.
fn canonical_resource(name: &str) -> anyhow::Result<&'static str> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "workloads" | "workload" | "wl" | "inferenceservices" | "isvc" | "trainingjobs" | "tj" => {
            "workloads"
        }
        "nodes" | "node" | "no" => "nodes",
        "queues" | "queue" | "q" => "queues",
        "rolebindings" | "rolebinding" | "rb" => "rolebindings",
        "events" | "event" | "ev" => "events",
        "logs" | "log" => "logs",
        "hostidentities" | "hostidentity" => "hostidentities",
        other => bail!("unknown resource {other:?}"),
    })
}
