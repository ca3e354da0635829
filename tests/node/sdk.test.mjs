// End-to-end tests: the real `quill` binary driven by the real posthog-node SDK.
//
// Each test starts its own server on 127.0.0.1 (a port the OS picks, read back from the
// server's "Listening on" line) with a fresh data directory and a seeded project token and
// personal API key, and stops it with SIGTERM, asserting a clean exit 0, even when the test
// fails. The binary is $QUILL_BIN, by default <repo>/target/debug/quill.
//
// Run: node --test tests/node/   (scripts/sdk-tests.sh installs, builds and runs everything)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { randomUUID } from 'node:crypto';
import { PostHog } from 'posthog-node';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');
const QUILL_BIN = process.env.QUILL_BIN || join(REPO, 'target', 'debug', 'quill');
const TOKEN = 'phc_sdk_node_test_token_0123456789';
const PERSONAL_KEY = 'phx_sdk_node_test_key_0123456789';
const SDK_VERSION = JSON.parse(
  readFileSync(join(HERE, 'node_modules', 'posthog-node', 'package.json'), 'utf8'),
).version;

const running = new Set();
process.on('exit', () => {
  // last resort: never leave a server behind
  for (const child of running) child.kill('SIGKILL');
});

class Quill {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'quill-node-'));
    this.dataDir = join(this.dir, 'data');
    this.output = '';
  }

  async start() {
    this.output = '';
    const child = spawn(QUILL_BIN, ['serve', '--data-dir', this.dataDir, '--bind', '127.0.0.1:0'], {
      env: {
        ...process.env,
        QUILL_PROJECT_TOKEN: TOKEN,
        QUILL_PERSONAL_API_KEY: PERSONAL_KEY,
        RUST_LOG: process.env.RUST_LOG || 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    running.add(child);
    this.exited = new Promise((res) => {
      child.on('exit', (code, signal) => {
        running.delete(child);
        res({ code, signal });
      });
      // spawning failed (say, no binary): there will be no 'exit'
      child.on('error', (error) => {
        running.delete(child);
        res({ code: null, signal: null, error });
      });
    });
    const onData = (chunk) => {
      this.output = (this.output + chunk.toString()).slice(-20000);
    };
    child.stderr.on('data', onData);
    this.url = await new Promise((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`quill did not start:\n${this.output}`)), 30000);
      let buffered = '';
      child.stdout.on('data', (chunk) => {
        onData(chunk);
        buffered += chunk.toString();
        const m = buffered.match(/Listening on (http:\/\/127\.0\.0\.1:\d+)/);
        if (m) {
          clearTimeout(timer);
          res(m[1]);
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        rej(new Error(`quill exited early with ${code}:\n${this.output}`));
      });
      child.on('error', (e) => {
        clearTimeout(timer);
        rej(e);
      });
    });
    for (let i = 0; i < 300; i++) {
      try {
        if ((await fetch(`${this.url}/_readiness`)).status === 200) return;
      } catch {}
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`quill never became ready:\n${this.output}`);
  }

  /** SIGTERM and wait; SIGKILL (and report it) after 20 s. Returns the exit code. */
  async stop() {
    if (!this.child) return null;
    if (this.child.exitCode !== null || this.child.signalCode !== null || !running.has(this.child)) {
      return (await this.exited).code;
    }
    this.child.kill('SIGTERM');
    let timer;
    const timeout = new Promise((r) => (timer = setTimeout(() => r('timeout'), 20000)));
    const result = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (result === 'timeout') {
      this.child.kill('SIGKILL');
      await this.exited;
      throw new Error(`quill ignored SIGTERM for 20s:\n${this.output}`);
    }
    return result.code;
  }

  cleanup() {
    rmSync(this.dir, { recursive: true, force: true });
  }

  async api(path, params = {}) {
    const qs = new URLSearchParams(params).toString();
    return this.getJson(`${this.url}/api/projects/1${path}${qs ? `?${qs}` : ''}`);
  }

  async getJson(url) {
    const r = await fetch(url, { headers: { Authorization: `Bearer ${PERSONAL_KEY}` } });
    const text = await r.text();
    assert.equal(r.status, 200, `GET ${url}: ${r.status} ${text}`);
    return JSON.parse(text);
  }

  /** Every matching event, following `next` (newest first). */
  async events(params = {}) {
    let page = await this.api('/events', params);
    const out = [...page.results];
    for (let n = 0; page.next; n++) {
      assert.ok(n < 100, 'runaway pagination');
      page = await this.getJson(page.next);
      out.push(...page.results);
    }
    return out;
  }

  async person(distinctId) {
    const { results } = await this.api('/persons', { distinct_id: distinctId });
    assert.ok(results.length <= 1, JSON.stringify(results));
    return results[0] ?? null;
  }

  async persons() {
    return (await this.api('/persons', { limit: '10000' })).results;
  }
}

