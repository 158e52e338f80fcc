//! Authentication and authorisation on a member, around the replicated auth state
//! ([`kv::Auth`]): who a request comes from (a token, or a TLS client certificate's CN),
//! etcd's simple tokens, password hashing (bcrypt), and the permission checks of every
//! request, nested transactions and leases included.
//!
//! Writes are checked where they are applied, against the auth state at their slot: a
//! command carries its caller and the auth revision the caller was checked at, and every
//! member refuses it alike if a role changed in between (etcd's `ErrAuthOldRevision`).
//! Reads are checked against the view they are served from.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use kv::{AuthError, Caller, PermKind};
use tonic::Status;

use crate::convert;
use crate::proto::etcdserverpb as pb;
use crate::proto::synodpb::command::Op;
use crate::tls::ClientCertificate;

/// etcd's default `--auth-token-ttl`: a simple token unused this long expires.
pub const TOKEN_TTL_DEFAULT: Duration = Duration::from_secs(300);
/// etcd's default `--bcrypt-cost`.
pub const BCRYPT_COST_DEFAULT: u32 = 10;
/// How many random letters begin a simple token (etcd's `defaultSimpleTokenLength`).
const TOKEN_LETTERS: usize = 16;

/// The simple tokens this member knows: assigned when an `Authenticate` command is
/// applied (so every member knows every token), dropped when unused for the TTL, when
/// their user is deleted or changes password, and all at once when auth is disabled.
/// Member-local, as etcd's: a restarted member forgets them and clients authenticate
/// again.
#[derive(Debug)]
pub struct Tokens {
    ttl: Duration,
    tokens: Mutex<HashMap<String, Token>>,
}

#[derive(Debug)]
struct Token {
    user: String,
    used: Instant,
}

