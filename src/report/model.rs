//! The report as data: what `--json` writes, what `--diff` reads back, and what the HTML and
//! CSV renderings show. Times are Unix seconds, durations are seconds.
//!
//! Every figure carries the ids it counts (grant ids, session ids, audit `seq` numbers), so a
//! reviewer can go from a number to the records behind it.

use serde::{Deserialize, Serialize};

/// The version of this layout, written into every report so that `--diff` can refuse a report
/// it cannot read.
pub const FORMAT: u32 = 1;

/// A whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What the report covers and how it was made.
    pub meta: Meta,
    /// Every role of the policy in force, with who may hold it and what it allows.
    pub roles: Vec<RoleSummary>,
    /// Privilege that needs no approval, or lasts, or is unlimited.
    pub standing: Standing,
    /// How long grants were asked for, given and used.
    pub time: Time,
    /// Who approved whom, how fast, and the decisions refused for separation of duties.
    pub approvals: Approvals,
    /// Every break-glass use, unreviewed first.
    pub break_glass: Vec<BreakGlassUse>,
    /// Entitlements with no use in the period: the candidates to remove.
    pub unused: Unused,
    /// Sessions and lines refused, by reason, user and role.
    pub denials: Denials,
    /// Whether the evidence itself is intact.
    pub integrity: Integrity,
}

/// What the report covers and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// [`FORMAT`].
    pub format: u32,
    /// The Gatehouse version that wrote the report.
    pub gatehouse_version: String,
    /// When it was written.
    pub generated_at: i64,
    /// The Unix account that wrote it.
    pub generated_by: String,
    /// The start of the period (included).
    pub since: i64,
    /// The end of the period (excluded).
    pub until: i64,
    /// The store it read (without a password).
    pub store: String,
    /// The policy directory it judged by.
    pub policies: String,
    /// SHA-256 over the policy files (name and content, in name order).
    pub policy_digest: String,
    /// The audit log it read.
    pub audit_log: String,
}

/// One role as the policy has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleSummary {
    /// The role.
    pub role: String,
    /// `none`, `restricted` or `full`.
    pub shell: String,
    /// Approvals needed.
    pub approvals: u32,
    /// Groups whose users may approve.
    pub approvers: Vec<String>,
    /// The longest grant.
    pub max_duration: u64,
    /// Whether it is an emergency role.
    pub break_glass: bool,
    /// Users who may hold it.
    pub members: Vec<String>,
    /// Targets it covers.
    pub targets: Vec<String>,
    /// Its command rules as written.
    pub rules: Vec<String>,
}

/// Standing privilege.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standing {
    /// A `max_duration` above this counts as long.
    pub long_after: u64,
    /// Roles that need no approval, give a full shell, are break-glass or last long.
    pub roles: Vec<StandingRole>,
    /// The moment `active` describes: the end of the period, or now if that is earlier.
    pub active_at: i64,
    /// Grants active at that moment.
    pub active: Vec<ActiveGrant>,
}

/// A role that carries standing privilege, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandingRole {
    /// The role.
    pub role: String,
    /// `self-service`, `full shell`, `break-glass`, `long max_duration`.
    pub why: Vec<String>,
    /// Its longest grant.
    pub max_duration: u64,
    /// Users who may hold it.
    pub holders: Vec<String>,
}

/// A grant active at [`Standing::active_at`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveGrant {
    /// Its id.
    pub id: i64,
    /// Its holder.
    pub user: String,
    /// Its role.
    pub role: String,
    /// Its target or pattern.
    pub target: String,
    /// Whether it is break-glass.
    pub break_glass: bool,
    /// When it became active.
    pub activated_at: i64,
    /// When it ends.
    pub expires_at: i64,
}

/// Minimum, median, maximum and total of some durations, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// How many.
    pub count: u64,
    /// Their sum.
    pub total: u64,
    /// The smallest.
    pub min: u64,
    /// The median (the lower middle of an even count).
    pub median: u64,
    /// The largest.
    pub max: u64,
}

/// Grant durations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Time {
    /// Per role.
    pub roles: Vec<RoleTime>,
    /// Every grant requested in the period.
    pub grants: Vec<GrantTime>,
    /// Grants (requested in the period) that ended by running out.
    pub expired: Vec<i64>,
    /// Grants that were ended early.
    pub revoked: Vec<i64>,
}