/** A test with its own server, stopped (exit 0 asserted) whether the body passes or not. */
function quillTest(name, body) {
  test(name, async (t) => {
    const quill = new Quill();
    let failure = null;
    try {
      await quill.start();
      await body(quill, t);
    } catch (e) {
      failure = e;
    }
    let code;
    try {
      code = await quill.stop();
    } catch (e) {
      failure ??= e;
    }
    const logs = quill.output;
    quill.cleanup();
    if (failure) {
      if (process.env.QUILL_TEST_LOGS) console.error(logs);
      throw failure;
    }
    assert.equal(code, 0, `quill exited ${code} on SIGTERM:\n${logs}`);
  });
}

/** A posthog-node client that records every request it made and every error it reported. */
function makeClient(quill, options = {}) {
  const wire = [];
  const errors = [];
  const client = new PostHog(TOKEN, {
    host: quill.url,
    flushAt: 1,
    flushInterval: 0,
    fetchRetryCount: 0,
    requestTimeout: 15000,
    fetch: async (url, opts) => {
      const res = await fetch(url, opts);
      wire.push({
        url,
        encoding: opts.headers?.['Content-Encoding'] ?? null,
        status: res.status,
        text: res.status === 200 ? '' : await res.clone().text(),
      });
      return res;
    },
    ...options,
  });
  client.on('error', (e) => errors.push(e));
  return {
    client,
    wire,
    errors,
    assertClean() {
      assert.deepEqual(errors, [], `SDK errors: ${errors.map(String).join('; ')}`);
      assert.ok(wire.length > 0, 'the SDK sent nothing');
      for (const call of wire) {
        assert.ok(call.url.startsWith(quill.url), call.url);
        assert.equal(call.status, 200, `${call.url} -> ${call.status} ${call.text}`);
      }
    },
  };
}

function byEvent(events) {
  const out = {};
  for (const e of events) (out[e.event] ??= []).push(e);
  return out;
}

const sorted = (xs) => [...xs].sort();

// ------------------------------------------------------------------------------------------

