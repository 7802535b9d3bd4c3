//! The command line: subcommands, options and their help texts (`renkei --help`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Renkei — 地域医療連携ネットワーク (regional health information exchange).
#[derive(Parser, Debug)]
#[command(name = "renkei", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "RENKEI_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the embedded database, the file store and the audit key.
    #[arg(long, global = true, env = "RENKEI_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH (default: DATA_DIR/renkei.db) or postgres://USER@HOST/DB.
    #[arg(long, global = true, env = "RENKEI_DATABASE_URL")]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the web server (portal and APIs).
    Serve(ServeArgs),
    /// Administer the provider directory from the server's shell.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Work with the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Import clinical data.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Development tools: synthetic data for benchmarks and demonstrations.
    #[command(subcommand)]
    Dev(DevCommand),
}

#[derive(Subcommand, Debug)]
pub enum DevCommand {
    /// Write a synthetic SS-MIX2 standardized storage (ISO-2022-JP): demographics, allergies,
    /// diagnoses, monthly visits with prescriptions and labs, admissions with injections.
    GenerateSsmix2 {
        /// Output folder (the storage root); created if missing.
        out: PathBuf,
        /// How many patients to generate.
        #[arg(long, default_value_t = 100)]
        patients: usize,
        /// Years of history per patient.
        #[arg(long, default_value_t = 2)]
        years: u32,
        /// The same seed gives the same storage.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Seed the FHIR benchmark (benches/fhir/run.sh): a hospital, card-holders with lab results
    /// (stored through the FHIR write path), an API client "bench" with the given public keys,
    /// and the same data as FHIR transaction Bundles for the peer server.
    SeedFhirBench {
        /// How many card-holders to create.
        #[arg(long, default_value_t = 10_000)]
        patients: usize,
        /// Lab results per patient.
        #[arg(long, default_value_t = 10)]
        per_patient: usize,
        /// The client's public keys (a JWK Set).
        #[arg(long)]
        jwks: PathBuf,
        /// Where the patient list and the peer's Bundles go.
        #[arg(long)]
        out: PathBuf,
    },
    /// Seed the demo region into an empty data directory, as `serve --demo` does on first
    /// start, and exit.
    SeedDemo,
    /// Print the current TOTP code (認証コード) of a demo user, so that a demonstration or a
    /// script can log in without a phone. Works only on a data directory seeded by the demo.
    Totp {
        /// The demo user's login ID (for example chuo.dr).
        login_id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// Import an SS-MIX2 standardized storage for a disclosing facility. Bad files are reported
    /// and skipped; the exit status is 1 when any file failed. Re-running imports only what changed.
    Ssmix2 {
        /// The storage root (the folder holding the 3-character patient-ID folders).
        root: PathBuf,
        /// The facility's 10-digit medical-institution code.
        #[arg(long)]
        facility: String,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Import a pharmacy's medication-notebook files (JAHIS 電子版お薬手帳, Shift_JIS or UTF-8)
    /// for the patient holding an HM card. Re-importing the same dispensing changes nothing;
    /// the exit status is 1 when any file was refused.
    Jahis {
        /// The files exported by the receipt computer.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The pharmacy's 10-digit code.
        #[arg(long)]
        facility: String,
        /// The patient's HM card: the QR payload or the common ID. Without it, each file's
        /// card-holder is the common ID its name starts with (`34000000018_…`), or the one patient
        /// this pharmacy has linked by card whose name, birth date and sex match the file.
        #[arg(long)]
        card: Option<String>,
        /// The patient's name changed (marriage, …) and a person checked it: files whose name
        /// differs from the card's person, with the same birth date and sex, are accepted
        /// (audited). Only with `--card`.
        #[arg(long, requires = "card")]
        name_changed: bool,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on; plain HTTP is allowed only on a loopback address.
    #[arg(long, env = "RENKEI_LISTEN")]
    pub listen: Option<String>,
    /// PEM certificate chain for HTTPS.
    #[arg(long, env = "RENKEI_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    #[arg(long, env = "RENKEI_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Seed a demo region on first start (when the directory is empty) and print how to log in.
    #[arg(long)]
    pub demo: bool,
    /// Also receive HL7 v2 over MLLP on this address (the HL7 port is 2575). With a TLS
    /// certificate configured, MLLP uses TLS too.
    #[arg(long, env = "RENKEI_MLLP_LISTEN")]
    pub mllp_listen: Option<String>,
    /// Allow plain (unencrypted) MLLP on a non-loopback address: only inside an IPsec VPN.
    #[arg(long)]
    pub mllp_allow_plain: bool,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Register a facility.
    CreateFacility(CreateFacilityArgs),
    /// Register a user; prints a temporary password unless --password is given.
    CreateUser(CreateUserArgs),
    /// Issue a new temporary password for a user (also unlocks the account).
    ResetPassword {
        /// The user's login ID.
        #[arg(long)]
        login_id: String,
    },
    /// Load the national medical-institution code list (CSV, or the published ZIP containing it).
    ImportFacilities {
        /// all_med_inst_cd.csv or 202508_all_med_inst_cd.zip
        file: PathBuf,
    },
    /// Register a medication-notebook app that receives new dispensings by webhook; prints the
    /// secret its receiver verifies signatures with (shown once).
    CreateMedicationApp {
        /// The app's name, as patients and pharmacists see it.
        #[arg(long)]
        name: String,
        /// Where deliveries are POSTed (https://…; http only on loopback).
        #[arg(long)]
        url: String,
    },
    /// Link a registered medication-notebook app to a card-holder (at the patient's request).
    SubscribeMedicationApp {
        /// The 10-digit code of the facility doing it.
        #[arg(long)]
        facility: String,
        /// The patient's HM card: the QR payload or the common ID.
        #[arg(long)]
        card: String,
        /// The app's id, as `admin create-medication-app` printed it (id=…).
        #[arg(long)]
        app: i64,
    },
    /// Register a system that calls the API (PIXm, PDQm) with OAuth client credentials: it
    /// signs its token requests with a private key whose public half is given here (a JWK Set).
    CreateClient(CreateClientArgs),
}

#[derive(Args, Debug)]
pub struct CreateClientArgs {
    /// The client's ID (the `iss` and `sub` of its assertions): letters, digits, - . _
    #[arg(long)]
    pub client_id: String,
    /// The client's name, as the operator's screens show it.
    #[arg(long)]
    pub name: String,
    /// The 10-digit code of the facility the client acts for.
    #[arg(long)]
    pub facility: String,
    /// A file holding the client's public keys as a JWK Set (RS384 or ES384 keys). Not needed
    /// for an app used by portal users (--redirect-uri), which proves itself with PKCE.
    #[arg(long)]
    pub jwks: Option<PathBuf>,
    /// For an app that acts for logged-in portal users (SMART App Launch): where it receives
    /// authorization codes; give it once per URI. Its scopes are then user/… scopes.
    #[arg(long = "redirect-uri")]
    pub redirect_uri: Vec<String>,
    /// Space-separated scopes, e.g. "system/Patient.rs".
    #[arg(long, default_value = "system/Patient.rs")]
    pub scope: String,
    /// May see every facility's patients and identifiers (a regional gateway or a neighbouring
    /// network), not only its own facility's.
    #[arg(long)]
    pub cross_facility: bool,
    /// The profession whose rights the client reads the record with (doctor, pharmacist, nurse,
    /// …); clerk, the default, sees no clinical data unless the operator's rights allow it.
    #[arg(long, default_value = "clerk")]
    pub profession: String,
}

#[derive(Args, Debug)]
pub struct CreateFacilityArgs {
    /// operator, hospital, clinic, dental, pharmacy, home_care, care_facility or lab_centre.
    #[arg(long = "type")]
    pub facility_type: String,
    /// The facility's name (施設名), as patients know it.
    #[arg(long)]
    pub name: String,
    /// 10-digit medical-institution code (医療機関コード).
    #[arg(long, default_value = "")]
    pub code: String,
    /// The name in katakana (施設名カナ).
    #[arg(long, default_value = "")]
    pub name_kana: String,
    /// Postal code (郵便番号), 7 digits.
    #[arg(long, default_value = "")]
    pub postal_code: String,
    /// Address (所在地).
    #[arg(long, default_value = "")]
    pub address: String,
    /// Phone number (電話番号).
    #[arg(long, default_value = "")]
    pub phone: String,
    /// The facility discloses its records (開示施設).
    #[arg(long)]
    pub discloses: bool,
    /// The facility issues HM cards.
    #[arg(long)]
    pub issues_hm_card: bool,
    /// The facility issues hospital-only disclosure cards (診療情報開示カード).
    #[arg(long)]
    pub issues_disclosure_card: bool,
    /// How many user accounts the facility may hold (利用者アカウント数の上限).
    #[arg(long, default_value_t = 20)]
    pub max_accounts: i64,
}

#[derive(Args, Debug)]
pub struct CreateUserArgs {
    /// The facility's id, as `admin create-facility` printed it (id=…).
    #[arg(long)]
    pub facility_id: i64,
    /// The login ID (利用者ID): 3–64 of a–z, 0–9, . _ - @
    #[arg(long)]
    pub login_id: String,
    /// The user's name (氏名).
    #[arg(long)]
    pub name: String,
    /// The name in katakana (氏名カナ).
    #[arg(long, default_value = "")]
    pub name_kana: String,
    /// doctor, dentist, pharmacist, nurse, care_manager, physical_therapist, clerk, operator, …
    #[arg(long)]
    pub profession: String,
    /// operator, facility_admin or staff.
    #[arg(long, default_value = "staff")]
    pub role: String,
    /// Mark as an emergency account (非常時用アカウント).
    #[arg(long)]
    pub emergency: bool,
    /// Set this password (not required to change). Without it a temporary password is printed.
    #[arg(long, env = "RENKEI_NEW_USER_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the whole hash chain: reports modified, deleted or inserted events; exit 1 if any.
    Verify,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every subcommand and option, with its path for messages.
    fn all(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
        out.push((path.to_string(), cmd.clone()));
        for sub in cmd.get_subcommands() {
            all(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_command_and_option_has_help_text() {
        let mut commands = Vec::new();
        all(&Cli::command(), "renkei", &mut commands);
        for (path, cmd) in &commands {
            if path != "renkei" {
                assert!(cmd.get_about().is_some(), "{path} has no help text");
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{path}: {id} has no help text");
            }
        }
    }

    #[test]
    fn help_wraps_by_display_width() {
        let mut commands = Vec::new();
        all(&Cli::command(), "renkei", &mut commands);
        for (path, cmd) in commands {
            let mut cmd = cmd.term_width(60);
            let help = cmd.render_long_help().to_string();
            // clap does not wrap the usage line.
            for line in help.lines().filter(|l| !l.starts_with("Usage:")) {
                let width = unicode_width::UnicodeWidthStr::width(line);
                assert!(
                    width <= 60,
                    "{path}: a help line of {width} columns:\n{line}"
                );
            }
        }
    }
}
