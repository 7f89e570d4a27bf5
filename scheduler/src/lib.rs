//! The Universal control plane: API, admission, queue, placement, node lifecycle.
