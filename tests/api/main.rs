//! Black-box tests: a real redis-server and the real restrictd binary per test.

mod helpers;

mod batch;
mod cli;
mod deadletter;
mod durability;
mod producers;
mod redis_outage;
mod scenarios;
mod tripwire;
mod validation;
