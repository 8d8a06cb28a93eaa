//! The restrictd service: configuration, HTTP API, wiring and telemetry. The
//! engine (domain and actors) lives in the `restrictd-actors` crate.

pub mod admission;
pub mod auth;
pub mod config;
pub mod engine;
pub mod error;
pub mod feed;
pub mod gateway;
pub mod http_metrics;
pub mod ingest;
pub mod inspect;
pub mod metrics;
pub mod ownership;
pub mod remote;
pub mod routes;
pub mod rules_cli;
pub mod rules_test;
pub mod rulesets;
pub mod startup;
pub mod state;
pub mod stats;
pub mod telemetry;
