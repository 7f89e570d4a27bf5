//! The Universal node agent: discovers the machine's hardware, registers `nodes/{node}` under a
//! lease, runs this node's allocations as real processes (process groups, cgroup limits, device
//! visibility, ports, probes, restarts with backoff, graceful stop), reports replica status,
//! serves logs over gRPC and metrics over HTTP, and re-adopts its processes after a restart.
//! `--simulate N` runs N simulated nodes in one process for scale tests.
//!
//! Embedding (dev mode): `Agent::new(AgentConfig::new(node, dir), store).run(cancel)` over any
//! [`uni_core::store::KvStore`]. Replica processes are supervised by the `uni-agent shim`
//! subcommand, found beside the running executable; without it they run on agent threads and
//! stop with the agent.

pub mod agent;
pub mod capacity;
pub mod cgroup;
pub mod config;
pub mod credentials;
pub mod devices;
pub mod discovery;
pub mod error;
pub mod logs;
pub mod metrics;
pub mod probe;
pub mod process;
pub mod registration;
pub mod runtime;
pub mod server;
pub mod shim;
pub mod simulate;

pub use agent::{Agent, AgentConfig, RunningAgent};
pub use error::{Error, Result};
pub use runtime::{OnShutdown, RuntimeOptions, ShimMode};