for (const [label, disableCompression] of [
  ['gzip (default)', false],
  ['uncompressed', true],
]) {
  quillTest(`capture round-trips properties, ${label}`, async (quill) => {
    const { client, wire, assertClean } = makeClient(quill, { disableCompression });
    const uuids = [];
    for (let i = 0; i < 5; i++) {
      const uuid = randomUUID();
      uuids.push(uuid);
      client.capture({
        distinctId: 'buyer-1',
        event: 'purchase',
        uuid,
        properties: {
          i,
          price: 9.99,
          currency: 'EUR',
          tags: ['a', 'b'],
          nested: { deep: { ok: true, none: null } },
          unicode: 'héllo ✓ 漢字',
        },
      });
    }
    client.capture({ distinctId: 'buyer-1', event: '$pageview', properties: { $current_url: 'https://x.test/p' } });
    await client.shutdown();
    assertClean();
    const batches = wire.filter((c) => c.url.endsWith('/batch/'));
    assert.ok(batches.length >= 1);
    for (const c of batches) assert.equal(c.encoding, disableCompression ? null : 'gzip');

    const events = await quill.events({ distinct_id: 'buyer-1' });
    const names = byEvent(events);
    assert.deepEqual(sorted(Object.keys(names)), ['$pageview', 'purchase']);
    assert.equal(names.purchase.length, 5);
    assert.deepEqual(sorted(names.purchase.map((e) => e.uuid)), sorted(uuids));
    for (const e of names.purchase) {
      const p = e.properties;
      assert.equal(e.distinct_id, 'buyer-1');
      assert.equal(e.id, e.uuid);
      assert.equal(p.price, 9.99);
      assert.equal(p.currency, 'EUR');
      assert.deepEqual(p.tags, ['a', 'b']);
      assert.deepEqual(p.nested, { deep: { ok: true, none: null } });
      assert.equal(p.unicode, 'héllo ✓ 漢字');
      assert.equal(p.$lib, 'posthog-node');
      assert.equal(p.$lib_version, SDK_VERSION);
    }
    assert.deepEqual(names.purchase.map((e) => e.properties.i).sort(), [0, 1, 2, 3, 4]);
    assert.equal(names.$pageview[0].properties.$current_url, 'https://x.test/p');
    const stamps = events.map((e) => e.timestamp);
    assert.deepEqual(stamps, [...stamps].sort().reverse());

    const person = await quill.person('buyer-1');
    assert.ok(person);
    assert.deepEqual(person.distinct_ids, ['buyer-1']);
    assert.equal(person.is_identified, false);
    for (const e of events) assert.equal(e.person_id, person.uuid);
    assert.equal((await quill.events({ event: 'purchase' })).length, 5);
  });
}

quillTest('identify with $set/$set_once merges the anonymous person', async (quill) => {
  const { client, assertClean } = makeClient(quill);
  client.capture({ distinctId: 'anon-1', event: '$pageview', properties: { $set_once: { first_url: '/landing' } } });
  client.capture({ distinctId: 'anon-1', event: 'clicked', properties: { button: 'signup' } });
  client.capture({ distinctId: 'user-1', event: 'server_side' });
  await client.flush();
  client.identify({
    distinctId: 'user-1',
    properties: {
      $set: { email: 'u1@example.com', name: 'User One' },
      $set_once: { signup_source: 'ads' },
      $anon_distinct_id: 'anon-1',
    },
  });
  await client.flush();
  client.identify({ distinctId: 'user-1', properties: { $set_once: { signup_source: 'ignored' }, $set: { name: 'U. One' } } });
  client.capture({ distinctId: 'user-1', event: 'after_login' });
  await client.shutdown();
  assertClean();

  const person = await quill.person('user-1');
  assert.ok(person);
  assert.deepEqual(sorted(person.distinct_ids), ['anon-1', 'user-1']);
  assert.equal(person.is_identified, true);
  assert.equal(person.properties.email, 'u1@example.com');
  assert.equal(person.properties.name, 'U. One');
  assert.equal(person.properties.signup_source, 'ads');
  assert.equal(person.properties.first_url, '/landing');
  assert.equal((await quill.person('anon-1')).uuid, person.uuid);
  assert.equal((await quill.persons()).length, 1);

  const events = await quill.events({ person_id: person.uuid });
  assert.deepEqual(
    sorted(events.map((e) => e.event)),
    sorted(['$pageview', 'clicked', 'server_side', '$identify', '$identify', 'after_login']),
  );
  for (const e of events) assert.equal(e.person_id, person.uuid);
  const identify = byEvent(events).$identify.find((e) => e.properties.$anon_distinct_id === 'anon-1');
  assert.ok(identify);
  assert.equal(identify.distinct_id, 'user-1');
  assert.deepEqual(identify.properties.$set, { email: 'u1@example.com', name: 'User One' });
  assert.deepEqual(identify.properties.$set_once, { signup_source: 'ads' });
  assert.deepEqual(byEvent(events).clicked.map((e) => e.distinct_id), ['anon-1']);
});

