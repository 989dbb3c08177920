//! remediator
pub mod diagnose;
pub mod event;
pub mod pattern;
pub mod policy;
pub mod yaml;
