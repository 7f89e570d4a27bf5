//! kubectl-style CLI for Universal.
