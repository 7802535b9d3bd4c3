//! The audit trail as values: events, their place in a keyed hash chain, and verification.
//!
//! Each stored event carries `prev_hash` (the hash of the event before it) and its own `hash`,
//! an HMAC-SHA-256 under the deployment's audit key over a canonical encoding of the sequence
//! number, the previous hash and every field. The key lives outside the database (a file in the
//! data directory or a configured path), so someone who can write the database but not read the
//! key cannot forge a consistent chain. A separate head record (last sequence number and hash)
//! catches the removal of events from the end; it is sealed with its own MAC under the key, so
//! that someone who deletes the newest events cannot point it at an older one. Because that
//! person could still put back a head row they saw earlier, the head is also anchored outside
//! the database: [`Anchor`] lines, each sealed under the key, appended to a file beside the
//! key. Verification compares the chain with the latest anchor.
//!
//! No patient data goes into `detail`: targets are identifiers, never names.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::time::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Success,
    Failure,
    Denied,
}

impl AuditOutcome {
    pub fn key(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Failure => "failure",
            AuditOutcome::Denied => "denied",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            AuditOutcome::Success => "成功",
            AuditOutcome::Failure => "失敗",
            AuditOutcome::Denied => "拒否",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        match key {
            "success" => Some(AuditOutcome::Success),
            "failure" => Some(AuditOutcome::Failure),
            "denied" => Some(AuditOutcome::Denied),
            _ => None,
        }
    }
}

/// One thing that happened: who (user, facility, profession), did what (action) to what
/// (target), with what outcome, when, from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: Timestamp,
    pub user_id: Option<i64>,
    /// The login ID as typed or known; kept even when the user does not exist (failed logins).
    pub login_id: String,
    pub facility_id: Option<i64>,
    pub profession: Option<String>,
    /// A stable dotted key such as `auth.login` or `directory.facility.create`.
    pub action: String,
    /// What the action was about, as `kind:id` (never a name or other patient data).
    pub target: String,
    pub outcome: AuditOutcome,
    /// Short machine-readable detail (a reason code, changed field names). Never patient data.
    pub detail: String,
    /// Client address as seen by the server.
    pub client: String,
    /// True when the actor is an emergency account (非常時用アカウント).
    pub emergency: bool,
}

impl AuditEvent {
    /// Whether the event records a routine read: an action ending in `.read`, not by an
    /// emergency account. On a SQLite file such an event is put in a crash-safe spool before
    /// the read is answered and goes into the chain with the next group commit; every other
    /// event (a change, an emergency account's read) is in the chain before the answer.
    pub fn is_routine_read(&self) -> bool {
        self.action.ends_with(".read") && !self.emergency
    }
}

/// An event with its place in the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainedAuditEvent {
    pub seq: i64,
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash the chain starts from.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The deployment's audit key (at least 32 bytes). Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct AuditKey(Vec<u8>);

impl AuditKey {
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < 32 {
            return Err(format!(
                "監査鍵が短すぎます（{} バイト、32 バイト以上が必要）",
                bytes.len()
            ));
        }
        Ok(AuditKey(bytes))
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

fn put(mac: &mut Hmac<Sha256>, field: &[u8]) {
    mac.update(&(field.len() as u64).to_be_bytes());
    mac.update(field);
}

/// The hash of `event` at position `seq` following `prev_hash`.
pub fn chain_hash(key: &AuditKey, seq: i64, prev_hash: &str, event: &AuditEvent) -> String {
    // HMAC accepts keys of any length, so this cannot fail; fall back to an empty MAC anyway.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key.0) else {
        return String::new();
    };
    put(&mut mac, b"renkei-audit-v1");
    put(&mut mac, &seq.to_be_bytes());
    put(&mut mac, prev_hash.as_bytes());
    put(&mut mac, &event.at.0.to_be_bytes());
    put(
        &mut mac,
        event
            .user_id
            .map(|v| v.to_string())
            .unwrap_or_default()
            .as_bytes(),
    );
    put(&mut mac, event.login_id.as_bytes());
    put(
        &mut mac,
        event
            .facility_id
            .map(|v| v.to_string())
            .unwrap_or_default()
            .as_bytes(),
    );
    put(
        &mut mac,
        event.profession.as_deref().unwrap_or("").as_bytes(),
    );
    put(&mut mac, event.action.as_bytes());
    put(&mut mac, event.target.as_bytes());
    put(&mut mac, event.outcome.key().as_bytes());
    put(&mut mac, event.detail.as_bytes());
    put(&mut mac, event.client.as_bytes());
    put(&mut mac, &[u8::from(event.emergency)]);
    hex::encode(mac.finalize().into_bytes())
}

