//! Gatehouse: an SSH bastion that brokers privileged sessions.
//!
//! A user types `ssh alice@bastion web-01`; Gatehouse authenticates her, decides whether she may
//! have this session now ([`access`]), opens it on the target with a fresh short-lived
//! certificate ([`ca`], [`upstream`]) and moves the bytes ([`server::bridge`]). The policy that
//! drives the decision is plain TOML ([`policy`]).

#![warn(missing_docs)]

pub mod access;
pub mod alerts;
pub mod audit;
pub mod bastion;
pub mod ca;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod credentials;
pub mod directory;
pub mod duration;
pub mod events;
pub mod explain;
pub mod export;
pub mod files;
pub mod forward;
pub mod fscheck;
pub mod grants;
pub mod health;
pub mod http;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod outcome;
pub mod policy;
pub mod recording;
pub mod report;
pub mod retention;
pub mod search;
pub mod server;
pub mod store;
pub mod upstream;

#[cfg(test)]
mod testing;
