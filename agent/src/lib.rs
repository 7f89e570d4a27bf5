//! The Universal node agent.