impl Tokens {
    /// No tokens; each lives `ttl` after its last use.
    pub fn new(ttl: Duration) -> Tokens {
        Tokens {
            ttl,
            tokens: Mutex::default(),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Token>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `token` for `user`.
    pub fn assign(&self, token: String, user: String) {
        let now = Instant::now();
        let mut tokens = self.map();
        tokens.retain(|_, t| now.duration_since(t.used) < self.ttl);
        tokens.insert(token, Token { user, used: now });
    }

    /// The user of `token`, if it is known and alive; using it restarts its TTL.
    pub fn user(&self, token: &str) -> Option<String> {
        let now = Instant::now();
        let mut tokens = self.map();
        let entry = tokens.get_mut(token)?;
        if now.duration_since(entry.used) >= self.ttl {
            tokens.remove(token);
            return None;
        }
        entry.used = now;
        Some(entry.user.clone())
    }

    /// Forgets every token of `user`.
    pub fn invalidate_user(&self, user: &str) {
        self.map().retain(|_, t| t.user != user);
    }

    /// Forgets every token.
    pub fn clear(&self) {
        self.map().clear();
    }
}

/// etcd's JWT tokens (`--auth-token jwt,pub-key=…,priv-key=…,sign-method=…,ttl=…`):
/// signed by the member a client authenticates with, verified by any member holding the
/// public key, carrying the user and the auth revision they were issued at (so any
/// change of users or roles makes them stale: `ErrAuthOldRevision`, and clients
/// authenticate again). Claims as etcd's: `username`, `revision`, `exp`.
pub struct Jwt {
    algorithm: jsonwebtoken::Algorithm,
    signing: Option<jsonwebtoken::EncodingKey>,
    verifying: jsonwebtoken::DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("algorithm", &self.algorithm)
            .field("signs", &self.signing.is_some())
            .field("ttl", &self.ttl)
            .finish()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

/// etcd's default JWT lifetime.
const JWT_TTL_DEFAULT: Duration = Duration::from_secs(300);

impl Jwt {
    /// The JWT options of `--auth-token jwt,…`: `pub-key` (required), `priv-key`
    /// (without it this member only verifies), `sign-method` (RS/PS/ES 256–512, EdDSA),
    /// `ttl` (etcd's duration: 5m, 30s; default 5m). Key files are read now.
    pub fn from_options(options: &str) -> Result<Jwt, String> {
        let mut fields = HashMap::new();
        for option in options.split(',').filter(|o| !o.is_empty()) {
            let (name, value) = option
                .split_once('=')
                .ok_or_else(|| format!("--auth-token: {option:?} is not name=value"))?;
            fields.insert(name, value);
        }
        let method = fields
            .get("sign-method")
            .ok_or("--auth-token jwt needs sign-method")?;
        let algorithm: jsonwebtoken::Algorithm = method
            .parse()
            .map_err(|_| format!("--auth-token: unknown sign-method {method:?}"))?;
        let family = algorithm_family(algorithm)?;
        let public = fields
            .get("pub-key")
            .ok_or("--auth-token jwt needs pub-key")?;
        let verifying = family.decoding(&read_key(public)?)?;
        let signing = match fields.get("priv-key") {
            Some(path) => Some(family.encoding(&read_key(path)?)?),
            None => None,
        };
        let ttl = match fields.get("ttl") {
            Some(text) => crate::config::parse_duration(text)?,
            None => JWT_TTL_DEFAULT,
        };
        Ok(Jwt {
            algorithm,
            signing,
            verifying,
            ttl,
        })
    }

    /// A token for `username` at auth revision `revision`.
    pub fn sign(&self, username: &str, revision: u64) -> Result<String, Status> {
        let key = self
            .signing
            .as_ref()
            .ok_or_else(|| Status::unknown("auth: token signing attempted with verify-only key"))?;
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(self.ttl)
            .as_secs();
        let claims = Claims {
            username: username.to_string(),
            revision,
            exp,
        };
        jsonwebtoken::encode(&jsonwebtoken::Header::new(self.algorithm), &claims, key)
            .map_err(|e| Status::internal(format!("signing a token: {e}")))
    }

    /// The user and auth revision of a valid, unexpired `token`.
    pub fn verify(&self, token: &str) -> Option<(String, u64)> {
        let mut validation = jsonwebtoken::Validation::new(self.algorithm);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.verifying, &validation).ok()?;
        Some((data.claims.username, data.claims.revision))
    }
}

/// Which kind of key an algorithm takes.
#[derive(Clone, Copy)]
enum KeyFamily {
    Rsa,
    Ec,
    Ed,
}

fn algorithm_family(algorithm: jsonwebtoken::Algorithm) -> Result<KeyFamily, String> {
    use jsonwebtoken::Algorithm::*;
    match algorithm {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Ok(KeyFamily::Rsa),
        ES256 | ES384 => Ok(KeyFamily::Ec),
        EdDSA => Ok(KeyFamily::Ed),
        HS256 | HS384 | HS512 => Err(
            "--auth-token: HMAC sign methods are not supported; use RS256, ES256 or EdDSA".into(),
        ),
    }
}

impl KeyFamily {
    fn decoding(self, pem: &[u8]) -> Result<jsonwebtoken::DecodingKey, String> {
        use jsonwebtoken::DecodingKey;
        match self {
            KeyFamily::Rsa => DecodingKey::from_rsa_pem(pem),
            KeyFamily::Ec => DecodingKey::from_ec_pem(pem),
            KeyFamily::Ed => DecodingKey::from_ed_pem(pem),
        }
        .map_err(|e| format!("--auth-token: the public key: {e}"))
    }

    fn encoding(self, pem: &[u8]) -> Result<jsonwebtoken::EncodingKey, String> {
        use jsonwebtoken::EncodingKey;
        match self {
            KeyFamily::Rsa => EncodingKey::from_rsa_pem(pem),
            KeyFamily::Ec => EncodingKey::from_ec_pem(pem),
            KeyFamily::Ed => EncodingKey::from_ed_pem(pem),
        }
        .map_err(|e| format!("--auth-token: the private key: {e}"))
    }
}

fn read_key(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("--auth-token: cannot read {path}: {e}"))
}

/// What a request presents to say who sends it: its token (gRPC metadata `token`, or
/// the gateway's `authorization`) and the verified client certificate's common name.
/// Read off the request as it arrives; looked at ([`crate::api::Handle::identify`]) when the request
/// is served.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    token: Option<String>,
    common_name: Option<String>,
}

