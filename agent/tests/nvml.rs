//! GPUs through NVML loaded at run time: a stand-in NVML library built from C
//! (`fixtures/fake_nvml.c`) reports two H100s; discovery and the agent's registration see
//! them, valued through the catalog. Without a C compiler the test says so and skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use uni_agent::discovery::{self, nvml, DiscoveryConfig, NvmlSource};
use uni_core::model::MigMode;

fn build_fake(dir: &Path) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake_nvml.c");
    let out = dir.join("libnvidia-ml.so.1");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&out)
        .arg(&src)
        .status();
    match status {
        Ok(s) if s.success() => Some(out),
        other => {
            println!("SKIPPED: cannot build the stand-in NVML library with cc ({other:?})");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nvml_devices_are_discovered_and_registered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(lib) = build_fake(dir.path()) else {
        return;
    };
    let gpus = nvml::discover(Some(&lib), Path::new("/"))
        .expect("discover")
        .expect("a driver");
    assert_eq!(gpus.driver_version, "550.54.15");
    assert_eq!(gpus.devices.len(), 2);
    let d0 = &gpus.devices[0];
    assert_eq!((d0.index, d0.uuid.as_str()), (0, "GPU-fake-0"));
    assert_eq!(d0.model, "NVIDIA H100 80GB HBM3");
    assert_eq!(d0.memory_bytes, 85_520_809_984);
    assert_eq!(d0.mig_mode, MigMode::Enabled);
    assert_eq!(gpus.devices[1].mig_mode, MigMode::Unknown);
    assert_eq!(d0.pci_bus_id, "00000000:18:00.0");
    assert_eq!(d0.nvlink_peers, vec![1]);
    assert_eq!(gpus.devices[1].nvlink_peers, vec![0]);
    // Device nodes come from the minor numbers, not the indexes.
    assert_eq!(
        gpus.device_paths,
        vec![PathBuf::from("/dev/nvidia4"), PathBuf::from("/dev/nvidia5")]
    );

    // The whole discovery of this machine, with the stand-in driver.
    let inv = discovery::discover(&DiscoveryConfig {
        nvml: NvmlSource::Library(lib.clone()),
        ..DiscoveryConfig::default()
    })
    .expect("discover");
    assert!(inv.cpu.threads >= 1 && inv.memory_bytes > 0);
    assert_eq!(inv.accelerators.len(), 2);

    // The agent registers them, valued through the catalog.
    let (_etcd, store) = etcd().await;
    let mut cfg = config("gpu-1", dir.path());
    cfg.inventory = None;
    cfg.discovery.nvml = NvmlSource::Library(lib);
    let agent = start_agent(cfg, &store).await;
    let (n, _) = eventually(Duration::from_secs(10), "registered", || async {
        node(&store, "gpu-1").await
    })
    .await;
    let devices = &n.status.inventory.accelerators;
    assert_eq!(devices.len(), 2);
    assert_eq!(devices[0].model, "nvidia-h100-sxm");
    assert!(devices[0].bf16_tflops > 900.0);
    assert_eq!(n.status.capacity.device_milli, 2000);
    assert_eq!(n.status.node_class, "nvidia-h100-sxm");
    assert_eq!(n.status.inventory.driver_version, "550.54.15");
    agent.shutdown().await;
}

#[test]
fn a_machine_without_a_driver_reports_no_gpus() {
    let inv = discovery::discover(&DiscoveryConfig {
        nvml: NvmlSource::Library(PathBuf::from("/nonexistent/libnvidia-ml.so.1")),
        ..DiscoveryConfig::default()
    })
    .expect("discovery still works");
    assert!(inv.accelerators.is_empty());
    let inv = discovery::discover(&DiscoveryConfig {
        nvml: NvmlSource::Off,
        ..DiscoveryConfig::default()
    })
    .expect("discover");
    assert!(inv.accelerators.is_empty() && inv.cpu.threads >= 1);
}
