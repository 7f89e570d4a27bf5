//! Priorities run from `MIN` to `MAX`; higher is placed first and may preempt lower.

pub const MIN: i32 = 0;
pub const LOW: i32 = 100;
pub const NORMAL: i32 = 500;
pub const HIGH: i32 = 900;
pub const MAX: i32 = 1000;
