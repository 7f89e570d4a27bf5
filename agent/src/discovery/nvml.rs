//! NVIDIA GPUs through NVML, loaded at run time with `libloading`, so one binary runs on
//! machines with and without a driver. Only the handful of calls discovery needs are bound.
//!
//! Required: `nvmlInit_v2`, `nvmlShutdown`, `nvmlErrorString`, `nvmlDeviceGetCount_v2`,
//! `nvmlDeviceGetHandleByIndex_v2`, `nvmlDeviceGetName`, `nvmlDeviceGetUUID`,
//! `nvmlDeviceGetMemoryInfo`. Optional (older drivers lack some): `nvmlSystemGetDriverVersion`,
//! `nvmlDeviceGetMigMode`, `nvmlDeviceGetPciInfo_v3`, `nvmlDeviceGetP2PStatus`,
//! `nvmlDeviceGetMinorNumber` (the device node `/dev/nvidia<minor>`; without it, the index).

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::path::{Path, PathBuf};

use libloading::Library;
use uni_core::model::{AcceleratorDevice, MigMode};

use crate::error::{Error, Result};

/// The soname the driver installs.
pub const DEFAULT_LIBRARY: &str = "libnvidia-ml.so.1";

const NVML_SUCCESS: c_int = 0;
const NVML_ERROR_DRIVER_NOT_LOADED: c_int = 9;
const NVML_ERROR_LIBRARY_NOT_FOUND: c_int = 12;
const NVML_DEVICE_MIG_ENABLE: c_uint = 1;
const NVML_P2P_CAPS_INDEX_NVLINK: c_int = 2;
const NVML_P2P_STATUS_OK: c_int = 0;
const STRING_BUFFER: usize = 96;

type Device = *mut c_void;

#[repr(C)]
#[derive(Default)]
struct Memory {
    total: u64,
    free: u64,
    used: u64,
}

#[repr(C)]
struct PciInfo {
    bus_id_legacy: [c_char; 16],
    domain: c_uint,
    bus: c_uint,
    device: c_uint,
    pci_device_id: c_uint,
    pci_sub_system_id: c_uint,
    bus_id: [c_char; 32],
}

type InitFn = unsafe extern "C" fn() -> c_int;
type ErrorStringFn = unsafe extern "C" fn(c_int) -> *const c_char;
type CountFn = unsafe extern "C" fn(*mut c_uint) -> c_int;
type HandleFn = unsafe extern "C" fn(c_uint, *mut Device) -> c_int;
type StringFn = unsafe extern "C" fn(Device, *mut c_char, c_uint) -> c_int;
type DriverFn = unsafe extern "C" fn(*mut c_char, c_uint) -> c_int;
type MemoryFn = unsafe extern "C" fn(Device, *mut Memory) -> c_int;
type MigFn = unsafe extern "C" fn(Device, *mut c_uint, *mut c_uint) -> c_int;
type PciFn = unsafe extern "C" fn(Device, *mut PciInfo) -> c_int;
type P2pFn = unsafe extern "C" fn(Device, Device, c_int, *mut c_int) -> c_int;
type MinorFn = unsafe extern "C" fn(Device, *mut c_uint) -> c_int;

/// NVML's entry points. The function pointers stay valid while `_lib` is loaded.
struct Api {
    init: InitFn,
    shutdown: InitFn,
    error_string: ErrorStringFn,
    count: CountFn,
    handle: HandleFn,
    name: StringFn,
    uuid: StringFn,
    memory: MemoryFn,
    driver: Option<DriverFn>,
    mig: Option<MigFn>,
    pci: Option<PciFn>,
    p2p: Option<P2pFn>,
    minor: Option<MinorFn>,
    _lib: Library,
}

/// What NVML reported.
#[derive(Debug, Clone, Default)]
pub struct Gpus {
    pub driver_version: String,
    pub devices: Vec<AcceleratorDevice>,
    /// The device node of each of `devices`, in the same order.
    pub device_paths: Vec<PathBuf>,
}

/// Lists the GPUs. `Ok(None)` when there is no driver: the library is absent (and none was
/// named) or says the kernel driver is not loaded.
pub fn discover(library: Option<&Path>, root: &Path) -> Result<Option<Gpus>> {
    let name = library.map_or_else(|| DEFAULT_LIBRARY.into(), |p| p.as_os_str().to_owned());
    // SAFETY: loading NVML runs its initializers, which have no preconditions.
    let lib = match unsafe { Library::new(&name) } {
        Ok(lib) => lib,
        Err(_) if library.is_none() => return Ok(None),
        Err(e) => {
            return Err(Error::Nvml(format!(
                "loading {}: {e}",
                name.to_string_lossy()
            )))
        }
    };
    let api = Api::load(lib)?;
    // SAFETY: nvmlInit_v2 takes no arguments.
    match unsafe { (api.init)() } {
        NVML_SUCCESS => {}
        NVML_ERROR_DRIVER_NOT_LOADED | NVML_ERROR_LIBRARY_NOT_FOUND => return Ok(None),
        code => return Err(Error::Nvml(format!("nvmlInit: {}", api.describe(code)))),
    }
    let result = api.list(root);
    // SAFETY: paired with the successful nvmlInit above.
    unsafe { (api.shutdown)() };
    result.map(Some)
}

