'use strict';
// The npm `etcd3` client's authentication API against a live cluster, the way etcd3's own
// auth tests (src/test/auth.test.ts in microsoft/etcd3, not shipped in the npm package)
// use it: roles and users managed through `client.role(…)` and `client.user(…)`, then
// password authentication with `new Etcd3({ auth: { username, password } })`, allowed
// and denied requests, and changes (a revoked permission, a revoked role, a new password,
// a deleted user) taking effect on clients already logged in.
//
//   ETCD3_TEST_HOSTS=https://127.0.0.1:2379,… ETCD3_TEST_CA=ca.pem \
//     ETCD3_TEST_CERT=client.pem ETCD3_TEST_KEY=client-key.pem \
//     NODE_PATH=…/node_modules node --test scripts/client-suites.d/etcd3-auth.test.js
//
// ETCD3_TEST_HOSTS: the members, comma separated (default http://127.0.0.1:2379). With
// ETCD3_TEST_CA every client connects over TLS trusting that CA, and presents
// ETCD3_TEST_CERT / ETCD3_TEST_KEY when given. scripts/client-suites runs it with etcd3
// 1.1.2 installed under target/client-suites/node.
//
// The cluster must start with authentication off and no users or roles; each test
// deletes the users and roles it made and the password tests turn authentication off
// again, so that the cluster is left as found.
const { describe, it, before, after, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const {
  Etcd3,
  Range,
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  EtcdRoleExistsError,
  EtcdRoleNotFoundError,
  EtcdRoleNotGrantedError,
  EtcdUserExistsError,
  EtcdUserNotFoundError,
} = require('etcd3');

const hosts = (process.env.ETCD3_TEST_HOSTS || 'http://127.0.0.1:2379').split(',');
const tls = process.env.ETCD3_TEST_CA
  ? {
      rootCertificate: fs.readFileSync(process.env.ETCD3_TEST_CA),
      ...(process.env.ETCD3_TEST_CERT && {
        certChain: fs.readFileSync(process.env.ETCD3_TEST_CERT),
        privateKey: fs.readFileSync(process.env.ETCD3_TEST_KEY),
      }),
    }
  : undefined;
const ROOT_PASSWORD = 'root-password';

/** etcd3's options for these hosts: TLS when asked, `auth` when given, and a deadline
 * on every unary call so that a server that does not answer fails the test instead of
 * hanging it. */
function options(auth) {
  return {
    hosts,
    dialTimeout: 5000,
    ...(tls && { credentials: tls }),
    ...(auth && { auth }),
    defaultCallOptions: context => (context.isStream ? {} : { deadline: Date.now() + 10000 }),
  };
}

const clients = [];
/** A client that the test's afterEach closes. */
function connect(auth) {
  const client = new Etcd3(options(auth));
  clients.push(client);
  return client;
}
const asRoot = () => connect({ username: 'root', password: ROOT_PASSWORD });

/** Deletes every user and role (authentication must be off, or `client` root). */
async function wipeAll(client) {
  for (const user of await client.getUsers()) await user.delete();
  for (const role of await client.getRoles()) await role.delete();
}

/**
 * `call()`, again while the member answers `etcdserver: revision of auth store is old`
 * (up to five times, a tenth of a second apart). etcd gives that answer to a request that
 * reached a member before it applied the latest auth change and was applied after it; its
 * Go client retries such requests, etcd3 1.1.2 throws them as GRPCInvalidArgumentError.
 * Each retry is noted in the test's output.
 */
async function afterAuthChange(t, call) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (attempt >= 5 || !/etcdserver: revision of auth store is old/.test(err.message)) throw err;
      t.diagnostic(`retried after: ${err.message}`);
      await new Promise(resolve => setTimeout(resolve, 100));
    }
  }
}

const names = list => list.map(x => x.name).sort();
const text = buffer => Buffer.from(buffer).toString();
/** A permission as plain values: { permission, start, end }. */
const plain = p => ({ permission: p.permission, start: text(p.range.start), end: text(p.range.end) });

