//! Integration tests: the real server on an ephemeral port, the real RabbitMQ. Each test has its
//! own exchange and queue, so tests run in parallel.

mod support;

mod contract;
mod crash;
mod durability;
mod handshakes;
mod pipeline;