quillTest('identify never merges two identified persons; $merge_dangerously does', async (quill) => {
  const { client, assertClean } = makeClient(quill, { disableCompression: true });
  for (const n of ['a', 'b']) {
    client.identify({ distinctId: `user-${n}`, properties: { $anon_distinct_id: `anon-${n}`, $set: { who: n } } });
  }
  await client.flush();
  client.identify({ distinctId: 'user-a', properties: { $anon_distinct_id: 'user-b' } });
  client.alias({ distinctId: 'user-a', alias: 'user-b' });
  await client.flush();
  const a = await quill.person('user-a');
  const b = await quill.person('user-b');
  assert.deepEqual(sorted(a.distinct_ids), ['anon-a', 'user-a']);
  assert.deepEqual(sorted(b.distinct_ids), ['anon-b', 'user-b']);
  assert.notEqual(a.uuid, b.uuid);
  assert.equal(a.is_identified && b.is_identified, true);

  client.capture({ distinctId: 'user-a', event: '$merge_dangerously', properties: { alias: 'user-b' } });
  await client.shutdown();
  assertClean();
  const merged = await quill.person('user-a');
  assert.deepEqual(sorted(merged.distinct_ids), ['anon-a', 'anon-b', 'user-a', 'user-b']);
  assert.equal(merged.properties.who, 'a');
  assert.equal((await quill.person('user-b')).uuid, merged.uuid);
  assert.equal((await quill.persons()).length, 1);
});

quillTest('alias links two anonymous ids into one person', async (quill) => {
  const { client, assertClean } = makeClient(quill);
  client.capture({ distinctId: 'device-42', event: 'visited', properties: { $set: { os: 'linux' } } });
  client.capture({ distinctId: 'account-7', event: 'logged_in', properties: { $set: { plan: 'team' } } });
  await client.flush();
  client.alias({ distinctId: 'account-7', alias: 'device-42' });
  await client.flush();
  client.capture({ distinctId: 'device-42', event: 'after_alias' });
  client.alias({ distinctId: 'account-7', alias: 'never-seen-before' });
  await client.shutdown();
  assertClean();

  const aliases = byEvent(await quill.events()).$create_alias;
  assert.equal(aliases.length, 2);
  for (const e of aliases) {
    assert.equal(e.distinct_id, 'account-7');
    assert.equal(e.properties.distinct_id, 'account-7');
  }
  assert.deepEqual(sorted(aliases.map((e) => e.properties.alias)), ['device-42', 'never-seen-before']);

  const person = await quill.person('account-7');
  assert.deepEqual(sorted(person.distinct_ids), ['account-7', 'device-42', 'never-seen-before']);
  assert.equal(person.properties.os, 'linux');
  assert.equal(person.properties.plan, 'team');
  assert.equal(person.is_identified, true);
  assert.equal((await quill.person('device-42')).uuid, person.uuid);
  assert.equal((await quill.person('never-seen-before')).uuid, person.uuid);
  assert.equal((await quill.persons()).length, 1);
  assert.deepEqual(
    sorted((await quill.events({ person_id: person.uuid })).map((e) => e.event)),
    sorted(['visited', 'logged_in', '$create_alias', '$create_alias', 'after_alias']),
  );
});

