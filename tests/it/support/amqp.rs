//! A queue bound to a test's exchange, read with a consumer.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};

/// A private queue bound to an exchange.
pub(crate) struct TestQueue {
    _connection: Connection,
    channel: Channel,
    consumer: Consumer,
    exchange: String,
}

impl TestQueue {
    /// Declares `exchange` (as hookgate does) and binds an exclusive queue with `binding_key`.
    pub(crate) async fn bind(exchange: &str, binding_key: &str) -> Self {
        let connection = Connection::connect(&super::amqp_url(), ConnectionProperties::default()).await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        // The gateway declared it (with its alternate exchange); only check it exists.
        channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions { passive: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                queue.name().clone(),
                exchange.into(),
                binding_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let consumer = channel
            .basic_consume(queue.name().clone(), "test".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .unwrap();
        Self { _connection: connection, channel, consumer, exchange: exchange.to_owned() }
    }

    /// Consumes an existing queue (e.g. the gateway's `{exchange}.unroutable`).
    pub(crate) async fn existing(exchange: &str, queue: &str) -> Self {
        let connection = Connection::connect(&super::amqp_url(), ConnectionProperties::default()).await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        let consumer = channel
            .basic_consume(queue.into(), "test".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .unwrap();
        Self { _connection: connection, channel, consumer, exchange: exchange.to_owned() }
    }

    /// The next message, not acknowledged (the test decides); panics if none arrives within 10 s.
    pub(crate) async fn next_unacked(&mut self) -> Delivery {
        tokio::time::timeout(Duration::from_secs(10), self.consumer.next())
            .await
            .expect("no message within 10 s")
            .expect("consumer closed")
            .unwrap()
    }

    /// The next message, acked; panics if none arrives within 10 s.
    pub(crate) async fn next(&mut self) -> Delivery {
        let delivery = tokio::time::timeout(Duration::from_secs(10), self.consumer.next())
            .await
            .expect("no message within 10 s")
            .expect("consumer closed")
            .unwrap();
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        delivery
    }

    /// Deletes the exchange and the gateway's unroutable and quarantine exchanges and queues (the
    /// test queue goes with the connection).
    pub(crate) async fn cleanup(self) {
        for name in [format!("{}.unroutable", self.exchange), format!("{}.quarantine", self.exchange)] {
            let _ = self.channel.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await;
            let _ = self.channel.exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default()).await;
        }
        let _ = self.channel.exchange_delete(self.exchange.as_str().into(), ExchangeDeleteOptions::default()).await;
    }
}
