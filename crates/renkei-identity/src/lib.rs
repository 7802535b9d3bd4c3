//! Patient identity cores.
//!
//! Architecture invariant: no IO, no panics on input. Everything here is a value or a pure
//! function: the regional common ID and its check digit, the card payload, and the normalisation
//! that lets 髙橋 match 高橋 and ｶﾀｶﾅ match カタカナ.

pub mod common_id;
pub mod linkage;
pub mod matching;
pub mod normalize;
pub mod synthetic;

pub use common_id::{CardPayload, CommonId, CommonIdError};
pub use matching::{Demographic, MatchScore, score};
pub use normalize::{normalize_address, normalize_kana, normalize_name};