/// Looks up a symbol and copies the function pointer out.
///
/// # Safety
/// `T` must be the symbol's true C signature.
unsafe fn symbol<T: Copy>(lib: &Library, name: &str) -> Option<T> {
    lib.get::<T>(name.as_bytes()).ok().map(|s| *s)
}

impl Api {
    fn load(lib: Library) -> Result<Self> {
        let missing = |n: &str| Error::Nvml(format!("library lacks {n}"));
        // SAFETY: each type alias above is the C signature documented in nvml.h.
        unsafe {
            Ok(Self {
                init: symbol(&lib, "nvmlInit_v2").ok_or_else(|| missing("nvmlInit_v2"))?,
                shutdown: symbol(&lib, "nvmlShutdown").ok_or_else(|| missing("nvmlShutdown"))?,
                error_string: symbol(&lib, "nvmlErrorString")
                    .ok_or_else(|| missing("nvmlErrorString"))?,
                count: symbol(&lib, "nvmlDeviceGetCount_v2")
                    .ok_or_else(|| missing("nvmlDeviceGetCount_v2"))?,
                handle: symbol(&lib, "nvmlDeviceGetHandleByIndex_v2")
                    .ok_or_else(|| missing("nvmlDeviceGetHandleByIndex_v2"))?,
                name: symbol(&lib, "nvmlDeviceGetName")
                    .ok_or_else(|| missing("nvmlDeviceGetName"))?,
                uuid: symbol(&lib, "nvmlDeviceGetUUID")
                    .ok_or_else(|| missing("nvmlDeviceGetUUID"))?,
                memory: symbol(&lib, "nvmlDeviceGetMemoryInfo")
                    .ok_or_else(|| missing("nvmlDeviceGetMemoryInfo"))?,
                driver: symbol(&lib, "nvmlSystemGetDriverVersion"),
                mig: symbol(&lib, "nvmlDeviceGetMigMode"),
                pci: symbol(&lib, "nvmlDeviceGetPciInfo_v3"),
                p2p: symbol(&lib, "nvmlDeviceGetP2PStatus"),
                minor: symbol(&lib, "nvmlDeviceGetMinorNumber"),
                _lib: lib,
            })
        }
    }

    fn describe(&self, code: c_int) -> String {
        // SAFETY: nvmlErrorString returns a static NUL-terminated string (or null).
        let text = unsafe { (self.error_string)(code) };
        if text.is_null() {
            return format!("error {code}");
        }
        // SAFETY: non-null, NUL-terminated, static.
        let text = unsafe { CStr::from_ptr(text) };
        format!("{} ({code})", text.to_string_lossy())
    }

    fn check(&self, what: &str, code: c_int) -> Result<()> {
        if code == NVML_SUCCESS {
            Ok(())
        } else {
            Err(Error::Nvml(format!("{what}: {}", self.describe(code))))
        }
    }

    fn list(&self, root: &Path) -> Result<Gpus> {
        let driver_version = self
            .driver
            .and_then(|f| {
                let mut buf = [0 as c_char; STRING_BUFFER];
                // SAFETY: the buffer holds STRING_BUFFER bytes, as passed.
                let code = unsafe { f(buf.as_mut_ptr(), STRING_BUFFER as c_uint) };
                (code == NVML_SUCCESS).then(|| c_string(&buf))
            })
            .unwrap_or_default();
        let mut count: c_uint = 0;
        // SAFETY: `count` is a valid out pointer.
        self.check("nvmlDeviceGetCount", unsafe { (self.count)(&mut count) })?;
        let mut handles = Vec::new();
        let mut devices = Vec::new();
        let mut device_paths = Vec::new();
        for index in 0..count {
            let mut dev: Device = std::ptr::null_mut();
            // SAFETY: `dev` is a valid out pointer.
            self.check("nvmlDeviceGetHandleByIndex", unsafe {
                (self.handle)(index, &mut dev)
            })?;
            devices.push(self.device(index, dev, root)?);
            device_paths.push(crate::devices::nvidia(
                self.minor_number(dev).unwrap_or(index),
            ));
            handles.push(dev);
        }
        self.nvlink_peers(&handles, &mut devices);
        Ok(Gpus {
            driver_version,
            devices,
            device_paths,
        })
    }

    /// The minor number of the device's `/dev/nvidia<minor>` node, where NVML says.
    fn minor_number(&self, dev: Device) -> Option<c_uint> {
        let f = self.minor?;
        let mut minor: c_uint = 0;
        // SAFETY: `dev` came from NVML; `minor` is a valid out pointer.
        (unsafe { f(dev, &mut minor) } == NVML_SUCCESS).then_some(minor)
    }

