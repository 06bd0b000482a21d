//! A bucket's object lifecycle rules and their application.
//!
//! R2's subset of S3's lifecycle: per key prefix, delete objects some days after upload
//! or from a date on, move them to Infrequent Access likewise, and abort multipart
//! uploads some days after they started. A bucket starts with R2's default rule, which
//! aborts every upload after seven days; a configuration written later replaces it.
//!
//! Rules take effect when [`R2Store::apply_lifecycle`] runs (R2 itself removes expired
//! objects "within 24 hours"); an object is due the moment its age reaches the rule's
//! days, not at the next midnight as in S3.

use std::time::{SystemTime, UNIX_EPOCH};

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::bucket::R2Bucket;
use super::bucket_config::Kind;
use super::catalog::{objects_table, OrR2};
use super::error::{R2Error, R2ErrorKind};
use super::list::R2ListOptions;
use super::object::{new_version, ObjectRecord, R2Object};
use super::store::R2Store;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// At most this many rules per bucket (R2's limit).
pub const MAX_LIFECYCLE_RULES: usize = 1000;

/// The id of the rule every new bucket has.
pub const DEFAULT_RULE_ID: &str = "Default Multipart Abort Rule";

/// When an action comes due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LifecycleAge {
    /// This many whole days after the object was uploaded (at least 1).
    Days(u32),
    /// From this instant on, in milliseconds since the epoch (a midnight UTC).
    Date(i64),
}

impl LifecycleAge {
    fn due(self, since_ms: i64, now_ms: i64) -> bool {
        match self {
            LifecycleAge::Days(days) => since_ms.saturating_add(i64::from(days) * DAY_MS) <= now_ms,
            LifecycleAge::Date(at) => at <= now_ms,
        }
    }
}

/// How an S3 request wrote a rule's prefix, so that it is read back the same way (SDKs
/// compare the rules they read with those they wrote).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PrefixStyle {
    /// `<Filter><Prefix>`, the current form (and the REST API's `conditions.prefix`).
    #[default]
    Filter,
    /// `<Prefix>` directly in the rule, S3's older form.
    Rule,
}

/// Moving objects to another storage class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageClassTransition {
    /// When.
    pub after: LifecycleAge,
    /// Where to: `InfrequentAccess` (R2's only other class).
    pub storage_class: String,
}

/// One rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LifecycleRule {
    /// A name unique in the bucket (at most 255 characters); one is made up when empty.
    pub id: String,
    /// Disabled rules are kept but do nothing.
    pub enabled: bool,
    /// Only keys starting with this ("" for all).
    pub prefix: String,
    /// How S3 wrote the prefix.
    pub prefix_style: PrefixStyle,
    /// Delete objects.
    pub expiration: Option<LifecycleAge>,
    /// Change objects' storage class.
    pub transitions: Vec<StorageClassTransition>,
    /// Abort multipart uploads this many days after they started.
    pub abort_multipart_days: Option<u32>,
    /// S3's `ExpiredObjectDeleteMarker`: R2 keeps no versions, so there are never
    /// delete markers for it to remove; kept only to be read back.
    pub expired_object_delete_marker: bool,
}

impl LifecycleRule {
    /// R2's default rule: abort every multipart upload seven days after it started.
    pub fn r2_default() -> LifecycleRule {
        LifecycleRule {
            id: DEFAULT_RULE_ID.into(),
            enabled: true,
            abort_multipart_days: Some(7),
            ..Default::default()
        }
    }

    fn applies_to(&self, key: &str) -> bool {
        self.enabled && key.starts_with(&self.prefix)
    }
}

/// What one pass of lifecycle rules did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LifecycleReport {
    /// Objects deleted by an expiration.
    pub expired_objects: usize,
    /// Objects moved to another storage class.
    pub transitioned_objects: usize,
    /// Multipart uploads aborted.
    pub aborted_uploads: usize,
}

impl std::ops::AddAssign for LifecycleReport {
    fn add_assign(&mut self, other: LifecycleReport) {
        self.expired_objects += other.expired_objects;
        self.transitioned_objects += other.transitioned_objects;
        self.aborted_uploads += other.aborted_uploads;
    }
}

