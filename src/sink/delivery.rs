//! Where an accepted event goes: the broker when it takes it now, else the spool. While the
//! spool holds a backlog, new events join it, so delivery order is arrival order.

use std::sync::Arc;

use super::{Message, PublishError, Publisher};
use crate::spool::{Spool, SpoolError};

/// The hand-off: a broker, a spool, or both.
#[derive(Clone)]
pub struct Delivery {
    /// The broker, when one is configured.
    pub publisher: Option<Arc<dyn Publisher>>,
    /// The spool, when one is configured.
    pub spool: Option<Arc<Spool>>,
}

/// How an event was made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Confirmed by the broker.
    Published,
    /// On disk in the spool.
    Spooled,
}

/// Why an event was not made durable; each answers 503.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No spool and the broker did not take it.
    #[error("{0}")]
    Broker(#[from] PublishError),
    /// The spool did not take it.
    #[error("{0}")]
    Spool(#[from] SpoolError),
}

impl Delivery {
    /// Makes `message` durable, or says why not.
    pub async fn deliver(&self, message: Message) -> Result<Delivered, DeliveryError> {
        let spool = self.spool.as_ref();
        if let Some(spool) = spool
            && spool.stats().events > 0
        {
            spool.append(&message).await?;
            return Ok(Delivered::Spooled);
        }
        let publisher = self.publisher.as_ref().filter(|p| p.is_ready());
        let published = match publisher {
            Some(publisher) => publisher.publish(&message).await,
            None => Err(PublishError::Unavailable("not connected".into())),
        };
        match (published, spool) {
            (Ok(()), _) => Ok(Delivered::Published),
            (Err(e), Some(spool)) => {
                tracing::debug!(error = %e, "Broker did not take the event; spooling it.");
                spool.append(&message).await?;
                Ok(Delivered::Spooled)
            }
            (Err(e), None) => Err(e.into()),
        }
    }

    /// Whether events can be accepted now: the broker is connected, or a spool takes them.
    pub fn is_ready(&self) -> bool {
        self.spool.is_some() || self.publisher.as_ref().is_some_and(|p| p.is_ready())
    }
}
