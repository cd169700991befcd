//! Adapters to the outside world, each behind a trait: the mailer today; the payment gateway
//! and the carrier with their HTTP adapters as orders arrive.

pub mod mailer;