quillTest('$set, $set_once and $unset on capture update the person in order', async (quill) => {
  const { client, assertClean } = makeClient(quill);
  const steps = [
    { $set: { plan: 'free', seats: 1 } },
    { $set_once: { first_plan: 'free', plan: 'ignored' } },
    { $set: { plan: 'pro', seats: 5, temp: true } },
    { $set_once: { first_plan: 'pro' } },
    { $unset: ['temp'] },
  ];
  for (const [i, properties] of steps.entries()) {
    client.capture({ distinctId: 'p-1', event: `step-${i}`, properties });
    await client.flush();
  }
  await client.shutdown();
  assertClean();
  const person = await quill.person('p-1');
  const props = Object.fromEntries(Object.entries(person.properties).filter(([k]) => !k.startsWith('$')));
  assert.deepEqual(props, { plan: 'pro', seats: 5, first_plan: 'free' });
  const events = await quill.events({ distinct_id: 'p-1' });
  assert.deepEqual(events.map((e) => e.event).reverse(), steps.map((_, i) => `step-${i}`));
});

quillTest('groupIdentify is stored and grouped captures carry $groups', async (quill) => {
  const { client, assertClean } = makeClient(quill);
  client.groupIdentify({ groupType: 'company', groupKey: 'acme', properties: { name: 'Acme Inc', employees: 11 }, distinctId: 'g-user' });
  client.groupIdentify({ groupType: 'project', groupKey: 'p-9' }); // no distinct id: the SDK uses $project_p-9
  client.capture({ distinctId: 'g-user', event: 'report_viewed', groups: { company: 'acme' } });
  await client.shutdown();
  assertClean();

  const events = byEvent(await quill.events());
  const gis = events.$groupidentify;
  assert.equal(gis.length, 2);
  const acme = gis.find((e) => e.properties.$group_key === 'acme');
  assert.equal(acme.distinct_id, 'g-user');
  assert.equal(acme.properties.$group_type, 'company');
  assert.deepEqual(acme.properties.$group_set, { name: 'Acme Inc', employees: 11 });
  const p9 = gis.find((e) => e.properties.$group_key === 'p-9');
  assert.equal(p9.distinct_id, '$project_p-9');
  assert.equal(p9.properties.$group_type, 'project');
  assert.deepEqual(events.report_viewed[0].properties.$groups, { company: 'acme' });
  assert.ok(await quill.person('g-user'));
});

quillTest('$process_person_profile: false stores the event but no person', async (quill) => {
  const { client, assertClean } = makeClient(quill);
  client.capture({
    distinctId: 'ghost-1',
    event: 'personless',
    properties: { $process_person_profile: false, $set: { should: 'not apply' } },
  });
  // the SDK marks an event without a distinct id as personless itself
  client.capture({ event: 'anonymous_server_event', properties: { k: 'v' } });
  client.capture({ distinctId: 'real-1', event: 'personful' });
  await client.shutdown();
  assertClean();

  const ghost = await quill.events({ distinct_id: 'ghost-1' });
  assert.deepEqual(ghost.map((e) => e.event), ['personless']);
  assert.equal(ghost[0].properties.$process_person_profile, false);
  assert.equal(ghost[0].person_id, null);
  assert.equal(await quill.person('ghost-1'), null);
  const anon = byEvent(await quill.events()).anonymous_server_event;
  assert.equal(anon.length, 1);
  assert.equal(anon[0].properties.$process_person_profile, false);
  assert.equal(await quill.person(anon[0].distinct_id), null);
  assert.deepEqual((await quill.persons()).map((p) => p.distinct_ids), [['real-1']]);
});

quillTest('a batch with one invalid event is refused whole', async (quill) => {
  const good = { event: 'ok_event', distinct_id: 'batch-user', properties: { n: 1 } };
  const post = (body, headers = {}) =>
    fetch(`${quill.url}/batch/`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body });
  let r = await post(JSON.stringify({ api_key: TOKEN, batch: [good, { event: 'bad', properties: {} }, good] }));
  assert.equal(r.status, 400);
  const body = await r.json();
  assert.equal(body.index, 1);
  assert.equal(body.attr, 'distinct_id');
  r = await post(
    gzipSync(JSON.stringify({ api_key: TOKEN, batch: [good, good, { event: 'x', distinct_id: 'y', uuid: 'not-a-uuid' }] })),
    { 'Content-Encoding': 'gzip' },
  );
  assert.equal(r.status, 400);
  assert.equal((await r.json()).index, 2);
  assert.deepEqual(await quill.events(), []);
  assert.deepEqual(await quill.persons(), []);

  r = await post(JSON.stringify({ api_key: TOKEN, batch: [good, good] }));
  assert.equal(r.status, 200);
  assert.deepEqual((await quill.events()).map((e) => e.event), ['ok_event', 'ok_event']);
});

