//! Integration tests: one binary, one module per area.

mod adaptive;
mod cli;
mod drill;
mod events;
mod fraud;
mod fraud_admin;
mod grpc;
mod hardening;
mod http;
mod limits;
mod production;
mod props;
mod providers;
mod python_client;
mod records;
mod redis_engine;
mod redis_server;
mod report;
mod risk;
mod routes_admin;
mod routing;
mod server_hardening;
mod store;
mod support;
mod webhooks;