/// Checks a configuration as S3 does before storing it, and names unnamed rules.
pub fn validate_lifecycle(rules: &mut [LifecycleRule]) -> Result<(), R2Error> {
    const OP: &str = "putBucketLifecycleConfiguration";
    let invalid = |message: String| R2Error::new(OP, R2ErrorKind::InvalidArgument, message);
    if rules.len() > MAX_LIFECYCLE_RULES {
        return Err(invalid(format!(
            "A lifecycle configuration holds at most {MAX_LIFECYCLE_RULES} rules, not {}",
            rules.len()
        )));
    }
    for rule in rules.iter_mut() {
        if rule.id.is_empty() {
            rule.id = new_version();
        }
        if rule.id.chars().count() > 255 {
            return Err(invalid(
                "ID length should not exceed allowed limit of 255".into(),
            ));
        }
        let ages = rule
            .expiration
            .iter()
            .chain(rule.transitions.iter().map(|t| &t.after));
        for age in ages.chain(rule.abort_multipart_days.map(LifecycleAge::Days).iter()) {
            match *age {
                LifecycleAge::Days(0) => {
                    return Err(invalid(format!(
                        "Rule {:?}: a number of days must be a positive integer",
                        rule.id
                    )))
                }
                LifecycleAge::Date(ms) if ms.rem_euclid(DAY_MS) != 0 => {
                    return Err(invalid(format!(
                        "Rule {:?}: a date must be at midnight GMT",
                        rule.id
                    )))
                }
                _ => {}
            }
        }
        if let Some(t) = rule
            .transitions
            .iter()
            .find(|t| t.storage_class != "InfrequentAccess")
        {
            return Err(invalid(format!(
                "Rule {:?}: objects can only move to InfrequentAccess, not {}",
                rule.id, t.storage_class
            )));
        }
        if rule.expiration.is_none()
            && rule.transitions.is_empty()
            && rule.abort_multipart_days.is_none()
            && !rule.expired_object_delete_marker
        {
            return Err(invalid(format!(
                "Rule {:?}: at least one action needs to be specified in a rule",
                rule.id
            )));
        }
    }
    let mut ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    if let Some(pair) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(invalid(format!(
            "Rule ID must be unique. Found same ID for more than one rule: {:?}",
            pair[0]
        )));
    }
    Ok(())
}

/// What a pass does to one object.
enum Action {
    Expire,
    Move(String),
}

fn action(rules: &[LifecycleRule], object: &R2Object, now_ms: i64) -> Option<Action> {
    let applying = || rules.iter().filter(|r| r.applies_to(&object.key));
    // As in S3, deleting wins over moving when both are due.
    if applying().any(|r| r.expiration.is_some_and(|e| e.due(object.uploaded, now_ms))) {
        return Some(Action::Expire);
    }
    applying()
        .flat_map(|r| &r.transitions)
        .find(|t| t.storage_class != object.storage_class && t.after.due(object.uploaded, now_ms))
        .map(|t| Action::Move(t.storage_class.clone()))
}

fn millis(t: SystemTime) -> i64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl R2Bucket {
    /// The lifecycle rules: R2's default rule until a configuration is written, none
    /// after one is deleted.
    pub fn lifecycle(&self) -> Result<Vec<LifecycleRule>, R2Error> {
        let stored: Option<Vec<LifecycleRule>> =
            self.config("getBucketLifecycleConfiguration", Kind::Lifecycle)?;
        Ok(stored.unwrap_or_else(|| vec![LifecycleRule::r2_default()]))
    }

    /// Replaces the lifecycle rules after [`validate_lifecycle`] (an empty list leaves
    /// none, not even the default rule) and returns them as stored.
    pub fn set_lifecycle(
        &self,
        mut rules: Vec<LifecycleRule>,
    ) -> Result<Vec<LifecycleRule>, R2Error> {
        validate_lifecycle(&mut rules)?;
        self.set_config(
            "putBucketLifecycleConfiguration",
            Kind::Lifecycle,
            Some(&rules),
        )?;
        Ok(rules)
    }

    /// Applies the rules as of `now`: deletes the objects an expiration has come due
    /// for, moves those a transition has, aborts uploads past their days. An object
    /// written again after the pass looked at it is left alone.
    pub fn apply_lifecycle(&self, now: SystemTime) -> Result<LifecycleReport, R2Error> {
        let now_ms = millis(now);
        let rules: Vec<LifecycleRule> = self
            .lifecycle()?
            .into_iter()
            .filter(|r| r.enabled)
            .collect();
        let mut report = LifecycleReport::default();
        if rules
            .iter()
            .any(|r| r.expiration.is_some() || !r.transitions.is_empty())
        {
            let mut options = R2ListOptions::default();
            loop {
                let page = self.list(&options)?;
                let due: Vec<(&R2Object, Action)> = page
                    .objects
                    .iter()
                    .filter_map(|o| action(&rules, o, now_ms).map(|a| (o, a)))
                    .collect();
                if !due.is_empty() {
                    report += self.apply_actions(&due)?;
                }
                match page.cursor {
                    Some(cursor) if page.truncated => options.cursor = Some(cursor),
                    _ => break,
                }
            }
        }
        for (key, upload_id, initiated) in self.list_multipart_uploads()? {
            let due = rules.iter().any(|r| {
                r.applies_to(&key)
                    && r.abort_multipart_days
                        .is_some_and(|d| LifecycleAge::Days(d).due(initiated, now_ms))
            });
            if due {
                self.resume_multipart_upload(&key, &upload_id).abort()?;
                report.aborted_uploads += 1;
            }
        }
        Ok(report)
    }

    /// One transaction for a page of due objects, each acted on only if it is still
    /// the version the pass saw.
    fn apply_actions(&self, due: &[(&R2Object, Action)]) -> Result<LifecycleReport, R2Error> {
        const OP: &str = "lifecycle";
        let mut report = LifecycleReport::default();
        let txn = self.inner.begin_write(OP)?;
        {
            let mut table = txn.open_table(objects_table(&self.table)).or_r2(OP)?;
            for (seen, action) in due {
                let key = seen.key.as_bytes();
                let current = match table.get(key).or_r2(OP)? {
                    Some(row) => ObjectRecord::decode(OP, row.value())?,
                    None => continue,
                };
                if current.version != seen.version {
                    continue;
                }
                match action {
                    Action::Expire => {
                        table.remove(key).or_r2(OP)?;
                        report.expired_objects += 1;
                    }
                    Action::Move(class) => {
                        let moved = ObjectRecord {
                            storage_class: class.clone(),
                            ..current
                        };
                        table.insert(key, moved.encode(OP)?.as_slice()).or_r2(OP)?;
                        report.transitioned_objects += 1;
                    }
                }
            }
        }
        txn.commit().or_r2(OP)?;
        Ok(report)
    }
}

