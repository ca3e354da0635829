//! Reference funnels: being written.
