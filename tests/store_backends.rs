//! The store's contract, written once against [`gatehouse::store::Store`] and run against both
//! backends: SQLite in a temporary file, and a real PostgreSQL server of the tests' own. Then,
//! on PostgreSQL only, several stores opened on one database at the same moment, as the nodes
//! of a cluster open it: migrations, outbox claims, approvals, break-glass limits, sweeps, the
//! push of grant changes, and a server that stops and comes back. Web sign-in and API tokens
//! have their own scenarios ([`web`], [`web_schema`]), as has the directory's state
//! ([`directory`]).

/// Stores opened on one PostgreSQL database at the same moment, as nodes of a cluster.
#[path = "store_backends/cluster.rs"]
mod cluster;
mod common;
/// The grant scenarios every backend must pass.
#[path = "store_backends/contract.rs"]
mod contract;
/// A grant desk with its own audit log on a store, as one node has it.
#[path = "store_backends/desk.rs"]
mod desk;
/// The directory's last good state on every backend.
#[path = "store_backends/directory.rs"]
mod directory;
/// A PostgreSQL server that stops, comes back and is away under running stores.
#[path = "store_backends/outage.rs"]
mod outage;
/// The scenarios every backend must pass beyond grants.
#[path = "store_backends/records.rs"]
mod records;
/// Legal holds and forgetting sessions past their keep on every backend.
#[path = "store_backends/retention.rs"]
mod retention;
/// The text index of recordings on every backend.
#[path = "store_backends/search.rs"]
mod search;
/// TLS to PostgreSQL as the store URL asks for it.
#[path = "store_backends/tls.rs"]
mod tls;
/// File-session transcripts on every backend.
#[path = "store_backends/transfers.rs"]
mod transfers;
/// Web sign-in links, browser sessions and API tokens on every backend.
#[path = "store_backends/web.rs"]
mod web;
/// The migration that adds them, on a database of the previous version.
#[path = "store_backends/web_schema.rs"]
mod web_schema;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use common::postgres::Postgres;
use gatehouse::store::{self, Store};

/// An open store and what must outlive it.
pub struct Opened {
    /// The store.
    pub store: Store,
    /// Its URL, to open it again as another node.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// A SQLite store in a fresh temporary file.
pub async fn sqlite() -> Opened {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    Opened {
        store: store::open(&url).await.unwrap(),
        url,
        _dir: Some(dir),
    }
}

/// A PostgreSQL store on a fresh database of the shared server.
pub async fn postgres() -> Opened {
    let url = fresh_database();
    Opened {
        store: store::open(&url).await.unwrap(),
        url,
        _dir: None,
    }
}

/// The server most tests share (starting one takes seconds): started by the first test that
/// needs it, stopped when the test process exits. Each test works in a database of its own.
static SHARED: Mutex<Option<Postgres>> = Mutex::new(None);

/// Stops the shared server as the test process exits (statics are never dropped).
extern "C" fn stop_shared() {
    let server = SHARED.lock().unwrap_or_else(|p| p.into_inner()).take();
    drop(server);
}

/// The URL of a new, empty database on the shared server.
pub fn fresh_database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if shared.is_none() {
        *shared = Some(Postgres::start());
        // SAFETY: registers a plain function with no arguments to run at exit.
        let registered = unsafe { libc::atexit(stop_shared) };
        assert_eq!(registered, 0, "atexit");
    }
    let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
    shared.as_ref().expect("started").create_database(&name)
}

/// One test per scenario of [`contract`] and backend.
macro_rules! conformance {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let opened = crate::sqlite().await;
                    crate::$module::$name(&opened.store).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let opened = crate::postgres().await;
                    crate::$module::$name(&opened.store).await;
                }
            )*
        }
    };
}

conformance!(
    contract::grants_are_compare_and_set_and_reads_see_the_transaction,
    contract::a_failed_seal_rolls_back_and_the_store_stays_usable,
    contract::changed_since_finds_what_changed_after_a_revision,
    contract::grants_are_listed_by_user_state_and_limit,
    records::sessions_are_indexed_and_completed,
    records::break_glass_sessions_wait_for_one_review,
    records::orphans_of_a_node_are_closed_once,
    records::outbox_claims_lease_and_retries,
    records::outbox_prunes_forgets_and_knows_unknown_sinks,
    records::grants_and_the_outbox_backlog_are_counted,
    records::nodes_heartbeat_stop_and_are_marked_gone_once,
    directory::directory_state_is_saved_held_and_failed,
    directory::one_node_at_a_time_holds_the_directory_lease,
    transfers::file_operations_are_kept_in_order_and_found_by_path,
    retention::only_ended_unheld_sessions_of_the_node_are_forgotten_once,
    retention::a_hold_and_a_deletion_racing_never_both_win,
    search::rows_are_found_by_text_and_forgotten,
    search::sealed_and_unsealed_rows_are_found_and_merges_keep_the_answers,
    search::a_needle_of_common_parts_is_found_only_where_it_is_whole,
);
