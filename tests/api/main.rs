//! HTTP API tests: each spawns the real application on port 0 with a temp data dir.

mod accounts;
mod at_rest;
mod auth_abuse;
mod authz;
mod catalog;
mod chat_limits;
mod compat;
mod coupon_delivery;
mod drops;
mod faults;
mod gateway_outage;
mod health;
mod helpers;
mod mail;
mod malformed;
mod operations;
mod orders;
mod shopping;
mod skus;
mod web;
mod ws;
