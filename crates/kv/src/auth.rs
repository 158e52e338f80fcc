//! etcd's authentication state as replicated state: whether auth is on, its revision,
//! users (a bcrypt hash or none, and roles) and roles (permissions on keys, ranges and
//! prefixes), and the permission checks every request goes through. Deterministic: the
//! hashing and verifying of passwords and the tokens are the server's part; this module
//! only keeps the hashes it is given, so every member applies the same changes alike.
//!
//! The rules follow etcd 3.4's auth store: which changes bump the revision (every
//! successful change but enabling), what the `root` user and role may not lose while
//! auth is on, how a request's key or range is covered by a user's permissions (a range
//! must be covered whole by the union of the user's intervals), and each error's code
//! and message.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::Code;

/// The user and the role that hold every permission.
pub const ROOT: &str = "root";

/// What a permission grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PermKind {
    /// Ranges, watches, compares.
    Read,
    /// Puts and deletes.
    Write,
    /// Both.
    ReadWrite,
}

impl PermKind {
    /// etcd's `authpb.Permission.Type` number.
    pub fn number(self) -> i32 {
        match self {
            PermKind::Read => 0,
            PermKind::Write => 1,
            PermKind::ReadWrite => 2,
        }
    }

    /// The kind etcd numbers `n`; etcd treats unknown numbers as READ.
    pub fn from_number(n: i32) -> PermKind {
        match n {
            1 => PermKind::Write,
            2 => PermKind::ReadWrite,
            _ => PermKind::Read,
        }
    }

    fn grants(self, wanted: PermKind) -> bool {
        self == PermKind::ReadWrite || self == wanted
    }
}

/// A permission on one key (`range_end` empty), a range `[key, range_end)`, or every key
/// from `key` on (`range_end` = `[0]`), as etcd's `authpb.Permission`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Permission {
    /// What it grants.
    pub kind: PermKind,
    /// The first key.
    pub key: Vec<u8>,
    /// The end, as in a range request.
    pub range_end: Vec<u8>,
}

/// A user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    /// The bcrypt hash of the password; empty for a user added with `--no-password`.
    pub password: Vec<u8>,
    /// Added with `--no-password`: it can only be authenticated by a TLS certificate.
    pub no_password: bool,
    /// Its roles, sorted.
    pub roles: Vec<String>,
}

/// A role: its permissions, sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Role {
    /// The permissions.
    pub perms: Vec<Permission>,
}

/// Why an auth request or a permission check failed, as etcd's `auth` errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// Enabling auth without a `root` user.
    RootUserNotExist,
    /// Enabling auth while `root` lacks the `root` role.
    RootRoleNotExist,
    /// Adding a user that exists.
    UserAlreadyExist,
    /// A user name is empty, or a request carried no user while auth is on.
    UserEmpty,
    /// The user does not exist.
    UserNotFound,
    /// Adding a role that exists.
    RoleAlreadyExist,
    /// The role does not exist.
    RoleNotFound,
    /// A role name is empty.
    RoleEmpty,
    /// A grant without a permission.
    PermissionNotGiven,
    /// Wrong user or password.
    AuthFailed,
    /// A password given for a user without one.
    NoPasswordUser,
    /// The user may not do this.
    PermissionDenied,
    /// Revoking a role the user does not have.
    RoleNotGranted,
    /// Revoking a permission the role does not have.
    PermissionNotGranted,
    /// Authenticating while auth is off.
    AuthNotEnabled,
    /// The request was authorised under an older auth revision.
    AuthOldRevision,
    /// The token is unknown or expired.
    InvalidAuthToken,
    /// A change that would lock the administrator out, or a malformed permission.
    InvalidAuthMgmt,
}