impl Credentials {
    /// The credentials of a request with these `metadata` on a connection with this
    /// verified client `certificate`.
    pub fn of(metadata: &http::HeaderMap, certificate: Option<&ClientCertificate>) -> Credentials {
        let token = metadata
            .get("token")
            .or_else(|| metadata.get("authorization"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Credentials {
            token,
            common_name: certificate.map(|c| c.common_name.clone()),
        }
    }

    /// The credentials of a tonic request.
    pub fn of_request<T>(request: &tonic::Request<T>) -> Credentials {
        let certificate = request.extensions().get::<ClientCertificate>();
        Credentials::of(request.metadata().as_ref(), certificate)
    }

    /// Whether it presents nothing (nobody sends the request).
    pub fn is_empty(&self) -> bool {
        self.token.is_none() && self.common_name.is_none()
    }
}

/// What the API layer needs to establish callers.
#[derive(Debug)]
pub struct Authn {
    /// The simple tokens.
    pub tokens: std::sync::Arc<Tokens>,
    /// `--bcrypt-cost`.
    pub bcrypt_cost: u32,
    /// JWT tokens instead of simple ones (`--auth-token jwt,…`).
    pub jwt: Option<std::sync::Arc<Jwt>>,
}

impl Authn {
    /// Who presents `credentials` under auth state `auth`: the token's user (a token
    /// that is not known is refused, also while auth is off, as etcd does: clients then
    /// authenticate again), else the verified client certificate's common name while auth
    /// is on (with `--client-cert-auth`), else nobody.
    pub fn caller(&self, credentials: &Credentials, auth: &kv::Auth) -> Result<Caller, Status> {
        let invalid = || convert::auth_status(AuthError::InvalidAuthToken);
        match (&credentials.token, &credentials.common_name) {
            (Some(token), _) => {
                if let Some(jwt) = &self.jwt {
                    let (user, revision) = jwt.verify(token).ok_or_else(invalid)?;
                    return Ok(Caller { user, revision });
                }
                let user = self.tokens.user(token).ok_or_else(invalid)?;
                Ok(Caller {
                    user,
                    revision: auth.revision(),
                })
            }
            (None, Some(name)) if auth.enabled() && !name.is_empty() => Ok(Caller {
                user: name.clone(),
                revision: auth.revision(),
            }),
            (None, _) => Ok(Caller::default()),
        }
    }
}

/// A fresh simple token's random part: letters, as etcd's.
pub fn token_prefix() -> Result<String, Status> {
    use rand_core::TryRngCore as _;
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut bytes = [0u8; TOKEN_LETTERS];
    rand_core::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| Status::internal(format!("no randomness for a token: {e}")))?;
    Ok(bytes
        .iter()
        .map(|b| char::from(LETTERS[usize::from(*b) % LETTERS.len()]))
        .collect())
}

/// The bcrypt hash of `password` at `cost`, computed off the async threads (it takes
/// tens of milliseconds by design).
pub async fn hash_password(password: String, cost: u32) -> Result<String, Status> {
    tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
        .await
        .map_err(|e| Status::internal(format!("hashing failed: {e}")))?
        .map_err(|e| Status::internal(format!("hashing failed: {e}")))
}

/// Checks `password` of `name` against `auth`, taking as long whether the user is
/// unknown or the password wrong (an unknown user is checked against a hash of the same
/// cost), so that timing tells nothing about which users exist.
pub async fn check_password(
    auth: &kv::Auth,
    name: &str,
    password: String,
    cost: u32,
) -> Result<(), AuthError> {
    if !auth.enabled() {
        return Err(AuthError::AuthNotEnabled);
    }
    let user = auth.user(name);
    if user.is_some_and(|u| u.no_password) {
        return Err(AuthError::NoPasswordUser);
    }
    let hash = user.map(|u| String::from_utf8_lossy(&u.password).into_owned());
    let known = user.is_some();
    let verify = move || {
        let hash = hash.unwrap_or_else(|| stand_in_hash(cost));
        bcrypt::verify(password, &hash)
    };
    let matches = tokio::task::spawn_blocking(verify)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(false);
    if matches && known {
        Ok(())
    } else {
        Err(AuthError::AuthFailed)
    }
}

/// A hash at `cost` to check unknown users' passwords against (the answer is "failed"
/// whatever it holds), made once per cost.
fn stand_in_hash(cost: u32) -> String {
    static HASHES: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());
    let mut hashes = HASHES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, hash)) = hashes.iter().find(|(c, _)| *c == cost) {
        return hash.clone();
    }
    let hash = bcrypt::hash("the password of a user who does not exist", cost).unwrap_or_default();
    hashes.push((cost, hash.clone()));
    hash
}

/// Whether `caller` may have `op` applied, by the auth state of `store` (the store the
/// command applies to: its leases' keys count too). Commands the members propose of
/// their own accord (lease expiry, alarms, publishing) are not clients' and not checked;
/// an alarm change or a keep-alive is checked where the client sends it.
pub fn check_command(store: &kv::Store, op: &Op, caller: &Caller) -> Result<(), AuthError> {
    let auth = store.auth();
    if !auth.enabled() {
        return Ok(());
    }
    match op {
        Op::Put(r) => check_put(store, r, caller),
        Op::DeleteRange(r) => check_delete(auth, r, caller),
        Op::Txn(r) => check_txn(store, r, caller),
        Op::Compact(_) => auth.check_admin(caller),
        Op::LeaseRevoke(r) => check_lease_writes(store, r.id, caller),
        _ => Ok(()),
    }
}

/// A range reads its keys.
pub fn check_range(
    auth: &kv::Auth,
    r: &pb::RangeRequest,
    caller: &Caller,
) -> Result<(), AuthError> {
    auth.check(caller, &r.key, &r.range_end, PermKind::Read)
}

