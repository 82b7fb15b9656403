//! The admin token: taken from configuration, or generated on the first start. Only its hash is
//! stored; the plaintext of a generated token is returned once so the caller can print it.

use crate::entity::admin_token;
use crate::error::StoreError;
use crate::secrets::{generate_token, hash_token};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use switchyard_core::SecretString;

const ROW: &str = "admin";

/// What [`ensure`] decided.
#[derive(Debug)]
pub enum AdminToken {
    /// A token was configured; its hash is used and nothing is stored.
    Configured {
        /// SHA-256 hex of the configured token.
        hash: String,
    },
    /// A token generated earlier is in the database.
    Stored {
        /// SHA-256 hex.
        hash: String,
    },
    /// This start generated the token; show the plaintext once.
    Generated {
        /// SHA-256 hex.
        hash: String,
        /// The token; never logged, printed once to the operator.
        token: SecretString,
    },
}

impl AdminToken {
    /// The hash requests are checked against.
    pub fn hash(&self) -> &str {
        match self {
            AdminToken::Configured { hash }
            | AdminToken::Stored { hash }
            | AdminToken::Generated { hash, .. } => hash,
        }
    }
}

/// Returns the admin token hash to use, generating one when none is configured or stored.
/// Two processes starting at once both try to insert; `ON CONFLICT DO NOTHING` lets exactly one
/// win, and the loser reads the winner's hash and prints nothing.
pub async fn ensure<C: ConnectionTrait>(
    db: &C,
    configured: Option<&SecretString>,
) -> Result<AdminToken, StoreError> {
    if let Some(token) = configured {
        return Ok(AdminToken::Configured {
            hash: hash_token(token.expose()),
        });
    }
    if let Some(row) = admin_token::Entity::find_by_id(ROW).one(db).await? {
        return Ok(AdminToken::Stored {
            hash: row.token_hash,
        });
    }
    let token = generate_token("sy-admin");
    let hash = hash_token(token.expose());
    let row = admin_token::ActiveModel {
        name: Set(ROW.to_owned()),
        token_hash: Set(hash.clone()),
        created_at: Set(chrono::Utc::now()),
    };
    admin_token::Entity::insert(row)
        .on_conflict_do_nothing()
        .exec(db)
        .await?;
    let stored = admin_token::Entity::find_by_id(ROW).one(db).await?;
    match stored {
        Some(row) if row.token_hash == hash => Ok(AdminToken::Generated { hash, token }),
        Some(row) => Ok(AdminToken::Stored {
            hash: row.token_hash,
        }),
        None => Err(StoreError::Malformed {
            what: "admin token row".into(),
            reason: "missing right after insert".into(),
        }),
    }
}