impl AuthError {
    /// The gRPC code etcd answers with.
    pub fn code(self) -> Code {
        use AuthError::*;
        match self {
            UserEmpty | RoleEmpty | AuthFailed | PermissionNotGiven | InvalidAuthMgmt
            | AuthOldRevision => Code::InvalidArgument,
            PermissionDenied => Code::PermissionDenied,
            InvalidAuthToken => Code::Unauthenticated,
            // etcd 3.4 maps no gRPC error to this one: clients see it as Unknown.
            NoPasswordUser => Code::Unknown,
            RootUserNotExist | RootRoleNotExist | UserAlreadyExist | UserNotFound
            | RoleAlreadyExist | RoleNotFound | RoleNotGranted | PermissionNotGranted
            | AuthNotEnabled => Code::FailedPrecondition,
        }
    }

    /// etcd's message text, exactly.
    pub fn message(self) -> &'static str {
        use AuthError::*;
        match self {
            RootUserNotExist => "etcdserver: root user does not exist",
            RootRoleNotExist => "etcdserver: root user does not have root role",
            UserAlreadyExist => "etcdserver: user name already exists",
            UserEmpty => "etcdserver: user name is empty",
            UserNotFound => "etcdserver: user name not found",
            RoleAlreadyExist => "etcdserver: role name already exists",
            RoleNotFound => "etcdserver: role name not found",
            RoleEmpty => "etcdserver: role name is empty",
            PermissionNotGiven => "etcdserver: permission not given",
            AuthFailed => "etcdserver: authentication failed, invalid user ID or password",
            NoPasswordUser => {
                "auth: authentication failed, password was given for no password user"
            }
            PermissionDenied => "etcdserver: permission denied",
            RoleNotGranted => "etcdserver: role is not granted to the user",
            PermissionNotGranted => "etcdserver: permission is not granted to the role",
            AuthNotEnabled => "etcdserver: authentication is not enabled",
            AuthOldRevision => "etcdserver: revision of auth store is old",
            InvalidAuthToken => "etcdserver: invalid auth token",
            InvalidAuthMgmt => "etcdserver: invalid auth management",
        }
    }
}

impl AuthError {
    /// The text of etcd's auth package error, which a few etcd calls (Defragment,
    /// Snapshot, Hash, HashKV) return without converting it to its gRPC error: clients
    /// see code Unknown and this text.
    pub fn unconverted_message(self) -> &'static str {
        use AuthError::*;
        match self {
            RootUserNotExist => "auth: root user does not exist",
            RootRoleNotExist => "auth: root user does not have root role",
            UserAlreadyExist => "auth: user already exists",
            UserEmpty => "auth: user name is empty",
            UserNotFound => "auth: user not found",
            RoleAlreadyExist => "auth: role already exists",
            RoleNotFound => "auth: role not found",
            RoleEmpty => "auth: role name is empty",
            PermissionNotGiven => "auth: permission not given",
            AuthFailed => "auth: authentication failed, invalid user ID or password",
            NoPasswordUser => {
                "auth: authentication failed, password was given for no password user"
            }
            PermissionDenied => "auth: permission denied",
            RoleNotGranted => "auth: role is not granted to the user",
            PermissionNotGranted => "auth: permission is not granted to the role",
            AuthNotEnabled => "auth: authentication is not enabled",
            AuthOldRevision => "auth: revision in header is old",
            InvalidAuthToken => "auth: invalid auth token",
            InvalidAuthMgmt => "auth: invalid auth management",
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for AuthError {}

/// Who a request comes from, as the API layer established it: a user and the auth
/// revision it was authorised under. The default is "nobody" (no token).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    /// The user name; empty for nobody.
    pub user: String,
    /// The auth revision the token (or certificate) was checked at; 0 for nobody.
    pub revision: u64,
}

/// The auth state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth {
    pub(crate) enabled: bool,
    pub(crate) revision: u64,
    pub(crate) users: BTreeMap<String, User>,
    pub(crate) roles: BTreeMap<String, Role>,
}

impl Default for Auth {
    /// Off, no users, no roles, revision 1 (etcd commits revision 1 when it creates its
    /// auth store).
    fn default() -> Auth {
        Auth {
            enabled: false,
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
        }
    }
}

