//! Adapters to the outside world, each behind a trait: the mailer, the payment gateway and the
//! carrier, with their HTTP adapters (reqwest), plus the HMAC signatures of the callbacks those
//! services send back.

pub mod carrier;
pub mod mailer;
pub mod payments;
pub mod signature;

/// The future an adapter method returns (the traits are used as `dyn`).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