/// A MAC under the key for another purpose than the chain (a card's secret, its verification
/// code): `purpose` separates the uses, so one key file serves them all.
pub fn keyed_mac(key: &AuditKey, purpose: &str, parts: &[&str]) -> Vec<u8> {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key.0) else {
        return Vec::new();
    };
    put(&mut mac, purpose.as_bytes());
    for p in parts {
        put(&mut mac, p.as_bytes());
    }
    mac.finalize().into_bytes().to_vec()
}

/// The seal of the head record (`seq`, `hash`) under the key.
pub fn head_mac(key: &AuditKey, seq: i64, hash: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key.0) else {
        return String::new();
    };
    put(&mut mac, b"renkei-audit-head-v1");
    put(&mut mac, &seq.to_be_bytes());
    put(&mut mac, hash.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A point the chain is known to have reached, kept outside the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub seq: i64,
    pub hash: String,
    /// When it was written.
    pub at: Timestamp,
}

fn anchor_mac(key: &AuditKey, a: &Anchor) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key.0) else {
        return String::new();
    };
    put(&mut mac, b"renkei-audit-anchor-v1");
    put(&mut mac, &a.seq.to_be_bytes());
    put(&mut mac, a.hash.as_bytes());
    put(&mut mac, &a.at.0.to_be_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// One line of the anchor file: `seq hash at mac`, newline-terminated.
pub fn anchor_line(key: &AuditKey, a: &Anchor) -> String {
    format!("{} {} {} {}\n", a.seq, a.hash, a.at.0, anchor_mac(key, a))
}

/// The latest anchor of an anchor file's text, after checking every line's seal and that the
/// sequence numbers never go back; the error names the first bad line. A torn last line (no
/// newline: the writer stopped mid-line) is left out.
pub fn latest_anchor(key: &AuditKey, text: &str) -> Result<Option<Anchor>, String> {
    let mut latest: Option<Anchor> = None;
    let complete = match text.rfind('\n') {
        Some(end) => text.get(..end).unwrap_or_default(),
        None => "",
    };
    for (i, line) in complete.lines().enumerate() {
        let Some((anchor, mac)) = parse_anchor(line) else {
            return Err(format!("anchor line {} is not an anchor", i + 1));
        };
        if anchor_mac(key, &anchor) != mac {
            return Err(format!("anchor line {} is not sealed by this key", i + 1));
        }
        if latest.as_ref().is_some_and(|l| anchor.seq < l.seq) {
            return Err(format!("anchor line {} goes back in the chain", i + 1));
        }
        latest = Some(anchor);
    }
    Ok(latest)
}

fn parse_anchor(line: &str) -> Option<(Anchor, &str)> {
    let fields: Vec<&str> = line.split(' ').collect();
    let [seq, hash, at, mac] = fields.as_slice() else {
        return None;
    };
    let anchor = Anchor {
        seq: seq.parse().ok()?,
        hash: hash.to_string(),
        at: Timestamp(at.parse().ok()?),
    };
    Some((anchor, mac))
}

/// Links `event` after the event with `prev_seq` / `prev_hash`.
pub fn link(
    key: &AuditKey,
    prev_seq: i64,
    prev_hash: &str,
    event: AuditEvent,
) -> ChainedAuditEvent {
    let seq = prev_seq + 1;
    let hash = chain_hash(key, seq, prev_hash, &event);
    ChainedAuditEvent {
        seq,
        event,
        prev_hash: prev_hash.to_string(),
        hash,
    }
}

/// One thing wrong with a stored chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainProblem {
    /// The event's contents do not match its hash: it was modified (or forged without the key).
    Modified { seq: i64 },
    /// Sequence numbers jump: events between were deleted.
    Missing { after: i64, next: i64 },
    /// The event does not follow the one before it: something was inserted or removed here.
    BrokenLink { seq: i64 },
    /// The chain does not end where the head record says: events were removed from or added to
    /// the end.
    HeadMismatch { head_seq: i64, last_seq: i64 },
    /// The head record's seal does not match: it was rewritten without the key.
    HeadForged,
    /// The chain ends before the latest anchor: events were removed from the end.
    Truncated { anchored_seq: i64, last_seq: i64 },
    /// The event at an anchored position is not the one anchored: the chain was replaced.
    AnchorMismatch { seq: i64 },
    /// No event at all, although the database holds a region: the trail was emptied.
    EmptyChain,
}