describe('roles and auth', () => {
  let client;
  beforeEach(() => {
    client = connect();
  });
  afterEach(() => {
    while (clients.length > 0) clients.pop().close();
  });
  // Whatever happened, leave authentication off and nothing behind.
  after(async () => {
    const root = new Etcd3(options({ username: 'root', password: ROOT_PASSWORD }));
    await root.auth.authDisable().catch(() => {});
    root.close();
    const plainClient = new Etcd3(options());
    await wipeAll(plainClient).catch(() => {});
    plainClient.close();
  });

  describe('management', () => {
    afterEach(() => wipeAll(client));

    it('creates and deletes roles', async () => {
      const foo = await client.role('foo').create();
      assert.deepEqual(names(await client.getRoles()), ['foo']);
      await foo.delete();
      assert.deepEqual(names(await client.getRoles()), []);
    });

    it('throws on existing roles', async () => {
      await client.role('foo').create();
      await assert.rejects(client.role('foo').create(), EtcdRoleExistsError);
    });

    it('throws on deleting or granting to nonexistent roles', async () => {
      await assert.rejects(client.role('foo').delete(), EtcdRoleNotFoundError);
      await assert.rejects(
        client.role('foo').grant({ permission: 'Read', range: client.range({ prefix: '1' }) }),
        EtcdRoleNotFoundError,
      );
    });

    it('round trips permission grants', async () => {
      const foo = await client.role('foo').create();
      await foo.grant({ permission: 'Read', range: new Range('1', '2') });
      const perms = await foo.permissions();
      assert.deepEqual(perms.map(plain), [{ permission: 'Read', start: '1', end: '2' }]);
      await foo.revoke(perms[0]);
      assert.deepEqual(await foo.permissions(), []);
    });

    it('grants on a key, a range and a prefix, read, write and readwrite', async () => {
      const foo = await client.role('foo').create();
      await foo.grant({ permission: 'Write', key: 'k' });
      await foo.grant({ permission: 'Readwrite', range: client.range({ prefix: 'p/' }) });
      await foo.grant({ permission: 'Read', range: new Range('a', 'c') });
      assert.deepEqual((await foo.permissions()).map(plain), [
        { permission: 'Read', start: 'a', end: 'c' },
        { permission: 'Write', start: 'k', end: '' },
        { permission: 'Readwrite', start: 'p/', end: 'p0' },
      ]);
      await foo.revoke({ permission: 'Write', key: 'k' });
      assert.deepEqual((await foo.permissions()).map(plain), [
        { permission: 'Read', start: 'a', end: 'c' },
        { permission: 'Readwrite', start: 'p/', end: 'p0' },
      ]);
    });

    it('creates, lists and deletes users', async () => {
      const connor = await client.user('connor').create('password');
      await client.user('alice').create('password');
      assert.deepEqual(names(await client.getUsers()), ['alice', 'connor']);
      await assert.rejects(client.user('connor').create('again'), EtcdUserExistsError);
      await connor.delete();
      assert.deepEqual(names(await client.getUsers()), ['alice']);
      await assert.rejects(connor.delete(), EtcdUserNotFoundError);
      await assert.rejects(client.user('nobody').roles(), EtcdUserNotFoundError);
    });

    it('adds users to roles', async () => {
      const foo = await client.role('foo').create();
      const bar = await client.role('bar').create();
      const connor = await client.user('connor').create('password');
      await connor.addRole(foo);
      await bar.addUser(connor);
      assert.deepEqual(names(await connor.roles()), ['bar', 'foo']);
      await connor.removeRole(foo);
      assert.deepEqual(names(await connor.roles()), ['bar']);
      await bar.removeUser('connor');
      assert.deepEqual(await connor.roles(), []);
      await assert.rejects(connor.removeRole('bar'), EtcdRoleNotGrantedError);
      await assert.rejects(connor.addRole('nope'), EtcdRoleNotFoundError);
    });

    it('refuses to enable auth without a root user', async () => {
      await assert.rejects(client.auth.authEnable(), /etcdserver: root user does not exist/);
    });
  });

  describe('password auth', () => {
    beforeEach(async () => {
      await wipeAll(client);
      // A root user with the root role first, or etcd refuses to enable auth.
      const root = await client.user('root').create(ROOT_PASSWORD);
      await root.addRole('root');
      await client.user('connor').create('password');
      const rw = await client.role('rw_prefix_f').create();
      await rw.grant({ permission: 'Readwrite', range: client.range({ prefix: 'f' }) });
      await rw.addUser('connor');
      const ro = await client.role('read_r').create();
      await ro.grant({ permission: 'Read', key: 'r' });
      await ro.addUser('connor');
      await client.put('r').value('read me');
      await client.auth.authEnable();
    });

    afterEach(async () => {
      const root = asRoot();
      await root.auth.authDisable();
      await wipeAll(client);
      await client.delete().all();
    });

    it('allows authentication using the correct credentials', async () => {
      const connor = connect({ username: 'connor', password: 'password' });
      await connor.put('foo').value('bar');
      assert.equal(await connor.get('foo').string(), 'bar');
      assert.equal(await connor.get('r').string(), 'read me');
      assert.deepEqual(await connor.getAll().prefix('f').strings(), { foo: 'bar' });
    });

    it('rejects modifying things outside permission', async () => {
      const connor = connect({ username: 'connor', password: 'password' });
      await assert.rejects(connor.put('wut').value('bar').exec(), EtcdPermissionDeniedError);
      await assert.rejects(connor.get('wut').exec(), EtcdPermissionDeniedError);
      await assert.rejects(connor.put('r').value('no').exec(), EtcdPermissionDeniedError);
      await assert.rejects(connor.delete().key('r').exec(), EtcdPermissionDeniedError);
      // A range wider than the prefix is not covered by it.
      await assert.rejects(connor.getAll().prefix('').keys(), EtcdPermissionDeniedError);
      // User and role management is root's.
      await assert.rejects(connor.getUsers(), EtcdPermissionDeniedError);
      await assert.rejects(connor.user('mallory').create('x'), EtcdPermissionDeniedError);
    });

    it('throws when using incorrect credentials', async () => {
      const wrong = connect({ username: 'connor', password: 'bad password' });
      await assert.rejects(wrong.put('foo').value('bar').exec(), EtcdAuthenticationFailedError);
      const unknown = connect({ username: 'nobody', password: 'password' });
      await assert.rejects(unknown.get('foo').exec(), EtcdAuthenticationFailedError);
    });

    it('automatically retrieves a new token if the existing one is invalid', async () => {
      const connor = connect({ username: 'connor', password: 'password' });
      const authenticator = connor.pool.authenticator;
      const { Metadata } = require('@grpc/grpc-js');
      const bad = new Metadata();
      bad.add('token', 'lol');
      authenticator.awaitingMetadata = Promise.resolve(bad);
      await connor.put('foo').value('bar'); // refused as an invalid token, then retried
      const renewed = await authenticator.awaitingMetadata;
      assert.notDeepEqual(renewed.get('token'), bad.get('token'));
      assert.equal(await connor.get('foo').string(), 'bar');
    });

    it('lists and gets users and roles as root', async () => {
      const root = asRoot();
      assert.deepEqual(names(await root.getUsers()), ['connor', 'root']);
      assert.deepEqual(names(await root.getRoles()), ['read_r', 'rw_prefix_f']);
      assert.deepEqual(names(await root.user('connor').roles()), ['read_r', 'rw_prefix_f']);
      assert.deepEqual(names(await root.user('root').roles()), ['root']);
      assert.deepEqual((await root.role('rw_prefix_f').permissions()).map(plain), [
        { permission: 'Readwrite', start: 'f', end: 'g' },
      ]);
      // root may do anything.
      await root.put('wut').value('root was here');
      assert.equal(await root.get('wut').string(), 'root was here');
    });

    it('sees a revoked permission take effect', async t => {
      const root = asRoot();
      const connor = connect({ username: 'connor', password: 'password' });
      const again = call => afterAuthChange(t, call);
      await connor.put('f1').value('1');
      await root.role('rw_prefix_f').revoke({ permission: 'Readwrite', range: client.range({ prefix: 'f' }) });
      assert.deepEqual(await root.role('rw_prefix_f').permissions(), []);
      await assert.rejects(again(() => connor.put('f1').value('2').exec()), EtcdPermissionDeniedError);
      await assert.rejects(again(() => connor.get('f1').exec()), EtcdPermissionDeniedError);
      assert.equal(await again(() => connor.get('r').string()), 'read me', 'its other role still holds');
      // Granted again, it works again.
      await root.role('rw_prefix_f').grant({ permission: 'Write', range: client.range({ prefix: 'f' }) });
      await again(() => connor.put('f1').value('3').exec());
      await assert.rejects(again(() => connor.get('f1').exec()), EtcdPermissionDeniedError);
      assert.equal(await root.get('f1').string(), '3');
    });

    it('sees a revoked role take effect', async t => {
      const root = asRoot();
      const connor = connect({ username: 'connor', password: 'password' });
      const again = call => afterAuthChange(t, call);
      assert.equal(await connor.get('r').string(), 'read me');
      await root.user('connor').removeRole('read_r');
      await assert.rejects(again(() => connor.get('r').exec()), EtcdPermissionDeniedError);
      await again(() => connor.put('f2').value('still allowed').exec());
    });

    it('changes a password', async t => {
      const root = asRoot();
      const connor = connect({ username: 'connor', password: 'password' });
      const again = call => afterAuthChange(t, call);
      await connor.put('f3').value('before');
      await root.user('connor').setPassword('new password');
      // The old token is dropped with the old password: logging in again fails.
      await assert.rejects(
        again(() => connor.put('f3').value('after').exec()),
        EtcdAuthenticationFailedError,
      );
      const old = connect({ username: 'connor', password: 'password' });
      await assert.rejects(old.get('f3').exec(), EtcdAuthenticationFailedError);
      const renewed = connect({ username: 'connor', password: 'new password' });
      await renewed.put('f3').value('after');
      assert.equal(await renewed.get('f3').string(), 'after');
    });

    it('deletes a user', async t => {
      const root = asRoot();
      const connor = connect({ username: 'connor', password: 'password' });
      const again = call => afterAuthChange(t, call);
      await connor.put('f4').value('1');
      await root.user('connor').delete();
      assert.deepEqual(names(await root.getUsers()), ['root']);
      await assert.rejects(
        again(() => connor.put('f4').value('2').exec()),
        EtcdAuthenticationFailedError,
      );
      await assert.rejects(root.user('connor').roles(), EtcdUserNotFoundError);
    });

    it('keeps root and its role while auth is on', async () => {
      const root = asRoot();
      await assert.rejects(root.user('root').delete(), /etcdserver: invalid auth management/);
      await assert.rejects(root.user('root').removeRole('root'), /etcdserver: invalid auth management/);
    });

    if (tls && tls.certChain) {
      // With client certificates required, a request without a token is the user the
      // certificate names; scripts/client-suites' client certificate says CN=root.
      it('takes the user from the client certificate without a password', async () => {
        assert.deepEqual(names(await client.getUsers()), ['connor', 'root']);
      });
    } else {
      it('refuses requests without a token', async () => {
        await assert.rejects(client.get('r').exec(), /etcdserver: user name is empty/);
      });
    }

    it('disables auth', async () => {
      const root = asRoot();
      await root.auth.authDisable();
      const anyone = connect();
      await anyone.put('wut').value('anyone');
      assert.equal(await anyone.get('wut').string(), 'anyone');
      await anyone.auth.authEnable(); // for afterEach, which disables it
    });
  });
});
