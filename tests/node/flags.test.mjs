// posthog-node feature flags against the real `quill` binary: getFeatureFlag, isFeatureEnabled,
// getAllFlags and payloads, both remotely (/flags) and with local evaluation (personalApiKey,
// definitions from /flags/definitions or /api/feature_flag/local_evaluation).
//
// Run: node --test tests/node/   (scripts/sdk-tests.sh installs, builds and runs everything)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PostHog } from 'posthog-node';

const HERE = dirname(fileURLToPath(import.meta.url));
const QUILL_BIN = process.env.QUILL_BIN || join(resolve(HERE, '..', '..'), 'target', 'debug', 'quill');
const TOKEN = 'phc_flags_node_test_token_0123456789';
const PERSONAL_KEY = 'phx_flags_node_test_key_0123456789';

/** Starts `quill serve` on a free port; returns {url, stop()} (stop asserts exit 0). */
async function startQuill() {
  const dir = mkdtempSync(join(tmpdir(), 'quill-flags-node-'));
  const child = spawn(QUILL_BIN, ['serve', '--data-dir', join(dir, 'data'), '--bind', '127.0.0.1:0'], {
    env: { ...process.env, QUILL_PROJECT_TOKEN: TOKEN, QUILL_PERSONAL_API_KEY: PERSONAL_KEY, QUILL_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((res) => child.on('exit', (code) => res(code)));
  let output = '';
  child.stderr.on('data', (c) => (output += c));
  const url = await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`quill did not start:\n${output}`)), 30000);
    child.stdout.on('data', (chunk) => {
      output += chunk;
      const m = output.match(/Listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) {
        clearTimeout(timer);
        res(m[1]);
      }
    });
    child.on('error', rej);
  });
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      const code = await exited;
      rmSync(dir, { recursive: true, force: true });
      assert.equal(code, 0, `quill exited ${code}:\n${output}`);
    },
  };
}

async function api(quill, method, path, body) {
  const r = await fetch(`${quill.url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${PERSONAL_KEY}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

const FLAGS = [
  {
    key: 'pro-beta',
    name: 'Pro beta',
    active: true,
    filters: {
      groups: [{ properties: [{ key: 'plan', value: 'pro', operator: 'exact', type: 'person' }], rollout_percentage: 100 }],
      payloads: { true: JSON.stringify({ limit: 10 }) },
    },
  },
  {
    key: 'checkout',
    name: 'Checkout experiment',
    active: true,
    filters: {
      groups: [{ properties: [], rollout_percentage: 100 }],
      multivariate: { variants: [{ key: 'control', rollout_percentage: 50 }, { key: 'test', rollout_percentage: 50 }] },
      payloads: { test: JSON.stringify({ color: 'blue' }) },
    },
  },
  { key: 'off', name: 'Off', active: false, filters: { groups: [{ rollout_percentage: 100 }] } },
  {
    key: 'companies',
    name: 'Big companies',
    active: true,
    filters: {
      aggregation_group_type_index: 0,
      groups: [{ properties: [{ key: 'size', value: 100, operator: 'gte', type: 'group', group_type_index: 0 }], rollout_percentage: 100 }],
    },
  },
];

async function seed(quill) {
  for (const flag of FLAGS) {
    const r = await api(quill, 'POST', '/api/projects/1/feature_flags', flag);
    assert.equal(r.status, 201, JSON.stringify(r.json));
  }
  // A group type for the group flag: company → 0.
  const client = new PostHog(TOKEN, { host: quill.url, flushAt: 1, flushInterval: 0 });
  client.groupIdentify({ groupType: 'company', groupKey: 'acme', properties: { size: 500 } });
  await client.shutdown();
  for (let i = 0; i < 200; i++) {
    const r = await api(quill, 'GET', `/flags/definitions?token=${TOKEN}`);
    if (r.json.group_type_mapping['0'] === 'company') return;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error('group type never appeared');
}

/** Runs the same assertions against a client; `wire` collects the URLs it called. */
async function assertFlags(client) {
  const pro = { personProperties: { plan: 'pro' } };
  const free = { personProperties: { plan: 'free' } };
  assert.equal(await client.getFeatureFlag('pro-beta', 'user-1', pro), true);
  assert.equal(await client.getFeatureFlag('pro-beta', 'user-1', free), false);
  assert.equal(await client.isFeatureEnabled('pro-beta', 'user-1', pro), true);
  assert.equal(await client.isFeatureEnabled('pro-beta', 'user-1', free), false);
  assert.equal(await client.isFeatureEnabled('off', 'user-1'), false);
  assert.deepEqual(await client.getFeatureFlagPayload('pro-beta', 'user-1', true, pro), { limit: 10 });

  // Variants split by the SHA-1 hash: both show up over a few ids, each stable per id.
  const seen = new Set();
  for (let i = 0; i < 20; i++) {
    const v = await client.getFeatureFlag('checkout', `user-${i}`);
    assert.ok(v === 'control' || v === 'test', String(v));
    assert.equal(await client.getFeatureFlag('checkout', `user-${i}`), v);
    seen.add(v);
  }
  assert.deepEqual([...seen].sort(), ['control', 'test']);

  const groups = { groups: { company: 'acme' }, groupProperties: { company: { size: 500 } } };
  assert.equal(await client.getFeatureFlag('companies', 'user-1', groups), true);
  assert.equal(await client.getFeatureFlag('companies', 'user-1'), false);

  const all = await client.getAllFlags('user-3', { ...pro, ...groups });
  assert.equal(all['pro-beta'], true);
  assert.equal(all.off, false);
  assert.equal(all.companies, true);
  assert.ok(all.checkout === 'control' || all.checkout === 'test');
  return all;
}

function recordingClient(quill, wire, options = {}) {
  return new PostHog(TOKEN, {
    host: quill.url,
    flushAt: 1,
    flushInterval: 0,
    fetchRetryCount: 0,
    fetch: async (url, opts) => {
      const res = await fetch(url, opts);
      wire.push({ url: String(url), status: res.status });
      return res;
    },
    ...options,
  });
}

test('posthog-node flags: remote and local evaluation agree with Quill', async () => {
  const quill = await startQuill();
  try {
    await seed(quill);

    const remoteWire = [];
    const remote = recordingClient(quill, remoteWire);
    const remoteAll = await assertFlags(remote);
    await remote.shutdown();
    assert.ok(remoteWire.some((c) => c.url.includes('/flags')), JSON.stringify(remoteWire));
    for (const c of remoteWire) assert.equal(c.status, 200, c.url);

    const localWire = [];
    const local = recordingClient(quill, localWire, { personalApiKey: PERSONAL_KEY, featureFlagsPollingInterval: 600000 });
    await local.reloadFeatureFlags();
    const localAll = await assertFlags(local);
    // Locally, with onlyEvaluateLocally, nothing goes to /flags.
    assert.equal(await local.getFeatureFlag('pro-beta', 'u', { personProperties: { plan: 'pro' }, onlyEvaluateLocally: true }), true);
    await local.shutdown();
    assert.ok(localWire.some((c) => /local_evaluation|flags\/definitions/.test(c.url)), JSON.stringify(localWire));
    assert.ok(!localWire.some((c) => /\/flags\/?\?/.test(c.url)), JSON.stringify(localWire));
    assert.deepEqual(localAll, remoteAll);
  } finally {
    await quill.stop();
  }
});