/// One role's grants in the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleTime {
    /// The role.
    pub role: String,
    /// Durations asked for, over every grant requested.
    pub requested: Stats,
    /// Durations given, over the grants that became active.
    pub granted: Stats,
    /// Seconds of those grants during which a session ran.
    pub used: u64,
    /// `used` as a share of the granted total, in percent.
    pub used_percent: Option<f64>,
    /// The grants counted.
    pub grants: Vec<i64>,
}

/// One grant's time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantTime {
    /// Its id.
    pub id: i64,
    /// Its holder.
    pub user: String,
    /// Its role.
    pub role: String,
    /// Its target or pattern.
    pub target: String,
    /// Its state at the end of the period.
    pub state: String,
    /// Whether it is break-glass.
    pub break_glass: bool,
    /// When it was requested.
    pub requested_at: i64,
    /// When it became active.
    pub activated_at: Option<i64>,
    /// When it stopped being live (or will).
    pub ends_at: Option<i64>,
    /// The duration asked for.
    pub requested: u64,
    /// How long it was (or is) live; none if it never became active.
    pub granted: Option<u64>,
    /// Seconds of it during which a session ran.
    pub used: u64,
    /// Who ended it, if someone or something did.
    pub ended_by: Option<String>,
    /// Its sessions in the period.
    pub sessions: Vec<String>,
}

/// Approvals and refusals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approvals {
    /// Who approved whom, how often.
    pub pairs: Vec<ApprovalPair>,
    /// For each grant that needed approval and got it: how long from request to active.
    pub latency: Vec<Latency>,
    /// Those latencies.
    pub latency_stats: Stats,
    /// Requests refused by an approver.
    pub denied: Vec<i64>,
    /// Requests nobody decided in time.
    pub lapsed: Vec<i64>,
    /// Decisions refused for separation of duties, from the audit log.
    pub refusals: Vec<Refusal>,
    /// How many of them were requesters approving their own request.
    pub self_approvals_refused: u64,
    /// How many were anything else.
    pub other_refusals: u64,
}

/// One approver and one requester.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPair {
    /// Who approved.
    pub approver: String,
    /// Whose request.
    pub requester: String,
    /// The grants approved.
    pub grants: Vec<i64>,
}

/// How long one grant waited for its approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// The grant.
    pub grant: i64,
    /// Its role.
    pub role: String,
    /// Its requester.
    pub requester: String,
    /// Who approved it.
    pub approvers: Vec<String>,
    /// Seconds from the request to the grant becoming active.
    pub seconds: u64,
}

/// A decision refused for separation of duties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The audit line's `seq`.
    pub seq: u64,
    /// When.
    pub time: i64,
    /// Who tried.
    pub actor: String,
    /// Whose request it was.
    pub requester: Option<String>,
    /// The grant.
    pub grant: Option<i64>,
    /// Its role.
    pub role: Option<String>,
    /// `approve`, `deny` or `revoke`.
    pub decision: String,
    /// `self_approval`, `self_decision`, `not_approver` or `unmapped_operator`.
    pub refusal: String,
    /// What they were told.
    pub reason: String,
}

/// One break-glass use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlassUse {
    /// The emergency grant.
    pub grant: i64,
    /// Who.
    pub user: String,
    /// The emergency role.
    pub role: String,
    /// Where.
    pub target: String,
    /// Why, as they wrote it.
    pub reason: String,
    /// When.
    pub at: i64,
    /// How long it was live.
    pub granted: u64,
    /// Seconds of it during which a session ran.
    pub used: u64,
    /// Its state at the end of the period.
    pub state: String,
    /// Its sessions.
    pub sessions: Vec<String>,
    /// Whether the alert reached the sinks.
    pub alert: AlertDelivery,
    /// Whether someone else reviewed its sessions.
    pub review: ReviewState,
}