impl std::fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainProblem::Modified { seq } => {
                write!(f, "event {seq}: contents do not match its hash (modified)")
            }
            ChainProblem::Missing { after, next } => {
                write!(
                    f,
                    "events {}..{} are missing (deleted)",
                    after + 1,
                    next - 1
                )
            }
            ChainProblem::BrokenLink { seq } => {
                write!(
                    f,
                    "event {seq}: does not follow the previous event (inserted or reordered)"
                )
            }
            ChainProblem::HeadMismatch { head_seq, last_seq } => write!(
                f,
                "the chain ends at event {last_seq} but the head record says {head_seq} (events removed or added at the end)"
            ),
            ChainProblem::HeadForged => write!(
                f,
                "the head record is not sealed by the audit key (rewritten without the key)"
            ),
            ChainProblem::Truncated {
                anchored_seq,
                last_seq,
            } => write!(
                f,
                "the chain ends at event {last_seq} but the anchor beside the key says it reached {anchored_seq} (events removed from the end)"
            ),
            ChainProblem::AnchorMismatch { seq } => write!(
                f,
                "event {seq}: not the event the anchor beside the key recorded (the chain was replaced)"
            ),
            ChainProblem::EmptyChain => write!(
                f,
                "the audit trail is empty although the database holds a region (the trail was emptied)"
            ),
        }
    }
}

/// Checks a chain read in sequence order, one event at a time, in constant memory.
#[derive(Debug)]
pub struct ChainVerifier {
    key: AuditKey,
    last_seq: i64,
    last_hash: String,
    checked: u64,
    problems: Vec<ChainProblem>,
    anchor: Option<Anchor>,
    expect_events: bool,
}

impl ChainVerifier {
    pub fn new(key: AuditKey) -> Self {
        ChainVerifier {
            key,
            last_seq: 0,
            last_hash: GENESIS_HASH.to_string(),
            checked: 0,
            problems: Vec::new(),
            anchor: None,
            expect_events: false,
        }
    }

    /// Also checks the chain against the latest anchor kept outside the database.
    pub fn with_anchor(mut self, anchor: Option<Anchor>) -> Self {
        self.anchor = anchor;
        self
    }

    /// An empty chain is a problem: the database holds a region, whose creation was audited.
    pub fn expect_events(mut self, expect: bool) -> Self {
        self.expect_events = expect;
        self
    }

    /// Checks the head record's seal (`mac` as stored beside `seq` and `hash`).
    pub fn check_head_seal(&mut self, seq: i64, hash: &str, mac: &str) {
        if head_mac(&self.key, seq, hash) != mac {
            self.problems.push(ChainProblem::HeadForged);
        }
    }

