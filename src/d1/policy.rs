//! D1's SQL policy, enforced by SQLite's authorizer at prepare time: the PRAGMA
//! allowlist, no ATTACH, no transaction statements (use `batch`), `_cf_` names reserved.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

/// PRAGMAs that read schema or check integrity; allowed with or without an argument.
const INSPECTION_PRAGMAS: &[&str] = &[
    "table_list",
    "table_info",
    "table_xinfo",
    "index_list",
    "index_info",
    "index_xinfo",
    "quick_check",
    "foreign_key_check",
    "foreign_key_list",
    "optimize",
    "data_version",
];

/// Boolean PRAGMAs D1 lets a query set, with the value each returns to afterwards:
/// D1 scopes a PRAGMA to the current (implicit) transaction.
pub(crate) const TOGGLE_PRAGMAS: &[(&str, bool)] = &[
    ("case_sensitive_like", false),
    ("ignore_check_constraints", false),
    ("legacy_alter_table", false),
    ("recursive_triggers", false),
    ("reverse_unordered_selects", false),
    ("foreign_keys", true),
    ("defer_foreign_keys", false),
];

/// What the authorizer of one connection knows, shared with the code that runs statements.
#[derive(Default)]
pub(crate) struct Policy {
    /// Set while tristore itself runs bookkeeping SQL (BEGIN, COMMIT, PRAGMA page_count).
    trusted: AtomicBool,
    /// A setting PRAGMA was prepared: reset the toggles when the request ends.
    toggled: AtomicBool,
    /// Why the last statement was refused, when SQLite's "not authorized" would not say.
    refusal: Mutex<Option<String>>,
}

/// Refusal text for transaction statements: D1 runs each query in its own transaction.
pub(crate) const TRANSACTION_REFUSAL: &str = "To execute a transaction, use the batch() method \
instead of the SQL BEGIN TRANSACTION or SAVEPOINT statements; each statement already runs in a \
transaction of its own";

impl Policy {
    pub(crate) fn authorize(&self, ctx: AuthContext<'_>) -> Authorization {
        if self.trusted.load(Ordering::Relaxed) {
            return Authorization::Allow;
        }
        let verdict = self.judge(&ctx);
        if let Err(reason) = &verdict {
            *self.refusal.lock().unwrap() = reason.clone();
        }
        match verdict {
            Ok(()) => Authorization::Allow,
            Err(_) => Authorization::Deny,
        }
    }

    /// `Err(Some(text))` denies with an explanation; `Err(None)` with SQLite's own text.
    fn judge(&self, ctx: &AuthContext<'_>) -> Result<(), Option<String>> {
        use AuthAction::*;
        match ctx.action {
            Transaction { .. } | Savepoint { .. } => Err(Some(TRANSACTION_REFUSAL.into())),
            Attach { .. } | Detach { .. } => Err(None),
            Pragma {
                pragma_name,
                pragma_value,
            } => self.judge_pragma(pragma_name, pragma_value),
            CreateTable { table_name }
            | CreateTempTable { table_name }
            | CreateVtable { table_name, .. }
            | DropTable { table_name }
            | DropTempTable { table_name }
            | DropVtable { table_name, .. }
            | Insert { table_name }
            | Delete { table_name }
            | Read { table_name, .. }
            | Update { table_name, .. }
            | AlterTable { table_name, .. }
            | Analyze { table_name } => reserved(table_name),
            CreateIndex { index_name, .. }
            | CreateTempIndex { index_name, .. }
            | DropIndex { index_name, .. }
            | DropTempIndex { index_name, .. }
            | Reindex { index_name } => reserved(index_name),
            CreateView { view_name }
            | CreateTempView { view_name }
            | DropView { view_name }
            | DropTempView { view_name } => reserved(view_name),
            CreateTrigger { trigger_name, .. }
            | CreateTempTrigger { trigger_name, .. }
            | DropTrigger { trigger_name, .. }
            | DropTempTrigger { trigger_name, .. } => reserved(trigger_name),
            _ => Ok(()),
        }
    }

    fn judge_pragma(&self, name: &str, value: Option<&str>) -> Result<(), Option<String>> {
        let name = name.to_ascii_lowercase();
        if INSPECTION_PRAGMAS.contains(&name.as_str()) || (name == "page_size" && value.is_none()) {
            return Ok(());
        }
        if TOGGLE_PRAGMAS.iter().any(|(t, _)| *t == name) {
            if value.is_some() {
                self.toggled.store(true, Ordering::Relaxed);
            }
            return Ok(());
        }
        Err(None)
    }

    /// Runs `f` with the authorizer letting everything through: tristore's own SQL.
    pub(crate) fn trusted<T>(&self, f: impl FnOnce() -> T) -> T {
        self.trusted.store(true, Ordering::Relaxed);
        let out = f();
        self.trusted.store(false, Ordering::Relaxed);
        out
    }

    /// The explanation recorded for the last refusal, if any; clears it.
    pub(crate) fn take_refusal(&self) -> Option<String> {
        self.refusal.lock().unwrap().take()
    }

    /// Whether a setting PRAGMA ran since the last call; clears the flag.
    pub(crate) fn take_toggled(&self) -> bool {
        self.toggled.swap(false, Ordering::Relaxed)
    }
}

fn reserved(name: &str) -> Result<(), Option<String>> {
    if name
        .as_bytes()
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"_cf_"))
    {
        Err(Some(format!(
            "Names starting with _cf_ are reserved by D1 and cannot be used: {name}"
        )))
    } else {
        Ok(())
    }
}
