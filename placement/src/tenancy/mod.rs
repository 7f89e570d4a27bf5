//! Sharing the fleet between queues: the queue tree with guarantees, borrowing and lending
//! (`tree`), the order queues are served in (`tree::QueueTree::order`), and the choice of
//! preemption victims (`victims`). Pure, like the rest of placement: the scheduler feeds it
//! what its cache holds, the tenants benchmark what its replay holds.

pub mod tree;
pub mod victims;

pub use tree::{Limit, OrderKey, QueueTree, Refusal};
pub use victims::{choose, Candidate};

/// Amounts as arrays: compute (milli), memory, devices (milli), device memory, in
/// [`uni_core::model::ResourceAmounts::to_array`] order.
pub type Amounts = [u64; 4];

/// `a - b` per amount, floored at zero.
pub(crate) fn sub(a: Amounts, b: Amounts) -> Amounts {
    std::array::from_fn(|i| a[i].saturating_sub(b[i]))
}

pub(crate) fn add(a: Amounts, b: Amounts) -> Amounts {
    std::array::from_fn(|i| a[i].saturating_add(b[i]))
}