impl Auth {
    /// The state read from elsewhere (another system's database): as given, with each
    /// user's roles sorted and each role's permissions sorted by key.
    pub fn restore(
        enabled: bool,
        revision: u64,
        mut users: BTreeMap<String, User>,
        mut roles: BTreeMap<String, Role>,
    ) -> Auth {
        for user in users.values_mut() {
            user.roles.sort();
            user.roles.dedup();
        }
        for role in roles.values_mut() {
            role.perms.sort_by(|a, b| a.key.cmp(&b.key));
        }
        Auth {
            enabled,
            revision,
            users,
            roles,
        }
    }

    /// Whether auth is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The auth revision: bumped by every change but enabling.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The user called `name`.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// Every user's name, sorted.
    pub fn user_names(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// Every role's name, sorted.
    pub fn role_names(&self) -> Vec<String> {
        self.roles.keys().cloned().collect()
    }

    fn bump(&mut self) {
        self.revision += 1;
    }

    /// Turns auth on; a no-op when it is on. Needs `root` with the `root` role.
    pub fn enable(&mut self) -> Result<(), AuthError> {
        if self.enabled {
            return Ok(());
        }
        let root = self.users.get(ROOT).ok_or(AuthError::RootUserNotExist)?;
        if !has_root_role(root) {
            return Err(AuthError::RootRoleNotExist);
        }
        self.enabled = true;
        Ok(())
    }

    /// Turns auth off; a no-op when it is off.
    pub fn disable(&mut self) {
        if self.enabled {
            self.enabled = false;
            self.bump();
        }
    }

    /// Adds a user with the bcrypt hash `password` (empty with `no_password`).
    pub fn user_add(
        &mut self,
        name: &str,
        password: Vec<u8>,
        no_password: bool,
    ) -> Result<(), AuthError> {
        if name.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        if self.users.contains_key(name) {
            return Err(AuthError::UserAlreadyExist);
        }
        let password = if no_password { Vec::new() } else { password };
        let user = User {
            password,
            no_password,
            roles: Vec::new(),
        };
        self.users.insert(name.to_string(), user);
        self.bump();
        Ok(())
    }

    /// Deletes a user; `root` cannot be deleted while auth is on.
    pub fn user_delete(&mut self, name: &str) -> Result<(), AuthError> {
        if self.enabled && name == ROOT {
            return Err(AuthError::InvalidAuthMgmt);
        }
        self.users.remove(name).ok_or(AuthError::UserNotFound)?;
        self.bump();
        Ok(())
    }

    /// Replaces a user's password hash.
    pub fn user_change_password(&mut self, name: &str, password: Vec<u8>) -> Result<(), AuthError> {
        let user = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
        user.password = password;
        self.bump();
        Ok(())
    }

    /// Grants a role (which must exist, but for `root`); granting one the user has
    /// changes nothing.
    pub fn user_grant_role(&mut self, name: &str, role: &str) -> Result<(), AuthError> {
        if !self.users.contains_key(name) {
            return Err(AuthError::UserNotFound);
        }
        if role != ROOT && !self.roles.contains_key(role) {
            return Err(AuthError::RoleNotFound);
        }
        let user = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
        let Err(at) = user.roles.binary_search_by(|r| r.as_str().cmp(role)) else {
            return Ok(());
        };
        user.roles.insert(at, role.to_string());
        self.bump();
        Ok(())
    }

    /// Revokes a role; `root` keeps the `root` role while auth is on.
    pub fn user_revoke_role(&mut self, name: &str, role: &str) -> Result<(), AuthError> {
        if self.enabled && name == ROOT && role == ROOT {
            return Err(AuthError::InvalidAuthMgmt);
        }
        let user = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
        let at = user
            .roles
            .iter()
            .position(|r| r == role)
            .ok_or(AuthError::RoleNotGranted)?;
        user.roles.remove(at);
        self.bump();
        Ok(())
    }

    /// Adds a role without permissions.
    pub fn role_add(&mut self, name: &str) -> Result<(), AuthError> {
        if name.is_empty() {
            return Err(AuthError::RoleEmpty);
        }
        if self.roles.contains_key(name) {
            return Err(AuthError::RoleAlreadyExist);
        }
        self.roles.insert(name.to_string(), Role::default());
        self.bump();
        Ok(())
    }

    /// The role called `name`.
    pub fn role(&self, name: &str) -> Result<&Role, AuthError> {
        self.roles.get(name).ok_or(AuthError::RoleNotFound)
    }

    /// Deletes a role and takes it from every user; `root` stays while auth is on.
    pub fn role_delete(&mut self, name: &str) -> Result<(), AuthError> {
        if self.enabled && name == ROOT {
            return Err(AuthError::InvalidAuthMgmt);
        }
        self.roles.remove(name).ok_or(AuthError::RoleNotFound)?;
        for user in self.users.values_mut() {
            user.roles.retain(|r| r != name);
        }
        self.bump();
        Ok(())
    }

    /// Grants a permission; one on the same key and end replaces its kind.
    pub fn role_grant_permission(&mut self, name: &str, perm: Permission) -> Result<(), AuthError> {
        if !valid_permission_range(&perm.key, &perm.range_end) {
            return Err(AuthError::InvalidAuthMgmt);
        }
        let role = self.roles.get_mut(name).ok_or(AuthError::RoleNotFound)?;
        let same = |p: &&mut Permission| p.key == perm.key && p.range_end == perm.range_end;
        if let Some(existing) = role.perms.iter_mut().find(same) {
            existing.kind = perm.kind;
        } else {
            // Sorted by key; permissions on one key keep the order they were granted in.
            let at = role.perms.partition_point(|p| p.key <= perm.key);
            role.perms.insert(at, perm);
        }
        self.bump();
        Ok(())
    }

    /// Revokes the permission on exactly `key` and `range_end`.
    pub fn role_revoke_permission(
        &mut self,
        name: &str,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), AuthError> {
        let role = self.roles.get_mut(name).ok_or(AuthError::RoleNotFound)?;
        let before = role.perms.len();
        role.perms
            .retain(|p| p.key.as_slice() != key || p.range_end.as_slice() != range_end);
        if role.perms.len() == before {
            return Err(AuthError::PermissionNotGranted);
        }
        self.bump();
        Ok(())
    }

    /// Whether `caller` may do `wanted` on `key` (`range_end` empty) or on the range
    /// `[key, range_end)`. Everything is allowed while auth is off.
    pub fn check(
        &self,
        caller: &Caller,
        key: &[u8],
        range_end: &[u8],
        wanted: PermKind,
    ) -> Result<(), AuthError> {
        let Some(user) = self.authorised(caller)? else {
            return Ok(());
        };
        if has_root_role(user) || self.covers(user, key, range_end, wanted) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// Whether `caller` is an administrator (holds the `root` role); everyone is while
    /// auth is off.
    pub fn check_admin(&self, caller: &Caller) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        if caller.user.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        let user = self
            .users
            .get(&caller.user)
            .ok_or(AuthError::UserNotFound)?;
        if has_root_role(user) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// Whether `user` holds role `role` (a user may read its own roles' permissions).
    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    /// The caller's user if auth is on and the caller may be checked at all: none while
    /// auth is off; an error for nobody or an old revision; permission denied for a user
    /// that no longer exists.
    fn authorised(&self, caller: &Caller) -> Result<Option<&User>, AuthError> {
        if !self.enabled {
            return Ok(None);
        }
        if caller.revision == 0 {
            return Err(AuthError::UserEmpty);
        }
        if caller.revision < self.revision {
            return Err(AuthError::AuthOldRevision);
        }
        self.users
            .get(&caller.user)
            .map(Some)
            .ok_or(AuthError::PermissionDenied)
    }

    /// Whether the union of `user`'s permissions granting `wanted` covers the key or the
    /// whole range.
    fn covers(&self, user: &User, key: &[u8], range_end: &[u8], wanted: PermKind) -> bool {
        let mut spans: Vec<Span> = user
            .roles
            .iter()
            .filter_map(|name| self.roles.get(name))
            .flat_map(|role| role.perms.iter())
            .filter(|p| p.kind.grants(wanted))
            .map(Span::of_permission)
            .collect();
        spans.sort_by(|a, b| a.begin.cmp(&b.begin));
        let asked = Span::of_request(key, range_end);
        if asked.is_empty() {
            // An empty or inverted range reads nothing; still ask for its first key, so
            // that no request of a user without any permission is allowed.
            return spans.iter().any(|s| s.contains(key));
        }
        covered(&spans, &asked)
    }
}

/// Whether sorted `spans` cover `asked` without a gap.
fn covered(spans: &[Span], asked: &Span) -> bool {
    let mut reach = End::At(asked.begin.clone());
    for span in spans {
        if End::At(span.begin.clone()) > reach {
            break;
        }
        if span.end > reach {
            reach = span.end.clone();
        }
        if reach >= asked.end {
            return true;
        }
    }
    reach >= asked.end
}

fn has_root_role(user: &User) -> bool {
    user.roles.iter().any(|r| r == ROOT)
}

/// etcd's rule for a permission's range: a key, and an end that is empty (one key),
/// `[0]` (every key from `key` on) or above the key.
fn valid_permission_range(key: &[u8], range_end: &[u8]) -> bool {
    if key.is_empty() {
        return false;
    }
    range_end.is_empty() || range_end == [0] || key < range_end
}

/// The end of a half-open interval of keys; `Unbounded` sorts after every key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    At(Vec<u8>),
    Unbounded,
}

/// The keys `[begin, end)`.
#[derive(Clone, Debug)]
struct Span {
    begin: Vec<u8>,
    end: End,
}

impl Span {
    /// A permission's keys: one key is `[key, key\0)`, `[0]` means no end.
    fn of_permission(p: &Permission) -> Span {
        Span::of_request(&p.key, &p.range_end)
    }