quillTest('historical timestamps survive the sent_at clock-skew correction', async (quill) => {
  const { client, assertClean } = makeClient(quill);
  const when = new Date('2024-02-29T12:34:56.789Z');
  client.capture({ distinctId: 'time-user', event: 'back_then', timestamp: when });
  client.capture({ distinctId: 'time-user', event: 'now_ish' });
  await client.shutdown();
  assertClean();
  const events = byEvent(await quill.events({ distinct_id: 'time-user' }));
  const stored = new Date(events.back_then[0].timestamp);
  assert.ok(Math.abs(stored - when) < 5000, `${stored.toISOString()} vs ${when.toISOString()}`);
  assert.ok(Math.abs(new Date(events.now_ish[0].timestamp) - Date.now()) < 120000);
  const before = await quill.events({ distinct_id: 'time-user', before: '2024-03-01T00:00:00Z' });
  assert.deepEqual(before.map((e) => e.event), ['back_then']);
});

quillTest('many events over a restart: pagination and durability', async (quill) => {
  const { client, assertClean } = makeClient(quill, { flushAt: 20, flushInterval: 10000 });
  const uuids = [];
  for (let n = 0; n < 45; n++) {
    const uuid = randomUUID();
    uuids.push(uuid);
    client.capture({ distinctId: 'pager', event: 'tick', uuid, properties: { n } });
  }
  await client.shutdown();
  assertClean();
  const first = await quill.api('/events', { distinct_id: 'pager', limit: '10' });
  assert.equal(first.results.length, 10);
  assert.ok(first.next);
  const all = await quill.events({ distinct_id: 'pager', limit: '10' });
  assert.deepEqual(sorted(all.map((e) => e.uuid)), sorted(uuids));

  assert.equal(await quill.stop(), 0, quill.output);
  await quill.start();
  const again = await quill.events({ distinct_id: 'pager' });
  assert.deepEqual(sorted(again.map((e) => e.uuid)), sorted(uuids));
  assert.deepEqual((await quill.person('pager')).distinct_ids, ['pager']);
});

quillTest('*Immediate APIs are readable as soon as they resolve', async (quill) => {
  const { client, assertClean } = makeClient(quill, { flushAt: 100, flushInterval: 60000 });
  await client.captureImmediate({ distinctId: 'imm-anon', event: 'first', properties: { a: 1 } });
  assert.deepEqual((await quill.events({ distinct_id: 'imm-anon' })).map((e) => e.event), ['first']);
  await client.identifyImmediate({
    distinctId: 'imm-user',
    properties: { $set: { email: 'i@example.com' }, $anon_distinct_id: 'imm-anon' },
  });
  const person = await quill.person('imm-user');
  assert.deepEqual(sorted(person.distinct_ids), ['imm-anon', 'imm-user']);
  assert.equal(person.properties.email, 'i@example.com');
  await client.aliasImmediate({ distinctId: 'imm-user', alias: 'imm-alias' });
  assert.equal((await quill.person('imm-alias')).uuid, person.uuid);
  await client.groupIdentifyImmediate({ groupType: 'org', groupKey: 'o1', properties: { tier: 'gold' }, distinctId: 'imm-user' });
  const gi = await quill.events({ event: '$groupidentify' });
  assert.equal(gi.length, 1);
  assert.deepEqual(gi[0].properties.$group_set, { tier: 'gold' });
  await client.shutdown();
  assertClean();
  assert.equal((await quill.events({ person_id: person.uuid })).length, 4);
});