impl R2Store {
    /// Applies every bucket's lifecycle rules as of `now` (see
    /// [`R2Bucket::apply_lifecycle`]); meant to run periodically, beside
    /// [`gc`](R2Store::gc), which reclaims the space of what this deletes.
    pub fn apply_lifecycle(&self, now: SystemTime) -> Result<LifecycleReport, R2Error> {
        let mut report = LifecycleReport::default();
        for info in self.list_buckets()? {
            let applied = self
                .bucket(&info.name)
                .and_then(|bucket| bucket.apply_lifecycle(now));
            match applied {
                Ok(r) => report += r,
                // Deleted since it was listed.
                Err(e) if e.kind == R2ErrorKind::NoSuchBucket => {}
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::r2::{R2MultipartOptions, R2PutOptions};

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    fn rule(id: &str, prefix: &str) -> LifecycleRule {
        LifecycleRule {
            id: id.into(),
            enabled: true,
            prefix: prefix.into(),
            ..Default::default()
        }
    }

    fn keys(bucket: &R2Bucket) -> Vec<(String, String)> {
        let page = bucket.list(&R2ListOptions::default()).unwrap();
        page.objects
            .into_iter()
            .map(|o| (o.key, o.storage_class))
            .collect()
    }

    #[test]
    fn rules_expire_move_and_abort_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::Store::open(dir.path()).unwrap();
        store.r2().create_bucket("bkt").unwrap();
        let bucket = store.r2().bucket("bkt").unwrap();
        assert_eq!(
            bucket.lifecycle().unwrap(),
            vec![LifecycleRule::r2_default()]
        );

        let rules = vec![
            LifecycleRule {
                expiration: Some(LifecycleAge::Days(1)),
                ..rule("tmp", "tmp/")
            },
            LifecycleRule {
                transitions: vec![StorageClassTransition {
                    after: LifecycleAge::Days(30),
                    storage_class: "InfrequentAccess".into(),
                }],
                ..rule("logs", "logs/")
            },
            LifecycleRule {
                // 2020-01-01T00:00:00Z
                expiration: Some(LifecycleAge::Date(1_577_836_800_000)),
                ..rule("old", "old/")
            },
            LifecycleRule {
                abort_multipart_days: Some(2),
                ..rule("", "up/")
            },
            LifecycleRule {
                enabled: false,
                expiration: Some(LifecycleAge::Days(1)),
                ..rule("off", "")
            },
        ];
        let stored = bucket.set_lifecycle(rules).unwrap();
        assert_eq!(stored[3].id.len(), 32, "an unnamed rule gets a name");
        assert_eq!(bucket.lifecycle().unwrap(), stored);

        for key in ["tmp/a", "logs/b", "keep/c", "old/d"] {
            bucket.put(key, b"x", &R2PutOptions::default()).unwrap();
        }
        let options = R2MultipartOptions::default();
        bucket.create_multipart_upload("up/x", &options).unwrap();
        bucket.create_multipart_upload("other/y", &options).unwrap();

        let now = SystemTime::now();
        let report = store.r2().apply_lifecycle(now).unwrap();
        assert_eq!(
            report,
            LifecycleReport {
                expired_objects: 1,
                ..Default::default()
            }
        );
        let report = store.r2().apply_lifecycle(now + DAY * 3).unwrap();
        assert_eq!((report.expired_objects, report.aborted_uploads), (1, 1));
        let uploads = bucket.list_multipart_uploads().unwrap();
        assert_eq!(
            uploads.len(),
            1,
            "only the rule's prefix, and no default rule any more"
        );
        assert_eq!(uploads[0].0, "other/y");

        let report = store.r2().apply_lifecycle(now + DAY * 31).unwrap();
        assert_eq!(report.transitioned_objects, 1);
        assert_eq!(
            keys(&bucket),
            [
                ("keep/c".to_owned(), "Standard".to_owned()),
                ("logs/b".to_owned(), "InfrequentAccess".to_owned())
            ]
        );
        let report = store.r2().apply_lifecycle(now + DAY * 32).unwrap();
        assert_eq!(report, LifecycleReport::default(), "nothing twice");
    }

    #[test]
    fn an_object_written_again_after_the_pass_looked_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::Store::open(dir.path()).unwrap();
        store.r2().create_bucket("bkt").unwrap();
        let bucket = store.r2().bucket("bkt").unwrap();
        let seen = bucket
            .put("k", b"old", &R2PutOptions::default())
            .unwrap()
            .unwrap();
        bucket.put("k", b"new", &R2PutOptions::default()).unwrap();
        let report = bucket.apply_actions(&[(&seen, Action::Expire)]).unwrap();
        assert_eq!(report, LifecycleReport::default());
        assert!(bucket.head("k").unwrap().is_some());
    }

    #[test]
    fn the_default_rule_aborts_week_old_uploads_until_rules_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::Store::open(dir.path()).unwrap();
        store.r2().create_bucket("bkt").unwrap();
        let bucket = store.r2().bucket("bkt").unwrap();
        let options = R2MultipartOptions::default();
        bucket.create_multipart_upload("a", &options).unwrap();
        let now = SystemTime::now();
        assert_eq!(
            bucket
                .apply_lifecycle(now + DAY * 6)
                .unwrap()
                .aborted_uploads,
            0
        );
        assert_eq!(
            bucket
                .apply_lifecycle(now + DAY * 8)
                .unwrap()
                .aborted_uploads,
            1
        );

        bucket.create_multipart_upload("a", &options).unwrap();
        bucket.set_lifecycle(Vec::new()).unwrap();
        assert_eq!(bucket.lifecycle().unwrap(), Vec::new());
        assert_eq!(
            bucket
                .apply_lifecycle(now + DAY * 8)
                .unwrap()
                .aborted_uploads,
            0
        );

        // A bucket created again under the name starts over.
        bucket
            .resume_multipart_upload("a", &bucket.list_multipart_uploads().unwrap()[0].1)
            .abort()
            .unwrap();
        store.r2().delete_bucket("bkt").unwrap();
        store.r2().create_bucket("bkt").unwrap();
        let bucket = store.r2().bucket("bkt").unwrap();
        assert_eq!(
            bucket.lifecycle().unwrap(),
            vec![LifecycleRule::r2_default()]
        );
    }

