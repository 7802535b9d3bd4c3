//! What makes a card read count: proof that the patient or the card is present. A common ID is
//! a serial number with a check digit, so anyone can enumerate IDs; reading one by hand must
//! not open a record.
//!
//! - The QR code carries the card's **secret**: a MAC under the deployment's key over the common
//!   ID and the card's number. A re-issued card has a new number, so the old card's secret stops
//!   working with it; a revoked card has no active number to match.
//! - A card typed by hand comes with its printed **verification code** (another MAC, six
//!   digits), or the patient's name and birth date matching the person, as the operator
//!   configures ([`ManualCardCheck`]).
//! - Reads are counted per user and per facility; a burst is refused and alerts the operator.
//! - A facility's first read of a patient is notified to the hospitals disclosing that
//!   patient's records.
//!
//! Cards printed before secrets keep working by hand (name and birth date, or a reprint).

use renkei_identity::{CardPayload, normalize_name};
use renkei_store::identity::{Card, Person};

use crate::{Actor, App, AppError, ManualCardCheck, Result};

/// What a clerk typed beside a hand-typed ID.
#[derive(Clone, Debug, Default)]
pub struct CardProof {
    /// The verification code printed on the card.
    pub code: String,
    /// The patient's name (kanji or kana) as the patient says it.
    pub name: String,
    /// `YYYY-MM-DD` (or `YYYYMMDD`).
    pub birth_date: String,
}

/// The window card reads are counted in.
const READ_WINDOW_SECONDS: i64 = 10 * 60;

/// RFC 4648 Base32 without padding (upper case), for secrets a QR code carries.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Equal in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Digits as typed (full-width accepted), nothing else.
fn digits(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '0'..='9' => Some(c),
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32),
            _ => None,
        })
        .collect()
}

impl App {
    /// The secret a card's QR code carries (16 Base32 characters, 80 bits).
    pub(crate) fn card_secret(&self, common_id: &str, card_id: i64) -> String {
        let mac = self
            .store
            .keyed_mac("renkei-card-secret-v1", &[common_id, &card_id.to_string()]);
        base32(mac.get(..10).unwrap_or_default())
    }

    /// The verification code printed on a card (six digits), for typing it by hand.
    pub(crate) fn card_code(&self, common_id: &str, card_id: i64) -> String {
        let mac = self
            .store
            .keyed_mac("renkei-card-code-v1", &[common_id, &card_id.to_string()]);
        let n = mac
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0);
        format!("{:06}", n % 1_000_000)
    }

    /// Whether the read proves the card (its secret) or the patient (the printed code, or the
    /// name and birth date) is present.
    pub(crate) fn card_present(
        &self,
        payload: &CardPayload,
        person: &Person,
        active: &[&Card],
        proof: &CardProof,
    ) -> bool {
        let id = &person.common_id;
        if !payload.secret.is_empty() {
            return active
                .iter()
                .any(|c| same(&self.card_secret(id, c.id), &payload.secret));
        }
        let check = self.config.manual_card_check;
        let code = digits(&proof.code);
        let by_code = matches!(check, ManualCardCheck::Code | ManualCardCheck::Either)
            && !code.is_empty()
            && active
                .iter()
                .any(|c| same(&self.card_code(id, c.id), &code));
        let by_person = matches!(
            check,
            ManualCardCheck::NameAndBirthDate | ManualCardCheck::Either
        ) && name_and_birth_match(person, proof);
        by_code || by_person
    }

    /// Counts a read for the user and the facility; refuses beyond the limits and alerts the
    /// operator the first time in a window.
    pub(crate) async fn count_card_read(&self, actor: &Actor, facility_id: i64) -> Result<()> {
        let now = self.now().0;
        let window = READ_WINDOW_SECONDS * 1_000_000;
        let user = self
            .card_reads
            .add(&format!("user:{}", actor.login_id), now, window);
        let facility = self
            .card_reads
            .add(&format!("facility:{facility_id}"), now, window);
        let over_user = user > self.config.card_reads_per_user;
        let over_facility = facility > self.config.card_reads_per_facility;
        if !over_user && !over_facility {
            return Ok(());
        }
        let first_over = (over_user && user == self.config.card_reads_per_user + 1)
            || (over_facility && facility == self.config.card_reads_per_facility + 1);
        if first_over {
            let name = self.store.facility(facility_id).await?.name;
            let message = format!(
                "HMカード読み取りの集中: {name}の{}が10分間に{}回読み取りました（施設全体で{}回）。以降の読み取りは一時的に止めています",
                actor.login_id, user, facility
            );
            let operators = self.operator_facilities().await?;
            let notify: Vec<(i64, String)> = operators
                .into_iter()
                .map(|f| (f, message.clone()))
                .collect();
            self.store
                .add_notifications("card_read_burst", None, now, &notify)
                .await?;
        }
        self.append_audit(self.event(
            actor,
            "identity.card.read",
            format!("facility:{facility_id}"),
            renkei_core::audit::AuditOutcome::Denied,
            "rate_limited",
        ))
        .await?;
        Err(AppError::Invalid(
            "短時間に多くのカードが読み取られたため、しばらく読み取りできません。続く場合は事務局に連絡してください".into(),
        ))
    }

    /// The operator's facilities (who get alerts).
    pub(crate) async fn operator_facilities(&self) -> Result<Vec<i64>> {
        let (operators, _) = self
            .store
            .search_facilities(&renkei_store::FacilityQuery {
                facility_type: Some("operator".into()),
                active_only: true,
                limit: 100,
                ..renkei_store::FacilityQuery::default()
            })
            .await?;
        Ok(operators.into_iter().map(|f| f.id).collect())
    }

    /// Tells the hospitals disclosing `person`'s records that a facility new to the patient
    /// read the card.
    pub(crate) async fn notify_first_read(&self, person: &Person, facility_id: i64) -> Result<()> {
        let reader = self.store.facility(facility_id).await?.name;
        let message = format!(
            "新しい施設が連携を開始しました: {reader}が地域共通ID {} の方のカードを初めて読み取りました",
            person.common_id
        );
        let mut notify: Vec<(i64, String)> = Vec::new();
        for link in self.store.links_of(person.id).await? {
            if link.active
                && link.facility_id != facility_id
                && !notify.iter().any(|(f, _)| *f == link.facility_id)
                && self.store.facility(link.facility_id).await?.discloses
            {
                notify.push((link.facility_id, message.clone()));
            }
        }
        self.store
            .add_notifications("first_read", Some(person.id), self.now().0, &notify)
            .await?;
        Ok(())
    }
}

/// The name (kanji or kana, compared normalised) and the birth date both match the person.
fn name_and_birth_match(person: &Person, proof: &CardProof) -> bool {
    let typed_birth = digits(&proof.birth_date);
    let birth = person.birth_date.as_deref().map(digits).unwrap_or_default();
    let name = normalize_name(&proof.name);
    !name.is_empty()
        && typed_birth.len() == 8
        && same(&typed_birth, &birth)
        && (name == normalize_name(&person.kanji_name) || name == normalize_name(&person.kana_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_is_rfc_4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b""), "");
        assert_eq!(base32(&[0xff; 10]).len(), 16);
    }

    #[test]
    fn digits_as_typed() {
        assert_eq!(digits("１９５０-０１-０２"), "19500102");
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("ab", "abc"));
    }
}
