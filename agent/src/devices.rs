//! Accelerator device nodes: the file under `/dev` through which each accelerator of this node
//! is opened (`/dev/nvidia<minor>` for an NVIDIA GPU). A replica may open the nodes of the
//! accelerators bound to it; every other one is hidden from it (see [`crate::shim`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use uni_core::model::{DeviceBinding, Inventory};

/// The device node of the NVIDIA GPU with this minor number.
pub fn nvidia(minor: u32) -> PathBuf {
    PathBuf::from(format!("/dev/nvidia{minor}"))
}

/// The device node of each accelerator of this node, by accelerator index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceNodes(BTreeMap<u32, PathBuf>);

impl DeviceNodes {
    /// One node per accelerator of `inventory`: the one in `known` (discovered or configured),
    /// else `/dev/nvidia<index>`.
    pub fn for_inventory(inventory: &Inventory, known: &BTreeMap<u32, PathBuf>) -> Self {
        Self(
            inventory
                .accelerators
                .iter()
                .map(|a| {
                    let path = known
                        .get(&a.index)
                        .cloned()
                        .unwrap_or_else(|| nvidia(a.index));
                    (a.index, path)
                })
                .collect(),
        )
    }

    /// Every accelerator device node of this node.
    pub fn all(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.0.values().cloned().collect();
        paths.sort();
        paths.dedup();
        paths
    }

    /// The nodes of the accelerators bound to a replica.
    pub fn bound(&self, devices: &[DeviceBinding]) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = devices
            .iter()
            .filter_map(|d| self.0.get(&d.index).cloned())
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uni_core::model::AcceleratorDevice;

    #[test]
    fn known_paths_win_and_the_rest_are_nvidia_nodes_by_index() {
        let inventory = Inventory {
            accelerators: (0..3)
                .map(|index| AcceleratorDevice {
                    index,
                    ..AcceleratorDevice::default()
                })
                .collect(),
            ..Inventory::default()
        };
        let known = BTreeMap::from([(1, PathBuf::from("/dev/nvidia7"))]);
        let nodes = DeviceNodes::for_inventory(&inventory, &known);
        assert_eq!(
            nodes.all(),
            vec![nvidia(0), nvidia(2), nvidia(7)],
            "sorted, one per accelerator"
        );
        let bound = nodes.bound(&[
            DeviceBinding {
                index: 1,
                ..DeviceBinding::default()
            },
            DeviceBinding {
                index: 9,
                ..DeviceBinding::default()
            },
        ]);
        assert_eq!(bound, vec![nvidia(7)], "an unknown index binds nothing");
    }
}
