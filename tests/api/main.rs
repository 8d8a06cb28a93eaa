//! Black-box tests: a real redis-server and the real restrictd binary per test.

mod helpers;

mod access;
mod admission;
mod answers;
mod batch;
mod cli;
mod contract;
mod dashboard;
mod deadletter;
mod durability;
mod edges;
mod feed_resume;
mod feed_ws;
mod fencing;
mod gateway;
mod loadtest_smoke;
mod money;
mod observability;
mod openapi;
mod operators;
mod producers;
mod proxy;
mod readme;
mod redis_outage;
mod refusals;
mod rollbacks;
mod rule_tests;
mod rules_scale;
mod rulesets;
mod scaleout;
mod scenarios;
mod sse;
mod tripwire;
mod validation;
mod windows;
