//! The regional common ID (地域共通ID).
//!
//! Format: 11 digits, `PP SSSSSSSS C` — the prefecture code (01–47, Hiroshima 34), an 8-digit
//! serial issued in order and never reused, and a Damm check digit over the first ten digits.
//! Damm's quasigroup detects every single-digit error and every swap of two adjacent digits
//! (Luhn, used by the medical-institution code, misses 09↔90). Printed as `34-0123-4567-8`; read
//! with or without hyphens, spaces and full-width digits.
//!
//! The card's QR code carries more than the ID: `RENKEI1:<common ID>:<reserved>`, where the
//! reserved field stays empty until the national medical ID (全国医療情報プラットフォーム) can be
//! recorded beside the regional one.

use std::fmt;

/// The Damm operation table (a totally anti-symmetric quasigroup of order 10).
const DAMM: [[u8; 10]; 10] = [
    [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
    [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
    [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
    [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
    [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
    [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
    [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
    [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
    [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
    [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
];

fn damm(digits: &[u8]) -> u8 {
    digits.iter().fold(0u8, |interim, d| {
        DAMM[usize::from(interim)][usize::from(*d % 10)]
    })
}

/// Why a text is not a common ID. Messages are shown to the clerk at the card reader.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommonIdError {
    #[error("地域共通IDは11桁の数字です（{0}桁が読み取られました）")]
    WrongLength(usize),
    #[error("地域共通IDに数字以外の文字があります")]
    NotDigits,
    #[error("都道府県番号 {0:02} は 01〜47 ではありません")]
    BadPrefecture(u8),
    #[error("検査用数字が一致しません。読み取りまたは入力の誤りです。もう一度読み取ってください")]
    CheckDigit,
    #[error("QRコードの内容が地域共通IDの形式ではありません")]
    NotAPayload,
}

/// A valid common ID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommonId([u8; 11]);

impl CommonId {
    /// The ID with this prefecture and serial (`serial` < 100,000,000).
    pub fn issue(prefecture: u8, serial: u32) -> Result<CommonId, CommonIdError> {
        if !(1..=47).contains(&prefecture) {
            return Err(CommonIdError::BadPrefecture(prefecture));
        }
        if serial >= 100_000_000 {
            return Err(CommonIdError::WrongLength(12));
        }
        let mut d = [0u8; 11];
        d[0] = prefecture / 10;
        d[1] = prefecture % 10;
        let mut s = serial;
        for i in (2..10).rev() {
            d[i] = (s % 10) as u8;
            s /= 10;
        }
        d[10] = damm(&d[..10]);
        Ok(CommonId(d))
    }

    /// Reads an ID as typed or scanned: hyphens, spaces and full-width digits are accepted.
    pub fn parse(text: &str) -> Result<CommonId, CommonIdError> {
        let mut digits = Vec::with_capacity(11);
        for ch in text.trim().chars() {
            match ch {
                '0'..='9' => digits.push(ch as u8 - b'0'),
                '０'..='９' => digits.push((ch as u32 - '０' as u32) as u8),
                '-' | '－' | '‐' | ' ' | '　' => {}
                _ => return Err(CommonIdError::NotDigits),
            }
        }
        let d: [u8; 11] = digits
            .as_slice()
            .try_into()
            .map_err(|_| CommonIdError::WrongLength(digits.len()))?;
        let prefecture = d[0] * 10 + d[1];
        if !(1..=47).contains(&prefecture) {
            return Err(CommonIdError::BadPrefecture(prefecture));
        }
        if damm(&d) != 0 {
            return Err(CommonIdError::CheckDigit);
        }
        Ok(CommonId(d))
    }

    pub fn prefecture(&self) -> u8 {
        self.0[0] * 10 + self.0[1]
    }

    pub fn serial(&self) -> u32 {
        self.0[2..10]
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(*d))
    }

    /// `34012345678`.
    pub fn digits(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }

    /// `34-0123-4567-8`, as printed on the card.
    pub fn printed(&self) -> String {
        let s = self.digits();
        format!("{}-{}-{}-{}", &s[..2], &s[2..6], &s[6..10], &s[10..])
    }
}

impl fmt::Display for CommonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.digits())
    }
}

impl fmt::Debug for CommonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommonId({})", self.digits())
    }
}

/// What the card's QR code holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardPayload {
    pub id: CommonId,
    /// Reserved for the national medical ID; empty until it exists.
    pub reserved: String,
    /// The card's secret: issued by the network per card (a MAC under the network's key over
    /// the common ID and the card), so that a read proves the card is present. Empty for a
    /// bare ID typed by hand and for cards printed before secrets.
    pub secret: String,
}

/// A field of the payload: ASCII letters, digits and `-`, at most 64.
fn field_ok(text: &str) -> bool {
    text.len() <= 64 && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

impl CardPayload {
    pub const PREFIX: &'static str = "RENKEI1";

    /// `RENKEI1:<common ID>:<reserved>:<secret>` (without the last field when there is no
    /// secret, as cards printed before secrets carry).
    pub fn encode(&self) -> String {
        let mut out = format!("{}:{}:{}", Self::PREFIX, self.id.digits(), self.reserved);
        if !self.secret.is_empty() {
            out.push(':');
            out.push_str(&self.secret);
        }
        out
    }

    /// Reads a scanned QR payload, or a bare ID typed by hand (then the other fields are
    /// empty).
    pub fn parse(text: &str) -> Result<CardPayload, CommonIdError> {
        let text = text.trim();
        match text.split_once(':') {
            Some((Self::PREFIX, rest)) => {
                let mut fields = rest.split(':');
                let id = fields.next().ok_or(CommonIdError::NotAPayload)?;
                let reserved = fields.next().ok_or(CommonIdError::NotAPayload)?;
                let secret = fields.next().unwrap_or_default();
                if fields.next().is_some() || !field_ok(reserved) || !field_ok(secret) {
                    return Err(CommonIdError::NotAPayload);
                }
                Ok(CardPayload {
                    id: CommonId::parse(id)?,
                    reserved: reserved.to_string(),
                    secret: secret.to_ascii_uppercase(),
                })
            }
            Some(_) => Err(CommonIdError::NotAPayload),
            None => Ok(CardPayload {
                id: CommonId::parse(text)?,
                reserved: String::new(),
                secret: String::new(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_and_reads_ids() {
        let id = CommonId::issue(34, 1_234_567).unwrap();
        assert_eq!(id.digits().len(), 11);
        assert!(id.digits().starts_with("3401234567"));
        assert_eq!(CommonId::parse(&id.printed()).unwrap(), id);
        let wide: String = id
            .digits()
            .chars()
            .map(|c| char::from_u32(c as u32 - '0' as u32 + '０' as u32).unwrap())
            .collect();
        assert_eq!(CommonId::parse(&wide).unwrap(), id);
        assert_eq!(id.prefecture(), 34);
        assert_eq!(id.serial(), 1_234_567);
        assert_eq!(
            CommonId::parse("3401234567"),
            Err(CommonIdError::WrongLength(10))
        );
        assert_eq!(
            CommonId::parse("34O12345678"),
            Err(CommonIdError::NotDigits)
        );
        assert_eq!(
            CommonId::issue(48, 1),
            Err(CommonIdError::BadPrefecture(48))
        );
    }

    /// Every single-digit error and every adjacent swap is caught, for many IDs.
    #[test]
    fn the_check_digit_catches_every_typo_and_adjacent_swap() {
        let mut checked = 0u32;
        for serial in (0..100_000_000u32).step_by(999_983) {
            for pref in [1u8, 13, 34, 47] {
                let id = CommonId::issue(pref, serial).unwrap();
                let good = id.digits().into_bytes();
                for pos in 0..11 {
                    for wrong in b'0'..=b'9' {
                        if wrong == good[pos] {
                            continue;
                        }
                        let mut typo = good.clone();
                        typo[pos] = wrong;
                        let text = String::from_utf8(typo).unwrap();
                        assert!(
                            CommonId::parse(&text).is_err(),
                            "single error not caught: {text}"
                        );
                        checked += 1;
                    }
                    if pos < 10 && good[pos] != good[pos + 1] {
                        let mut swap = good.clone();
                        swap.swap(pos, pos + 1);
                        let text = String::from_utf8(swap).unwrap();
                        assert!(
                            CommonId::parse(&text).is_err(),
                            "adjacent swap not caught: {text}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 30_000);
    }

    #[test]
    fn card_payloads() {
        let id = CommonId::issue(34, 42).unwrap();
        let p = CardPayload {
            id,
            reserved: String::new(),
            secret: String::new(),
        };
        assert_eq!(p.encode(), format!("RENKEI1:{}:", id.digits()));
        assert_eq!(CardPayload::parse(&p.encode()).unwrap(), p);
        assert_eq!(
            CardPayload::parse(&id.printed()).unwrap(),
            p,
            "a bare ID typed by hand"
        );
        assert_eq!(
            CardPayload::parse("OTHER:1:2"),
            Err(CommonIdError::NotAPayload)
        );
        assert!(CardPayload::parse("RENKEI1:34000000420").is_err());
        // With the card's secret (read in any case, as some readers send lower case).
        let with = CardPayload {
            secret: "ABCDEFGHJKLMNPQR".into(),
            ..p.clone()
        };
        assert_eq!(
            with.encode(),
            format!("RENKEI1:{}::ABCDEFGHJKLMNPQR", id.digits())
        );
        let lower = with
            .encode()
            .replace("ABCDEFGHJKLMNPQR", "abcdefghjklmnpqr");
        assert_eq!(CardPayload::parse(&lower).unwrap(), with);
        assert!(CardPayload::parse(&format!("{}:extra", with.encode())).is_err());
        assert!(CardPayload::parse(&format!("RENKEI1:{}::a b", id.digits())).is_err());
    }
}