    /// A request's keys, as a range request reads them.
    fn of_request(key: &[u8], range_end: &[u8]) -> Span {
        let end = match range_end {
            [] => {
                let mut next = key.to_vec();
                next.push(0);
                End::At(next)
            }
            [0] => End::Unbounded,
            end => End::At(end.to_vec()),
        };
        Span {
            begin: key.to_vec(),
            end,
        }
    }

    fn is_empty(&self) -> bool {
        End::At(self.begin.clone()) >= self.end
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.begin.as_slice() <= key && End::At(key.to_vec()) < self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(kind: PermKind, key: &str, end: &str) -> Permission {
        Permission {
            kind,
            key: key.as_bytes().to_vec(),
            range_end: end.as_bytes().to_vec(),
        }
    }

    /// Auth on with root, and user `u` holding role `r` with `perms`.
    fn state(perms: Vec<Permission>) -> (Auth, Caller) {
        let mut auth = Auth::default();
        auth.user_add(ROOT, b"h".to_vec(), false).unwrap();
        auth.user_grant_role(ROOT, ROOT).unwrap();
        auth.user_add("u", b"h".to_vec(), false).unwrap();
        auth.role_add("r").unwrap();
        for p in perms {
            auth.role_grant_permission("r", p).unwrap();
        }
        auth.user_grant_role("u", "r").unwrap();
        auth.enable().unwrap();
        let caller = Caller {
            user: "u".into(),
            revision: auth.revision(),
        };
        (auth, caller)
    }

    #[test]
    fn a_range_must_be_covered_whole_by_the_union_of_permissions() {
        let (auth, u) = state(vec![
            perm(PermKind::Read, "a", "c"),
            perm(PermKind::ReadWrite, "c", "e"),
            perm(PermKind::Write, "x", ""),
        ]);
        let read = |k: &str, e: &str| auth.check(&u, k.as_bytes(), e.as_bytes(), PermKind::Read);
        assert_eq!(read("a", "e"), Ok(()), "adjacent intervals join");
        assert_eq!(read("b", "d"), Ok(()));
        assert_eq!(read("a", "f"), Err(AuthError::PermissionDenied));
        assert_eq!(
            read("a", "\0"),
            Err(AuthError::PermissionDenied),
            "open end"
        );
        assert_eq!(
            read("x", ""),
            Err(AuthError::PermissionDenied),
            "write only"
        );
        let write = |k: &str, e: &str| auth.check(&u, k.as_bytes(), e.as_bytes(), PermKind::Write);
        assert_eq!(write("c", ""), Ok(()));
        assert_eq!(write("b", ""), Err(AuthError::PermissionDenied));
        assert_eq!(write("x", ""), Ok(()));
        assert_eq!(
            write("x", "y"),
            Err(AuthError::PermissionDenied),
            "one key is not a range"
        );
    }

    #[test]
    fn nobody_an_old_revision_and_a_deleted_user_are_refused() {
        let (mut auth, u) = state(vec![perm(PermKind::Read, "a", "")]);
        let nobody = Caller::default();
        assert_eq!(
            auth.check(&nobody, b"a", b"", PermKind::Read),
            Err(AuthError::UserEmpty)
        );
        auth.role_add("other").unwrap();
        assert_eq!(
            auth.check(&u, b"a", b"", PermKind::Read),
            Err(AuthError::AuthOldRevision)
        );
        auth.user_delete("u").unwrap();
        let fresh = Caller {
            revision: auth.revision(),
            ..u
        };
        assert_eq!(
            auth.check(&fresh, b"a", b"", PermKind::Read),
            Err(AuthError::PermissionDenied)
        );
    }

    #[test]
    fn root_keeps_its_user_and_role_while_auth_is_on() {
        let (mut auth, _) = state(vec![]);
        assert_eq!(auth.user_delete(ROOT), Err(AuthError::InvalidAuthMgmt));
        assert_eq!(auth.role_delete(ROOT), Err(AuthError::InvalidAuthMgmt));
        assert_eq!(
            auth.user_revoke_role(ROOT, ROOT),
            Err(AuthError::InvalidAuthMgmt)
        );
        auth.disable();
        assert_eq!(auth.user_revoke_role(ROOT, ROOT), Ok(()));
        assert_eq!(auth.enable(), Err(AuthError::RootRoleNotExist));
        auth.user_delete(ROOT).unwrap();
        assert_eq!(auth.enable(), Err(AuthError::RootUserNotExist));
    }

    #[test]
    fn which_changes_bump_the_revision() {
        let mut auth = Auth::default();
        assert_eq!(auth.revision(), 1);
        auth.user_add(ROOT, Vec::new(), false).unwrap();
        auth.user_grant_role(ROOT, ROOT).unwrap();
        assert_eq!(auth.revision(), 3);
        auth.user_grant_role(ROOT, ROOT).unwrap();
        assert_eq!(auth.revision(), 3, "a role granted twice changes nothing");
        auth.enable().unwrap();
        assert_eq!(auth.revision(), 3, "enabling does not bump");
        auth.disable();
        assert_eq!(auth.revision(), 4);
        assert_eq!(
            auth.user_add("", Vec::new(), false),
            Err(AuthError::UserEmpty)
        );
        assert_eq!(auth.revision(), 4, "a refused change does not bump");
    }

    #[test]
    fn a_permission_granted_again_changes_its_kind_and_revoke_needs_an_exact_match() {
        let (mut auth, _) = state(vec![perm(PermKind::Read, "k", "")]);
        auth.role_grant_permission("r", perm(PermKind::Write, "k", ""))
            .unwrap();
        assert_eq!(
            auth.role("r").unwrap().perms,
            vec![perm(PermKind::Write, "k", "")]
        );
        assert_eq!(
            auth.role_revoke_permission("r", b"k", b"l"),
            Err(AuthError::PermissionNotGranted)
        );
        assert_eq!(
            auth.role_grant_permission("r", perm(PermKind::Read, "b", "a")),
            Err(AuthError::InvalidAuthMgmt)
        );
        auth.role_revoke_permission("r", b"k", b"").unwrap();
        assert!(auth.role("r").unwrap().perms.is_empty());
    }
}
