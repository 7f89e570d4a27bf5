//! Gap value: a shared request goes where it forgoes the least of what the mix's share prices
//! (`mix::prices`) say free shares are worth. FGD's measure (`fgd`) looks one request ahead and
//! so pairs a 0.32 share with a 0.47 one (leaving 0.21, which the mix's shares rarely fill)
//! instead of keeping the 0.53 for another 0.47; the prices see that
//! (BENCHMARKS.md, "What the default policy does").

use uni_core::units::MILLI_PER_DEVICE;

use crate::mix::prices::SharePrices;
use crate::node_state::NodeState;
use crate::request::ReplicaRequest;
use crate::shape::Shape;

/// How many thousandths of FGD's fragmentation a thousandth forgone counts as: forgone
/// capacity is lost for good, while much of what FGD counts is only unusable by the next
/// request and is used later (the weight was measured across values: BENCHMARKS.md).
pub const WEIGHT: f64 = 10.0;

/// Thousandths of a device forgone by placing `shape` for `req` on `node`. Whole devices
/// forgo nothing. Nor does a share asked for in capability terms: its size differs by
/// device (20 GiB is a quarter of an 80 GB device, most of a 24 GB one), so prices in
/// thousandths of "a device" would rank devices by how the share happens to divide them,
/// and price decides among them instead (`score::total`). On a fleet of A100s and L4s such
/// shares, priced, went a quarter to each A100 (the mix had learned quarters) and left no
/// whole A100 for the whole-device requests.
pub fn forgone(prices: &SharePrices, node: &NodeState, shape: &Shape, req: &ReplicaRequest) -> f64 {
    let named_share = req.gpu.as_ref().is_some_and(|g| !g.in_capability_terms());
    if shape.is_whole() || !named_share {
        return 0.0;
    }
    let devices = node.devices.iter().enumerate();
    let lost: f64 = devices
        .filter(|&(i, _)| shape.includes(i))
        .map(|(_, d)| prices.loss(d.free_milli(), shape.share_milli))
        .sum();
    lost * f64::from(MILLI_PER_DEVICE)
}