    pub fn push(&mut self, row: &ChainedAuditEvent) {
        self.checked += 1;
        if chain_hash(&self.key, row.seq, &row.prev_hash, &row.event) != row.hash {
            self.problems.push(ChainProblem::Modified { seq: row.seq });
        }
        if row.seq != self.last_seq + 1 {
            self.problems.push(ChainProblem::Missing {
                after: self.last_seq,
                next: row.seq,
            });
        } else if row.prev_hash != self.last_hash {
            self.problems
                .push(ChainProblem::BrokenLink { seq: row.seq });
        }
        if let Some(a) = &self.anchor
            && a.seq == row.seq
            && a.hash != row.hash
        {
            self.problems
                .push(ChainProblem::AnchorMismatch { seq: row.seq });
        }
        self.last_seq = row.seq;
        self.last_hash = row.hash.clone();
    }

    /// Ends verification against the head record (`None` when no event was ever written).
    pub fn finish(mut self, head: Option<(i64, String)>) -> ChainReport {
        let (head_seq, head_hash) = head.unwrap_or((0, GENESIS_HASH.to_string()));
        if head_seq != self.last_seq || head_hash != self.last_hash {
            self.problems.push(ChainProblem::HeadMismatch {
                head_seq,
                last_seq: self.last_seq,
            });
        }
        if let Some(a) = &self.anchor
            && a.seq > self.last_seq
        {
            self.problems.push(ChainProblem::Truncated {
                anchored_seq: a.seq,
                last_seq: self.last_seq,
            });
        }
        if self.expect_events && self.checked == 0 {
            self.problems.push(ChainProblem::EmptyChain);
        }
        ChainReport {
            checked: self.checked,
            problems: self.problems,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainReport {
    pub checked: u64,
    pub problems: Vec<ChainProblem>,
}

impl ChainReport {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AuditKey {
        AuditKey::new(vec![7u8; 32]).unwrap()
    }

    fn event(n: i64) -> AuditEvent {
        AuditEvent {
            at: Timestamp(n),
            user_id: Some(n),
            login_id: format!("user{n}"),
            facility_id: Some(1),
            profession: Some("doctor".into()),
            action: "auth.login".into(),
            target: format!("user:{n}"),
            outcome: AuditOutcome::Success,
            detail: String::new(),
            client: "127.0.0.1".into(),
            emergency: false,
        }
    }

    fn chain(n: i64) -> Vec<ChainedAuditEvent> {
        let mut out: Vec<ChainedAuditEvent> = Vec::new();
        for i in 1..=n {
            let (seq, hash) = out
                .last()
                .map(|e| (e.seq, e.hash.clone()))
                .unwrap_or((0, GENESIS_HASH.into()));
            out.push(link(&key(), seq, &hash, event(i)));
        }
        out
    }

    fn verify(rows: &[ChainedAuditEvent], head: Option<(i64, String)>) -> ChainReport {
        let mut v = ChainVerifier::new(key());
        rows.iter().for_each(|r| v.push(r));
        v.finish(head)
    }

    fn head(rows: &[ChainedAuditEvent]) -> Option<(i64, String)> {
        rows.last().map(|r| (r.seq, r.hash.clone()))
    }

    #[test]
    fn intact_chain_verifies() {
        let rows = chain(5);
        assert!(verify(&rows, head(&rows)).is_intact());
        assert!(verify(&[], None).is_intact());
    }

    #[test]
    fn detects_modification_deletion_insertion_and_truncation() {
        let rows = chain(5);
        let h = head(&rows);

        let mut modified = rows.clone();
        modified[2].event.outcome = AuditOutcome::Failure;
        assert_eq!(
            verify(&modified, h.clone()).problems,
            vec![ChainProblem::Modified { seq: 3 }]
        );

        let mut deleted = rows.clone();
        deleted.remove(2);
        assert_eq!(
            verify(&deleted, h.clone()).problems,
            vec![ChainProblem::Missing { after: 2, next: 4 }]
        );

        // An inserted event forged without the key, renumbering what follows.
        let mut inserted = rows.clone();
        let forged = ChainedAuditEvent {
            seq: 3,
            event: event(99),
            prev_hash: rows[1].hash.clone(),
            hash: "f".repeat(64),
        };
        inserted.insert(2, forged);
        for (i, r) in inserted.iter_mut().enumerate().skip(3) {
            r.seq = i as i64 + 1;
        }
        let report = verify(&inserted, h.clone());
        assert!(report.problems.contains(&ChainProblem::Modified { seq: 3 }));
        assert!(!report.is_intact());

        let truncated = &rows[..4];
        assert_eq!(
            verify(truncated, h).problems,
            vec![ChainProblem::HeadMismatch {
                head_seq: 5,
                last_seq: 4
            }]
        );
    }

    #[test]
    fn anchors_catch_a_chain_cut_short_and_a_replaced_head() {
        let rows = chain(5);
        let k = key();
        let anchor = |n: usize| Anchor {
            seq: rows[n - 1].seq,
            hash: rows[n - 1].hash.clone(),
            at: Timestamp(n as i64),
        };
        let file = format!(
            "{}{}",
            anchor_line(&k, &anchor(3)),
            anchor_line(&k, &anchor(5))
        );
        let latest = latest_anchor(&k, &file).unwrap().unwrap();
        assert_eq!(latest.seq, 5);
        // Cut to event 3, the head pointed at event 3 (as the attacker can): the anchor says 5.
        let mut v = ChainVerifier::new(k.clone()).with_anchor(Some(latest.clone()));
        for r in &rows[..3] {
            v.push(r);
        }
        let cut = v.finish(Some((3, rows[2].hash.clone())));
        assert_eq!(
            cut.problems,
            vec![ChainProblem::Truncated {
                anchored_seq: 5,
                last_seq: 3
            }]
        );
        // The whole chain passes; a head row resealed without the key does not.
        let mut v = ChainVerifier::new(k.clone()).with_anchor(Some(latest.clone()));
        rows.iter().for_each(|r| v.push(r));
        v.check_head_seal(5, &rows[4].hash, &head_mac(&k, 5, &rows[4].hash));
        assert!(v.finish(Some((5, rows[4].hash.clone()))).is_intact());
        let mut v = ChainVerifier::new(k.clone());
        rows.iter().for_each(|r| v.push(r));
        v.check_head_seal(5, &rows[4].hash, &"0".repeat(64));
        assert!(
            v.finish(Some((5, rows[4].hash.clone())))
                .problems
                .contains(&ChainProblem::HeadForged)
        );
        // An emptied trail, head reset to the genesis.
        let empty = ChainVerifier::new(k.clone())
            .with_anchor(Some(latest))
            .expect_events(true)
            .finish(None);
        assert!(empty.problems.contains(&ChainProblem::EmptyChain));
        assert!(empty.problems.contains(&ChainProblem::Truncated {
            anchored_seq: 5,
            last_seq: 0
        }));
    }

    #[test]
    fn an_anchor_file_is_checked_line_by_line() {
        let rows = chain(3);
        let k = key();
        let a = |n: usize| Anchor {
            seq: rows[n - 1].seq,
            hash: rows[n - 1].hash.clone(),
            at: Timestamp(1),
        };
        // A torn last line is left out.
        let torn = format!("{}2 abc", anchor_line(&k, &a(1)));
        assert_eq!(latest_anchor(&k, &torn).unwrap().unwrap().seq, 1);
        assert_eq!(latest_anchor(&k, "").unwrap(), None);
        // A line sealed with another key, edited, or going back is refused.
        let other = AuditKey::new(vec![8u8; 32]).unwrap();
        assert!(latest_anchor(&k, &anchor_line(&other, &a(2))).is_err());
        let edited = anchor_line(&k, &a(2)).replacen('2', "9", 1);
        assert!(latest_anchor(&k, &edited).unwrap_err().contains("line 1"));
        let back = format!("{}{}", anchor_line(&k, &a(3)), anchor_line(&k, &a(1)));
        assert!(latest_anchor(&k, &back).unwrap_err().contains("goes back"));
        assert!(latest_anchor(&k, "junk\n").is_err());
    }
}

/// Every action the audit trail records, with the words the operator's screens use for it
/// (the search offers them as a list).
pub const ACTION_LABELS: &[(&str, &str)] = &[
    ("auth.login", "ログイン"),
    ("auth.logout", "ログアウト"),
    ("auth.password.change", "パスワード変更"),
    ("auth.password.reset", "パスワード再設定"),
    ("auth.recovery_codes.regenerate", "回復コードの再発行"),
    ("auth.totp.enrol", "二要素認証の登録"),
    ("auth.totp.reset", "二要素認証のリセット"),
    ("clinical.read", "診療情報の閲覧"),
    ("clinical.document.read", "文書・画像の閲覧"),
    ("clinical.list", "患者一覧の閲覧"),
    ("clinical.import", "診療情報の取り込み"),
    ("clinical.write", "診療情報の登録（FHIR）"),
    ("clinical.medication.import", "お薬手帳データの登録"),
    ("clinical.medication.split_expired", "分割QRコードの破棄"),
    ("clinical.patient.merge", "施設内の患者統合"),
    ("clinical.lab_code.map", "検査コードの対応付け"),
    ("consent.create", "同意の登録"),
    ("consent.withdraw", "同意の撤回"),
    ("consent.read", "同意の閲覧"),
    ("consent.pdf", "同意書の出力"),
    ("consent.scan.attach", "同意書スキャンの登録"),
    ("consent.scan.read", "同意書スキャンの閲覧"),
    ("consent.policy.update", "開示ルールの変更"),
    ("consent.rights.update", "職種別閲覧権限の変更"),
    ("consent.referral.record", "紹介の登録"),
    ("consent.opt_in", "開示の再開（オプトイン）"),
    ("consent.opt_out", "開示の停止（オプトアウト）"),
    ("consent.emergency.grant", "緊急時閲覧の開始"),
    ("consent.access_history", "閲覧履歴の確認"),
    ("consent.patient_list", "カードレス患者一覧"),
    ("consent.patient_list.hide", "患者一覧から非表示"),
    ("identity.card.issue", "カードの発行"),
    ("identity.card.reissue", "カードの再発行"),
    ("identity.card.revoke", "カードの失効"),
    ("identity.card.read", "カードの読み取り（名寄せ）"),
    ("identity.card.print", "カードの印刷"),
    ("identity.card.holding_check", "カード保持確認"),
    ("identity.person.create", "地域共通IDの登録"),
    ("identity.person.read", "地域共通IDの詳細"),
    ("identity.person.search", "地域共通IDの検索"),
    ("identity.person.merge", "地域共通IDの統合"),
    ("identity.person.unmerge", "地域共通IDの統合取消"),
    ("identity.mpi.suggest", "名寄せ候補の提示"),
    ("identity.link.confirm_suggested", "名寄せ候補の確定"),
    ("identity.link.review_opened", "名寄せ確認（不一致の検出）"),
    ("identity.link.review_resolved", "名寄せ確認の完了"),
    ("directory.facility.create", "施設の登録"),
    ("directory.facility.update", "施設の変更"),
    ("directory.user.create", "利用者の登録"),
    ("directory.user.update", "利用者の変更"),
    (
        "directory.institutions.import",
        "医療機関コードマスタの取り込み",
    ),
    ("notice.create", "お知らせの登録"),
    ("notice.update", "お知らせの変更"),
    ("notice.delete", "お知らせの削除"),
    ("audit.search", "監査ログの検索"),
    ("audit.read", "監査ログの閲覧"),
    ("audit.key", "監査鍵"),
    ("api.client.register", "APIクライアントの登録"),
    ("api.client.enable", "APIクライアントの有効化"),
    ("api.client.disable", "APIクライアントの停止"),
    ("api.token.issue", "アクセストークンの発行"),
    ("api.authorize", "アプリの許可"),
    ("fhir.pdqm.read", "患者情報の参照（PDQm）"),
    ("fhir.pdqm.search", "患者の検索（PDQm）"),
    ("fhir.pixm.query", "ID照会（PIXm）"),
    ("medication.app.register", "お薬手帳アプリの登録"),
    ("medication.app.subscribe", "お薬手帳アプリの連携"),
    ("medication.code.issue", "ワンタイムコードの発行"),
    ("medication.code.use", "ワンタイムコードの使用"),
    ("case.create", "ファイル開示相談の作成"),
    ("case.read", "ファイル開示相談の閲覧"),
    ("case.reply", "ファイル開示相談への返信"),
    ("case.reading", "読影"),
    ("case.file.upload", "相談ファイルのアップロード"),
    ("box.upload", "HM-Box アップロード"),
    ("box.share", "HM-Box 共有"),
    ("box.unshare", "HM-Box 共有解除"),
    ("box.delete", "HM-Box 削除"),
    ("box.expire", "HM-Box 期限切れ削除"),
    ("wopi.token", "オンライン編集の開始"),
    ("wopi.save", "オンライン編集の保存"),
];

/// An action in words; an action without a label shows as it is recorded.
pub fn action_label(action: &str) -> &str {
    ACTION_LABELS
        .iter()
        .find(|(k, _)| *k == action)
        .map_or(action, |(_, v)| v)
}

/// An event's detail in words: the machine keys the trail records (`permitted=3`,
/// `basis=emergency`, `no_relation`, …) said as a reader would.
pub fn detail_in_words(detail: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        ("withheld_facilities=", "表示しなかった施設 "),
        ("permitted=", "表示 "),
        ("denied=", "非表示 "),
        ("basis=emergency", "緊急時閲覧"),
        ("no_relation", "関係のない患者"),
        ("no_such_person", "存在しない患者"),
        ("profession_without_rights", "閲覧権限のない職種"),
        ("name_change_confirmed=", "氏名変更の確認 "),
        ("stored=", "新規 "),
        ("unchanged=", "変更なし "),
        ("errors=", "エラー "),
        ("view=", "画面 "),
        ("categories=", "区分 "),
        ("wrong_secret", "カードの照合に失敗"),
        ("no_proof", "カードの証明なし"),
        ("unknown_id", "未登録のID"),
        ("invalid_id", "IDの形式誤り"),
        ("totp_enrol", "二要素認証の登録後"),
        ("totp", "二要素認証"),
        ("password_wrong", "パスワード誤り"),
        ("locked", "ロック中"),
        ("recovery_code", "回復コード"),
    ];
    let mut out = detail.to_string();
    for (key, words) in WORDS {
        out = out.replace(key, words);
    }
    out
}

#[cfg(test)]
mod label_tests {
    use super::*;

    #[test]
    fn actions_and_details_read_in_japanese() {
        assert_eq!(action_label("clinical.read"), "診療情報の閲覧");
        assert_eq!(action_label("consent.emergency.grant"), "緊急時閲覧の開始");
        assert_eq!(action_label("x.unknown"), "x.unknown");
        let keys: Vec<&str> = ACTION_LABELS.iter().map(|(k, _)| *k).collect();
        let mut unique = keys.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(keys.len(), unique.len(), "each action once");
        assert_eq!(
            detail_in_words("view=all permitted=3 denied=1 withheld_facilities=0 basis=emergency"),
            "画面 all 表示 3 非表示 1 表示しなかった施設 0 緊急時閲覧"
        );
    }
}