    #[test]
    fn invalid_configurations_are_refused() {
        let with = |f: fn(&mut LifecycleRule)| {
            let mut r = LifecycleRule {
                expiration: Some(LifecycleAge::Days(1)),
                ..rule("r", "")
            };
            f(&mut r);
            validate_lifecycle(&mut [r])
        };
        assert!(with(|_| {}).is_ok());
        let refused: [fn(&mut LifecycleRule); 5] = [
            |r| r.id = "a".repeat(256),
            |r| r.expiration = Some(LifecycleAge::Days(0)),
            |r| r.expiration = Some(LifecycleAge::Date(1_577_836_800_001)),
            |r| r.expiration = None,
            |r| {
                r.transitions.push(StorageClassTransition {
                    after: LifecycleAge::Days(1),
                    storage_class: "GLACIER".into(),
                })
            },
        ];
        for f in refused {
            let e = with(f).unwrap_err();
            assert_eq!(e.kind, R2ErrorKind::InvalidArgument, "{e}");
        }
        let twice = rule("same", "");
        let e = validate_lifecycle(&mut [
            LifecycleRule {
                abort_multipart_days: Some(1),
                ..twice.clone()
            },
            LifecycleRule {
                abort_multipart_days: Some(2),
                ..twice
            },
        ])
        .unwrap_err();
        assert!(e.message.contains("unique"), "{e}");
    }
}