/// How a break-glass alert fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertDelivery {
    /// `delivered` (every sink), `partly delivered`, `undelivered`, `no sinks`, or
    /// `not recorded` (no `alert.sent` line).
    pub state: String,
    /// The alert's id.
    pub alert_id: Option<String>,
    /// The sinks configured when it was sent.
    pub sinks: Vec<String>,
    /// Sinks that took it before the session started.
    pub at_once: Vec<String>,
    /// Sinks that took it, at once or later.
    pub delivered: Vec<String>,
    /// Failed attempts.
    pub failed_attempts: u64,
}

/// The review of a break-glass use's sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewState {
    /// `reviewed`, `partly reviewed`, `unreviewed` or `no session`.
    pub state: String,
    /// Who reviewed.
    pub reviewers: Vec<String>,
    /// When the last of its sessions was reviewed.
    pub reviewed_at: Option<i64>,
    /// Seconds from the use to its last review.
    pub seconds_to_review: Option<u64>,
    /// What the reviewers wrote.
    pub notes: Vec<String>,
}

/// Entitlements with no use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unused {
    /// Users with no session in the period.
    pub users: Vec<String>,
    /// Roles no session ran in.
    pub roles: Vec<String>,
    /// Targets no session ran on.
    pub targets: Vec<String>,
    /// Command rules nothing matched.
    pub rules: Vec<RuleRef>,
    /// Members of a role who never ran a session in it.
    pub memberships: Vec<Membership>,
    /// For each role with command rules: how often each rule was used.
    pub rule_use: Vec<RoleRules>,
}

/// A rule of a role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RuleRef {
    /// The role.
    pub role: String,
    /// The rule as written.
    pub rule: String,
}

/// A member of a role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Membership {
    /// The role.
    pub role: String,
    /// The user.
    pub user: String,
}

/// How often a role's rules were used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleRules {
    /// The role.
    pub role: String,
    /// Its shell mode.
    pub shell: String,
    /// Each rule in policy order.
    pub rules: Vec<RuleUse>,
    /// Commands that ran in the period but that no rule of today's policy allows.
    pub unmatched: u64,
}

/// One rule's use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleUse {
    /// The rule as written.
    pub rule: String,
    /// How many commands it allowed.
    pub uses: u64,
    /// The sessions they ran in.
    pub sessions: Vec<String>,
}

/// Refused sessions and lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denials {
    /// How many.
    pub total: u64,
    /// By reason, most frequent first.
    pub by_reason: Vec<Count>,
    /// By user.
    pub by_user: Vec<Count>,
    /// By role (`-` when none was named).
    pub by_role: Vec<Count>,
    /// By class.
    pub by_class: Vec<Count>,
}

/// One key and the audit lines it counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// The reason, user, role or class.
    pub key: String,
    /// How many.
    pub count: u64,
    /// The audit lines' `seq`s.
    pub seqs: Vec<u64>,
}

/// Whether the evidence is intact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integrity {
    /// The audit log's hash chain.
    pub audit: AuditCheck,
    /// The recordings of the period's sessions against their hashes.
    pub recordings: RecordingCheck,
    /// SHA-256 over the policy files.
    pub policy_digest: String,
    /// The Gatehouse version that wrote the report.
    pub gatehouse_version: String,
}

/// `gatehouse audit verify`, as of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCheck {
    /// Whether the chain is whole.
    pub ok: bool,
    /// Lines in the log.
    pub lines: u64,
    /// The last record's `seq`.
    pub last_seq: u64,
    /// The last record's hash.
    pub last_hash: String,
    /// The first bad line (1-based), when not whole.
    pub first_bad_line: Option<u64>,
    /// What is wrong, when not whole (or could not be read).
    pub problem: Option<String>,
    /// What verify accepted but reports.
    pub warnings: Vec<String>,
}

/// `gatehouse sessions verify` for every session of the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingCheck {
    /// Recordings checked.
    pub checked: u64,
    /// Those that match their hash.
    pub matching: u64,
    /// Those that do not.
    pub modified: Vec<RecordingProblem>,
    /// Those that cannot be read here.
    pub unreadable: Vec<RecordingProblem>,
    /// Sessions with no hash to check against (still running, or ended uncleanly).
    pub unhashed: Vec<String>,
}

/// A recording that failed its check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingProblem {
    /// The session.
    pub session: String,
    /// The file.
    pub path: String,
    /// What is wrong.
    pub detail: String,
}