/// A put writes its key, reads it for `prev_kv`, and moves it into a lease whose keys
/// the caller must be able to write (etcd's `checkLeasePuts`).
fn check_put(store: &kv::Store, r: &pb::PutRequest, caller: &Caller) -> Result<(), AuthError> {
    let auth = store.auth();
    auth.check(caller, &r.key, &[], PermKind::Write)?;
    check_lease_writes(store, r.lease, caller)?;
    if r.prev_kv {
        auth.check(caller, &r.key, &[], PermKind::Read)?;
    }
    Ok(())
}

fn check_delete(
    auth: &kv::Auth,
    r: &pb::DeleteRangeRequest,
    caller: &Caller,
) -> Result<(), AuthError> {
    auth.check(caller, &r.key, &r.range_end, PermKind::Write)?;
    if r.prev_kv {
        auth.check(caller, &r.key, &r.range_end, PermKind::Read)?;
    }
    Ok(())
}

/// A transaction: every compare reads, every operation of both branches is checked as
/// if sent alone, nested transactions included (whichever branch would run).
pub fn check_txn(store: &kv::Store, r: &pb::TxnRequest, caller: &Caller) -> Result<(), AuthError> {
    use pb::request_op::Request;
    let auth = store.auth();
    for compare in &r.compare {
        auth.check(caller, &compare.key, &compare.range_end, PermKind::Read)?;
    }
    for op in r.success.iter().chain(&r.failure) {
        match &op.request {
            Some(Request::RequestRange(r)) => check_range(auth, r, caller)?,
            Some(Request::RequestPut(r)) => check_put(store, r, caller)?,
            Some(Request::RequestDeleteRange(r)) => check_delete(auth, r, caller)?,
            Some(Request::RequestTxn(r)) => check_txn(store, r, caller)?,
            None => {}
        }
    }
    Ok(())
}

/// Revoking a lease, or attaching a key to it, deletes or keeps its keys: the caller
/// must be able to write every one (an administrator always may).
pub fn check_lease_writes(store: &kv::Store, lease: i64, caller: &Caller) -> Result<(), AuthError> {
    check_lease_keys(store, lease, caller, PermKind::Write)
}

/// The keys of `lease` (none if it does not exist) are each checked for `wanted`.
pub fn check_lease_keys(
    store: &kv::Store,
    lease: i64,
    caller: &Caller,
    wanted: PermKind,
) -> Result<(), AuthError> {
    let auth = store.auth();
    if !auth.enabled() || lease == 0 || auth.check_admin(caller).is_ok() {
        return Ok(());
    }
    let Ok(info) = store.lease_info(lease, true) else {
        return Ok(());
    };
    for key in &info.keys {
        auth.check(caller, key, &[], wanted)?;
    }
    Ok(())
}

/// What an auth command answers, besides the header.
#[derive(Debug)]
pub enum AuthAnswer {
    /// A change applied (or a no-op, as etcd's).
    Done,
    /// `AuthStatus`.
    Status {
        /// Whether auth is on.
        enabled: bool,
        /// The auth revision.
        revision: u64,
    },
    /// `Authenticate`: the simple token (empty when the member signs a JWT instead),
    /// and the auth revision it was issued at.
    Token {
        /// The token.
        token: String,
        /// The auth revision.
        revision: u64,
    },
    /// `UserGet`: the user's roles; `UserList` and `RoleList`: the names.
    Names(Vec<String>),
    /// `RoleGet`: the role's permissions.
    Permissions(Vec<crate::proto::authpb::Permission>),
}

