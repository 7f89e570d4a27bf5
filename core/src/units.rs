//! Universal units as integers. Quantities are stored as integers so that sums are exact:
//! compute in thousandths of a universal compute unit (UCU), memory in bytes, accelerator
//! devices in thousandths of a device.

/// Thousandths of a UCU in one UCU (one reference CPU core).
pub const MILLI_PER_UCU: u64 = 1000;

/// Thousandths of a device in one whole accelerator device.
pub const MILLI_PER_DEVICE: u32 = 1000;

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
pub const TIB: u64 = 1 << 40;

/// Whole devices as thousandths of a device.
pub fn devices_to_milli(devices: u32) -> u64 {
    u64::from(devices) * u64::from(MILLI_PER_DEVICE)
}