    fn device(&self, index: c_uint, dev: Device, root: &Path) -> Result<AcceleratorDevice> {
        let text = |f: StringFn, what: &str| -> Result<String> {
            let mut buf = [0 as c_char; STRING_BUFFER];
            // SAFETY: `dev` came from NVML; the buffer holds STRING_BUFFER bytes.
            self.check(what, unsafe {
                f(dev, buf.as_mut_ptr(), STRING_BUFFER as c_uint)
            })?;
            Ok(c_string(&buf))
        };
        let model = text(self.name, "nvmlDeviceGetName")?;
        let uuid = text(self.uuid, "nvmlDeviceGetUUID")?;
        let mut memory = Memory::default();
        // SAFETY: `memory` matches nvmlMemory_t.
        self.check("nvmlDeviceGetMemoryInfo", unsafe {
            (self.memory)(dev, &mut memory)
        })?;
        let mig_mode = self.mig.map_or(MigMode::Unknown, |f| {
            let (mut current, mut pending) = (0, 0);
            // SAFETY: both are valid out pointers.
            match unsafe { f(dev, &mut current, &mut pending) } {
                NVML_SUCCESS if current == NVML_DEVICE_MIG_ENABLE => MigMode::Enabled,
                NVML_SUCCESS => MigMode::Disabled,
                _ => MigMode::Unknown,
            }
        });
        let pci_bus_id = self
            .pci
            .and_then(|f| {
                let mut info = PciInfo {
                    bus_id_legacy: [0; 16],
                    domain: 0,
                    bus: 0,
                    device: 0,
                    pci_device_id: 0,
                    pci_sub_system_id: 0,
                    bus_id: [0; 32],
                };
                // SAFETY: `info` matches nvmlPciInfo_t.
                let code = unsafe { f(dev, &mut info) };
                (code == NVML_SUCCESS).then(|| c_string(&info.bus_id))
            })
            .unwrap_or_default();
        let numa_node = numa_of(root, &pci_bus_id);
        Ok(AcceleratorDevice {
            index,
            uuid,
            model,
            memory_bytes: memory.total,
            mig_mode,
            nvlink_peers: Vec::new(),
            numa_node,
            pci_bus_id,
            bf16_tflops: 0.0,
            healthy: true,
        })
    }

    /// Devices that can reach each other over NVLink (directly or through NVSwitch).
    fn nvlink_peers(&self, handles: &[Device], devices: &mut [AcceleratorDevice]) {
        let Some(p2p) = self.p2p else { return };
        for i in 0..handles.len() {
            for j in 0..handles.len() {
                if i == j {
                    continue;
                }
                let mut status: c_int = -1;
                // SAFETY: both handles came from NVML; `status` is a valid out pointer.
                let code = unsafe {
                    p2p(
                        handles[i],
                        handles[j],
                        NVML_P2P_CAPS_INDEX_NVLINK,
                        &mut status,
                    )
                };
                if code == NVML_SUCCESS && status == NVML_P2P_STATUS_OK {
                    let peer = devices[j].index;
                    devices[i].nvlink_peers.push(peer);
                }
            }
        }
    }
}

fn c_string(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The NUMA node of a PCI device from sysfs. NVML writes bus ids with an 8-digit domain
/// (`00000000:3B:00.0`); sysfs uses 4 digits, lower case (`0000:3b:00.0`).
fn numa_of(root: &Path, bus_id: &str) -> Option<u32> {
    let sysfs = sysfs_bus_id(bus_id)?;
    let text = super::read(root, &format!("/sys/bus/pci/devices/{sysfs}/numa_node")).ok()?;
    text.trim()
        .parse::<i64>()
        .ok()
        .and_then(|n| u32::try_from(n).ok())
}

fn sysfs_bus_id(bus_id: &str) -> Option<String> {
    let (domain, rest) = bus_id.split_once(':')?;
    let domain = &domain[domain.len().saturating_sub(4)..];
    Some(format!("{domain}:{rest}").to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_ids_map_to_sysfs_names() {
        assert_eq!(
            sysfs_bus_id("00000000:3B:00.0").as_deref(),
            Some("0000:3b:00.0")
        );
        assert_eq!(sysfs_bus_id("nonsense"), None);
    }

    #[test]
    fn no_driver_means_no_gpus_unless_a_library_was_named() {
        let root = Path::new("/");
        // This machine may or may not have a driver; without one, discovery reports none.
        if unsafe { Library::new(DEFAULT_LIBRARY) }.is_err() {
            assert!(discover(None, root).unwrap().is_none());
        }
        let err = discover(Some(Path::new("/nonexistent/libnvidia-ml.so.1")), root).unwrap_err();
        assert!(err.to_string().contains("loading /nonexistent"), "{err}");
    }
}