/// Applies an auth command chosen at `slot` from `caller`: every request but
/// `Authenticate`, `UserGet` of oneself and `RoleGet` of one's own role needs an
/// administrator while auth is on (etcd's `needAdminPermission`). Tokens change with
/// the state: assigned on `Authenticate`, dropped with their user or password, all
/// dropped when auth is disabled.
pub fn apply(
    store: &mut kv::Store,
    tokens: &Tokens,
    op: Op,
    caller: &Caller,
    slot: u64,
) -> Result<AuthAnswer, AuthError> {
    let auth = store.auth_mut();
    let admin = auth.check_admin(caller);
    match op {
        Op::Authenticate(r) => authenticate(auth, tokens, r, slot),
        Op::UserGet(r) => {
            admin.or_else(|e| {
                if r.name == caller.user {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
            let user = auth.user(&r.name).ok_or(AuthError::UserNotFound)?;
            Ok(AuthAnswer::Names(user.roles.clone()))
        }
        Op::RoleGet(r) => {
            admin.or_else(|e| {
                if auth.has_role(&caller.user, &r.role) {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
            let perms = auth
                .role(&r.role)?
                .perms
                .iter()
                .map(permission_pb)
                .collect();
            Ok(AuthAnswer::Permissions(perms))
        }
        op => {
            admin?;
            apply_admin(auth, tokens, op)
        }
    }
}

/// The administrator's requests.
fn apply_admin(auth: &mut kv::Auth, tokens: &Tokens, op: Op) -> Result<AuthAnswer, AuthError> {
    let done = |changed: Result<(), AuthError>| changed.map(|()| AuthAnswer::Done);
    match op {
        Op::AuthEnable(_) => done(auth.enable()),
        Op::AuthDisable(_) => {
            auth.disable();
            tokens.clear();
            Ok(AuthAnswer::Done)
        }
        Op::AuthStatus(_) => Ok(AuthAnswer::Status {
            enabled: auth.enabled(),
            revision: auth.revision(),
        }),
        Op::UserAdd(r) => {
            let no_password = r.options.is_some_and(|o| o.no_password);
            done(auth.user_add(&r.name, r.hashed_password.into_bytes(), no_password))
        }
        Op::UserList(_) => Ok(AuthAnswer::Names(auth.user_names())),
        Op::UserDelete(r) => {
            auth.user_delete(&r.name)?;
            tokens.invalidate_user(&r.name);
            Ok(AuthAnswer::Done)
        }
        Op::UserChangePassword(r) => {
            auth.user_change_password(&r.name, r.hashed_password.into_bytes())?;
            tokens.invalidate_user(&r.name);
            Ok(AuthAnswer::Done)
        }
        Op::UserGrantRole(r) => done(auth.user_grant_role(&r.user, &r.role)),
        Op::UserRevokeRole(r) => done(auth.user_revoke_role(&r.name, &r.role)),
        Op::RoleAdd(r) => done(auth.role_add(&r.name)),
        Op::RoleList(_) => Ok(AuthAnswer::Names(auth.role_names())),
        Op::RoleDelete(r) => done(auth.role_delete(&r.role)),
        Op::RoleGrantPermission(r) => {
            let perm = r.perm.ok_or(AuthError::PermissionNotGiven)?;
            let perm = kv::Permission {
                kind: PermKind::from_number(perm.perm_type),
                key: perm.key,
                range_end: perm.range_end,
            };
            done(auth.role_grant_permission(&r.name, perm))
        }
        Op::RoleRevokePermission(r) => {
            done(auth.role_revoke_permission(&r.role, &r.key, &r.range_end))
        }
        // Not an auth command: the machine never sends one here.
        _ => Ok(AuthAnswer::Done),
    }
}

/// Records the token of a user whose password the proposing member checked: the token
/// is the random part it chose and the slot, as etcd's `<letters>.<index>`.
fn authenticate(
    auth: &kv::Auth,
    tokens: &Tokens,
    r: crate::proto::synodpb::Authenticate,
    slot: u64,
) -> Result<AuthAnswer, AuthError> {
    if !auth.enabled() {
        return Err(AuthError::AuthNotEnabled);
    }
    match auth.user(&r.name) {
        Some(user) if !user.no_password => {
            let revision = auth.revision();
            if r.token.is_empty() {
                // The proposing member signs a JWT: nothing to record.
                return Ok(AuthAnswer::Token {
                    token: String::new(),
                    revision,
                });
            }
            let token = format!("{}.{slot}", r.token);
            tokens.assign(token.clone(), r.name);
            Ok(AuthAnswer::Token { token, revision })
        }
        _ => Err(AuthError::AuthFailed),
    }
}

/// A permission as etcd's `authpb.Permission`.
pub fn permission_pb(p: &kv::Permission) -> crate::proto::authpb::Permission {
    crate::proto::authpb::Permission {
        perm_type: p.kind.number(),
        key: p.key.clone(),
        range_end: p.range_end.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_expires_unused_and_lives_while_used() {
        let tokens = Tokens::new(Duration::from_millis(200));
        tokens.assign("t".into(), "u".into());
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(80));
            assert_eq!(tokens.user("t").as_deref(), Some("u"));
        }
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(tokens.user("t"), None);
    }

    #[test]
    fn a_users_tokens_go_with_it() {
        let tokens = Tokens::new(TOKEN_TTL_DEFAULT);
        tokens.assign("a".into(), "u".into());
        tokens.assign("b".into(), "v".into());
        tokens.invalidate_user("u");
        assert_eq!(tokens.user("a"), None);
        assert_eq!(tokens.user("b").as_deref(), Some("v"));
        tokens.clear();
        assert_eq!(tokens.user("b"), None);
    }

    #[test]
    fn token_prefixes_are_letters_and_differ() {
        let (a, b) = (token_prefix().unwrap(), token_prefix().unwrap());
        assert_eq!(a.len(), TOKEN_LETTERS);
        assert!(a.chars().all(|c| c.is_ascii_alphabetic()), "{a}");
        assert_ne!(a, b);
    }

    /// An ECDSA key pair's PEM files in a fresh directory: (private, public).
    fn jwt_keys(dir: &std::path::Path) -> (String, String) {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let private = dir.join("jwt.key");
        let public = dir.join("jwt.pub");
        std::fs::write(&private, pair.serialize_pem()).unwrap();
        std::fs::write(&public, pair.public_key_pem()).unwrap();
        let path = |p: std::path::PathBuf| p.to_str().unwrap().to_string();
        (path(private), path(public))
    }

    #[test]
    fn a_jwt_carries_its_user_and_revision_and_is_refused_when_expired_or_foreign() {
        let dir = std::env::temp_dir().join(format!("synod-jwt-{}", std::process::id()));
        let (private, public) = jwt_keys(&dir);
        let options = format!("pub-key={public},priv-key={private},sign-method=ES256,ttl=5m");
        let jwt = Jwt::from_options(&options).unwrap();
        let token = jwt.sign("alice", 7).unwrap();
        assert_eq!(jwt.verify(&token), Some(("alice".to_string(), 7)));
        let expired = Claims {
            username: "alice".into(),
            revision: 7,
            exp: 1,
        };
        let pem = std::fs::read(&private).unwrap();
        let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap();
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        let old = jsonwebtoken::encode(&header, &expired, &key).unwrap();
        assert_eq!(jwt.verify(&old), None, "expired");
        let (_, other_public) = jwt_keys(&dir.join("other"));
        let foreign =
            Jwt::from_options(&format!("pub-key={other_public},sign-method=ES256")).unwrap();
        assert_eq!(foreign.verify(&token), None, "signed by another key");
        assert_eq!(
            foreign.sign("alice", 7).unwrap_err().message(),
            "auth: token signing attempted with verify-only key"
        );
        assert!(Jwt::from_options("pub-key=/nonexistent,sign-method=ES256").is_err());
        assert!(Jwt::from_options(&format!("pub-key={public},sign-method=HS256")).is_err());
        assert!(Jwt::from_options(&format!("pub-key={public}")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An unknown user costs a bcrypt check as a wrong password does, so that timing
    /// does not tell which users exist: a lower bound (the fastest of three calibrating
    /// checks, halved), which load can only make easier to meet.
    #[tokio::test]
    async fn an_unknown_user_takes_as_long_as_a_wrong_password() {
        let cost = 8;
        let mut auth = kv::Auth::default();
        let hash = bcrypt::hash("right", cost).unwrap();
        auth.user_add("root", hash.into_bytes(), false).unwrap();
        auth.user_grant_role("root", "root").unwrap();
        auth.enable().unwrap();
        let fastest = (0..3)
            .map(|_| {
                let started = Instant::now();
                let _ = bcrypt::verify("wrong", &bcrypt::hash("x", cost).unwrap());
                started.elapsed() / 2
            })
            .min()
            .unwrap();
        let wrong = check_password(&auth, "root", "wrong".into(), cost).await;
        assert_eq!(wrong, Err(AuthError::AuthFailed));
        let started = Instant::now();
        let unknown = check_password(&auth, "mallory", "right".into(), cost).await;
        let took = started.elapsed();
        assert_eq!(unknown, Err(AuthError::AuthFailed));
        assert!(took >= fastest / 2, "an unknown user answered in {took:?}");
        assert_eq!(
            check_password(&auth, "root", "right".into(), cost).await,
            Ok(())
        );
    }

    /// Every allow/deny decision of a transaction (nested ones included) under random
    /// roles, against a reference model written independently: a range is covered when
    /// each key where a gap could start (its first key, and every permission's end inside
    /// it) lies in some granted interval; a transaction is allowed when every compare
    /// and every operation of both branches, at any depth, is.
    mod model {
        use super::super::*;
        use proptest::prelude::*;

        /// Keys from a two-letter alphabet, up to two long: small enough that ranges
        /// and permissions overlap often.
        fn key() -> impl Strategy<Value = Vec<u8>> {
            proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b')], 0..3)
        }

        /// A range end: one key (empty), every key on (`[0]`), or a key.
        fn end() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![Just(Vec::new()), Just(vec![0]), key()]
        }

        fn kind() -> impl Strategy<Value = PermKind> {
            prop_oneof![
                Just(PermKind::Read),
                Just(PermKind::Write),
                Just(PermKind::ReadWrite)
            ]
        }

        fn op(depth: u32) -> BoxedStrategy<pb::RequestOp> {
            use pb::request_op::Request;
            let leaf = prop_oneof![
                (key(), end()).prop_map(|(key, range_end)| Request::RequestRange(
                    pb::RangeRequest {
                        key,
                        range_end,
                        ..Default::default()
                    }
                )),
                (key(), any::<bool>()).prop_map(|(key, prev_kv)| Request::RequestPut(
                    pb::PutRequest {
                        key,
                        prev_kv,
                        ..Default::default()
                    }
                )),
                (key(), end(), any::<bool>()).prop_map(|(key, range_end, prev_kv)| {
                    Request::RequestDeleteRange(pb::DeleteRangeRequest {
                        key,
                        range_end,
                        prev_kv,
                    })
                }),
            ];
            let request = if depth == 0 {
                leaf.boxed()
            } else {
                prop_oneof![3 => leaf, 1 => txn(depth - 1).prop_map(Request::RequestTxn)].boxed()
            };
            request
                .prop_map(|r| pb::RequestOp { request: Some(r) })
                .boxed()
        }

        fn txn(depth: u32) -> BoxedStrategy<pb::TxnRequest> {
            let compare = (key(), end()).prop_map(|(key, range_end)| pb::Compare {
                key,
                range_end,
                ..Default::default()
            });
            (
                proptest::collection::vec(compare, 0..2),
                proptest::collection::vec(op(depth), 0..3),
                proptest::collection::vec(op(depth), 0..2),
            )
                .prop_map(|(compare, success, failure)| pb::TxnRequest {
                    compare,
                    success,
                    failure,
                })
                .boxed()
        }

        /// The interval a permission or request names; `None` as the end: no end.
        fn interval(key: &[u8], end: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
            let end = match end {
                [] => Some([key, &[0]].concat()),
                [0] => None,
                end => Some(end.to_vec()),
            };
            (key.to_vec(), end)
        }

        fn inside(point: &[u8], (begin, end): &(Vec<u8>, Option<Vec<u8>>)) -> bool {
            begin.as_slice() <= point && end.as_ref().is_none_or(|e| point < e.as_slice())
        }

        fn model_allows(
            perms: &[kv::Permission],
            wanted: PermKind,
            key: &[u8],
            end: &[u8],
        ) -> bool {
            let granted: Vec<_> = perms
                .iter()
                .filter(|p| p.kind == wanted || p.kind == PermKind::ReadWrite)
                .map(|p| interval(&p.key, &p.range_end))
                .collect();
            let covered = |point: &[u8]| granted.iter().any(|i| inside(point, i));
            let asked = interval(key, end);
            let empty = asked.1.as_ref().is_some_and(|e| e.as_slice() <= key);
            if end.is_empty() || empty {
                return covered(key);
            }
            let gaps_start = granted
                .iter()
                .filter_map(|(_, e)| e.clone())
                .filter(|e| inside(e, &asked));
            covered(key) && gaps_start.into_iter().all(|e| covered(&e))
        }

        fn model_allows_txn(perms: &[kv::Permission], t: &pb::TxnRequest) -> bool {
            use pb::request_op::Request;
            let read = |k: &[u8], e: &[u8]| model_allows(perms, PermKind::Read, k, e);
            let write = |k: &[u8], e: &[u8]| model_allows(perms, PermKind::Write, k, e);
            t.compare.iter().all(|c| read(&c.key, &c.range_end))
                && t.success
                    .iter()
                    .chain(&t.failure)
                    .all(|op| match &op.request {
                        Some(Request::RequestRange(r)) => read(&r.key, &r.range_end),
                        Some(Request::RequestPut(r)) => {
                            write(&r.key, &[]) && (!r.prev_kv || read(&r.key, &[]))
                        }
                        Some(Request::RequestDeleteRange(r)) => {
                            write(&r.key, &r.range_end)
                                && (!r.prev_kv || read(&r.key, &r.range_end))
                        }
                        Some(Request::RequestTxn(t)) => model_allows_txn(perms, t),
                        None => true,
                    })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn every_decision_matches_the_model(
                grants in proptest::collection::vec((0usize..2, kind(), key(), end()), 0..5),
                txn in txn(2),
            ) {
                let mut store = kv::Store::new();
                let auth = store.auth_mut();
                auth.user_add("root", Vec::new(), false).unwrap();
                auth.user_grant_role("root", "root").unwrap();
                auth.user_add("u", Vec::new(), false).unwrap();
                for role in ["r0", "r1"] {
                    auth.role_add(role).unwrap();
                    auth.user_grant_role("u", role).unwrap();
                }
                for (role, kind, key, range_end) in grants {
                    // Invalid ranges are refused; what was granted is read back below.
                    let _ = auth.role_grant_permission(["r0", "r1"][role], kv::Permission { kind, key, range_end });
                }
                let granted: Vec<kv::Permission> = ["r0", "r1"]
                    .iter()
                    .flat_map(|r| auth.role(r).unwrap().perms.clone())
                    .collect();
                auth.enable().unwrap();
                let caller = Caller { user: "u".into(), revision: auth.revision() };
                let decided = check_txn(&store, &txn, &caller).is_ok();
                prop_assert_eq!(decided, model_allows_txn(&granted, &txn), "{:?}", txn);
            }
        }
    }

    /// The scenarios of etcd's RBAC advisories, each a way around a permission check.
    mod advisories {
        use super::super::*;

        /// Auth on; user `u` may read and write under `w/` only; key `secret` is
        /// attached to lease 7 by root.
        fn store() -> (kv::Store, Caller) {
            let mut store = kv::Store::new();
            let lease = store
                .lease_grant(kv::LeaseGrant { ttl: 60, id: 7 })
                .unwrap();
            let put = kv::Put {
                key: b"secret".to_vec(),
                value: b"v".to_vec(),
                lease: lease.id,
                ..kv::Put::default()
            };
            store.put(&put).unwrap();
            let auth = store.auth_mut();
            auth.user_add("root", Vec::new(), false).unwrap();
            auth.user_grant_role("root", "root").unwrap();
            auth.user_add("u", Vec::new(), false).unwrap();
            auth.role_add("w").unwrap();
            let perm = kv::Permission {
                kind: PermKind::ReadWrite,
                key: b"w/".to_vec(),
                range_end: b"w0".to_vec(),
            };
            auth.role_grant_permission("w", perm).unwrap();
            auth.user_grant_role("u", "w").unwrap();
            auth.enable().unwrap();
            let caller = Caller {
                user: "u".into(),
                revision: auth.revision(),
            };
            (store, caller)
        }

        fn put(key: &[u8], prev_kv: bool, lease: i64) -> pb::RequestOp {
            pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                    key: key.to_vec(),
                    prev_kv,
                    lease,
                    ..Default::default()
                })),
            }
        }

        fn nested(op: pb::RequestOp) -> pb::TxnRequest {
            let inner = pb::TxnRequest {
                success: vec![op],
                ..Default::default()
            };
            pb::TxnRequest {
                failure: vec![pb::RequestOp {
                    request: Some(pb::request_op::Request::RequestTxn(inner)),
                }],
                ..Default::default()
            }
        }

        #[test]
        fn a_put_nested_in_a_transaction_is_checked() {
            let (store, u) = store();
            assert_eq!(
                check_txn(&store, &nested(put(b"w/1", false, 0)), &u),
                Ok(())
            );
            assert_eq!(
                check_txn(&store, &nested(put(b"other", false, 0)), &u),
                Err(AuthError::PermissionDenied)
            );
        }

        #[test]
        fn prev_kv_of_a_nested_put_needs_read() {
            let (mut store, u) = store();
            let perm = kv::Permission {
                kind: PermKind::Write,
                key: b"x".to_vec(),
                range_end: Vec::new(),
            };
            store.auth_mut().role_grant_permission("w", perm).unwrap();
            let u = Caller {
                revision: store.auth().revision(),
                ..u
            };
            assert_eq!(check_txn(&store, &nested(put(b"x", false, 0)), &u), Ok(()));
            assert_eq!(
                check_txn(&store, &nested(put(b"x", true, 0)), &u),
                Err(AuthError::PermissionDenied)
            );
        }

        #[test]
        fn a_nested_put_into_a_lease_needs_write_on_the_leases_keys() {
            let (store, u) = store();
            assert_eq!(
                check_txn(&store, &nested(put(b"w/1", false, 7)), &u),
                Err(AuthError::PermissionDenied)
            );
            let root = Caller {
                user: "root".into(),
                revision: store.auth().revision(),
            };
            assert_eq!(
                check_txn(&store, &nested(put(b"w/1", false, 7)), &root),
                Ok(())
            );
        }

        #[test]
        fn revoking_a_lease_needs_write_on_its_keys() {
            let (store, u) = store();
            let revoke = Op::LeaseRevoke(pb::LeaseRevokeRequest { id: 7 });
            assert_eq!(
                check_command(&store, &revoke, &u),
                Err(AuthError::PermissionDenied)
            );
        }

        #[test]
        fn a_permission_on_one_key_does_not_cover_a_range_from_it() {
            let (store, u) = store();
            let auth = store.auth();
            assert_eq!(auth.check(&u, b"w/", b"", PermKind::Read), Ok(()));
            assert_eq!(auth.check(&u, b"w/", b"w0", PermKind::Read), Ok(()));
            assert_eq!(
                auth.check(&u, b"w/", b"x", PermKind::Read),
                Err(AuthError::PermissionDenied),
                "a watch from w/ to x would see keys beyond w0"
            );
            assert_eq!(
                auth.check(&u, b"w/", &[0], PermKind::Read),
                Err(AuthError::PermissionDenied)
            );
        }
    }
}
