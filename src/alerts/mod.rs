//! Alerts: telling people that something happened, even when the way to tell them is broken.
//!
//! Break-glass access and grant transitions must reach the humans who watch them, and an alert
//! sink that is down must neither block an emergency nor lose the alert. So every alert goes
//! through a durable outbox in the store ([`outbox`]): one row per alert and configured sink,
//! written in one transaction before any delivery is tried. A delivery loop ([`Dispatcher`])
//! picks due rows, delivers them with the sink's timeout and either marks them delivered or
//! schedules the next try with exponential backoff, forever, across restarts.
//!
//! Delivery is at least once: a process that dies between a sink's answer and the row update
//! delivers again later, so receivers that care should deduplicate on the alert `id`.
//!
//! Sinks ([`AlertsConfig`]): a `webhook` (HTTP POST of the JSON alert, or a Slack-style message),
//! `syslog` (RFC 5424 to a local datagram socket or a UDP address) and `command` (a program that
//! reads the JSON alert on stdin). Each sink has a stable name (`webhook:<url>`,
//! `syslog:<socket or address>`, `command:<program>`) that keys its outbox rows. Rows whose sink
//! is no longer configured stay in the outbox untouched: the loop warns about them at start and
//! every hour, they are delivered if the sink comes back, and [`Alerts::forget_sink`] drops them
//! when an operator decides the sink is gone for good.
//!
//! Every delivery and every failed attempt is reported to a [`DeliveryObserver`], which the
//! audit log implements.

mod alert;
mod command;
mod config;
mod dispatch;
mod facade;
mod observer;
mod outbox;
mod retry;
mod syslog;
#[cfg(test)]
pub(crate) mod testkit;
mod webhook;

pub use alert::{Alert, AlertEvent, Severity};
pub use config::{
    AlertsConfig, AlertsConfigError, CommandSink, DEFAULT_COMMAND_TIMEOUT, DEFAULT_WEBHOOK_TIMEOUT,
    MAX_SINK_TIMEOUT, SYSLOG_TIMEOUT, SyslogFacility, SyslogSink, WebhookFormat, WebhookSink,
    sink_label,
};
pub use dispatch::Dispatcher;
pub use facade::{Alerts, AlertsError, PendingDelivery, SendReport, SinkOutcome, SinkReport};
use facade::{Inner, SinkEntry};
pub use observer::{DeliveryObserver, NoopObserver, Observation, Observers, RecordingObserver};
pub use retry::RetryPolicy;
