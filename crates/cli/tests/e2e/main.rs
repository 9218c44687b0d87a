//! End-to-end tests: the real `twinbay` binaries on loopback.
//!
//! Each test gets its own data dirs and ports, so they run in parallel.

mod harness;

mod alerts;
mod alerts_events;
mod audit;
mod authz;
mod backups;
mod cli;
mod commands;
mod connections;
mod containers;
mod files;
mod files_real;
mod gateway;
mod groups;
mod hardening;
mod history;
mod hub_update;
mod install;
mod link;
mod mcp;
mod past;
mod people;
mod postgres;
mod prometheus;
mod refusals;
mod releases;
mod replicas;
mod restart;
mod rollouts;
mod routes;
mod routes_api;
mod scale;
mod schedules;
mod ssh;
mod topology;
mod units;
mod update;
