//! Tether gateway node.
