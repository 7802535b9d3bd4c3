// Shared helpers of the browser tests: the CLI and server of a Renkei instance on a frozen
// clock, TOTP for second-factor enrolment, login journeys, and page helpers for playwright-core
// driving Debian's Chromium.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));
export const FIXED_CLOCK = '2026-11-21T00:00:00Z';
export const FIXED_UNIX = Math.floor(Date.parse(FIXED_CLOCK) / 1000);
export const DEFAULT_TIMEOUT_MS = 15_000;

// ---------------------------------------------------------------- TOTP (RFC 6238)

/** Decodes RFC 4648 Base32 (case-insensitive; padding and whitespace ignored). */
export function base32Decode(input) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const clean = input.toUpperCase().replace(/[\s=]/g, '');
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of clean) {
    const idx = alphabet.indexOf(ch);
    if (idx < 0) throw new Error(`invalid Base32 character ${JSON.stringify(ch)}`);
    value = (value << 5) | idx;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/** TOTP code (HMAC-SHA1, 30 s step, 6 digits) for `secret` (Base32) at Unix time `unixSeconds`. */
export function totp(secret, unixSeconds, { step = 30, digits = 6 } = {}) {
  const counter = BigInt(Math.floor(unixSeconds / step));
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(counter);
  const mac = createHmac('sha1', base32Decode(secret)).update(msg).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

// ---------------------------------------------------------------- process helpers

export function renkeiBin() {
  const bin = path.resolve(REPO_ROOT, process.env.RENKEI_BIN || 'target/debug/renkei');
  if (!fs.existsSync(bin)) {
    throw new Error(`renkei binary not found at ${bin} (build it with \`cargo build --bin renkei\` or set RENKEI_BIN)`);
  }
  return bin;
}

export function serverEnv() {
  return { ...process.env, RENKEI_FIXED_CLOCK: FIXED_CLOCK };
}

/** Runs the CLI and returns its stdout; fails with its stderr on a non-zero exit. */
export function cli(bin, dataDir, args) {
  try {
    return execFileSync(bin, ['--data-dir', dataDir, ...args], {
      env: serverEnv(),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
  } catch (err) {
    throw new Error(`renkei ${args.join(' ')} failed (status ${err.status}):\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
  }
}

export function parseId(output, what) {
  const m = /id=(\d+)/.exec(output);
  assert.ok(m, `${what}: no id=N in CLI output: ${output}`);
  return Number(m[1]);
}

/** Spawns `renkei serve` and resolves with { child, baseUrl, stderr() } once it listens. */
export function startServer(bin, dataDir, extraEnv = {}) {
  const child = spawn(bin, ['--data-dir', dataDir, 'serve', '--listen', '127.0.0.1:0'], {
    env: { ...serverEnv(), ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-20_000);
  });
  const lines = readline.createInterface({ input: child.stdout });
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (fn, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      fn(value);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(reject, new Error(`server did not report "Renkei listening on" within 120 s\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, 120_000);
    // Keep consuming stdout after startup so the pipe never fills up.
    lines.on('line', (line) => {
      stdout = (stdout + line + '\n').slice(-20_000);
      const m = /Renkei listening on (https?:\/\/\S+)/.exec(line);
      if (m) {
        finish(resolve, { child, baseUrl: m[1].replace(/\/+$/, ''), stderr: () => stderr });
      }
    });
    child.on('error', (err) => finish(reject, new Error(`cannot start server: ${err.message}`)));
    child.on('exit', (code, signal) => {
      finish(reject, new Error(`server exited early (code ${code}, signal ${signal})\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    });
  });
}

export async function stopServer(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------- page helpers

let shotCounter = 0;
let shotDir = ARTIFACTS;

/** Screenshots of this test file go to tests/browser/artifacts/<name>/ (created, emptied first). */
export function artifactsFor(name) {
  shotDir = path.join(ARTIFACTS, name);
  fs.rmSync(shotDir, { recursive: true, force: true });
  fs.mkdirSync(shotDir, { recursive: true });
  shotCounter = 0;
  return shotDir;
}

/** Full-page screenshot to the test's artifacts directory as NN-name.png. */
export async function shot(page, name) {
  shotCounter += 1;
  const file = path.join(shotDir, `${String(shotCounter).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

export function button(page, name) {
  return page.getByRole('button', { name, exact: true });
}

/** Clicks something that submits a form or follows a link, and waits for the new page to load. */
export async function clickAndLoad(page, locator) {
  await Promise.all([page.waitForEvent('load'), locator.click()]);
}

export function pathname(page) {
  return new URL(page.url()).pathname;
}

export async function text(locator) {
  return ((await locator.textContent()) ?? '').trim();
}

export async function bodyText(page) {
  return page.locator('body').innerText();
}

export async function login(page, baseUrl, loginId, password) {
  if (pathname(page) !== '/login') await page.goto(`${baseUrl}/login`);
  await page.locator('#login_id').fill(loginId);
  await page.locator('#password').fill(password);
  await clickAndLoad(page, button(page, 'ログイン'));
  assert.notEqual(pathname(page), '/login', `login as ${loginId} failed:\n${(await bodyText(page)).slice(0, 1000)}`);
}

/** The first recovery code shown to each user, by label (a later login uses one). */
export const RECOVERY_CODES = {};

/** On /login/enrol: reads the secret, enters the code for the fixed clock, checks the recovery codes, continues. */
export async function enrolTotp(page, label) {
  const secret = (await text(page.locator('#totp-secret'))).replace(/\s+/g, '');
  assert.match(secret, /^[A-Za-z2-7]+=*$/, `TOTP secret should be Base32, got ${JSON.stringify(secret)}`);
  assert.ok(await page.locator('#totp-qr').isVisible(), 'the TOTP QR code (#totp-qr) is visible');
  await shot(page, `${label}-enrol`);
  await page.locator('#code').fill(totp(secret, FIXED_UNIX));
  await clickAndLoad(page, button(page, '登録'));
  const codes = page.locator('#recovery-codes li');
  await codes.first().waitFor({ state: 'visible' }).catch(async () => {
    throw new Error(`no recovery codes after TOTP enrolment:\n${(await bodyText(page)).slice(0, 1000)}`);
  });
  assert.equal(await codes.count(), 10, 'ten recovery codes are shown');
  RECOVERY_CODES[label] = (await codes.first().textContent()).trim();
  await shot(page, `${label}-recovery-codes`);
  await clickAndLoad(page, page.locator('#continue'));
}

export async function changePassword(page, current, next, label) {
  await shot(page, `${label}-password`);
  await page.locator('#current').fill(current);
  await page.locator('#new').fill(next);
  await page.locator('#confirm').fill(next);
  await clickAndLoad(page, button(page, '変更'));
}

/**
 * Walks the post-login steps (TOTP enrolment, forced password change, in
 * either order) until the portal top page. Returns the paths visited.
 */
export async function finishLogin(page, { label, password, newPassword }) {
  const visited = [];
  for (let i = 0; i < 5; i += 1) {
    const p = pathname(page);
    if (p === '/') return visited;
    visited.push(p);
    if (p === '/login/enrol') {
      await enrolTotp(page, label);
    } else if (p === '/password') {
      assert.ok(newPassword, `${label}: unexpectedly asked to change the password`);
      await changePassword(page, password, newPassword, label);
    } else {
      assert.fail(`${label}: unexpected page ${p} after login:\n${(await bodyText(page)).slice(0, 1000)}`);
    }
  }
  assert.equal(pathname(page), '/', `${label}: did not reach the portal top page (visited ${visited.join(' -> ')})`);
  return visited;
}


/** Debian's Chromium, headless, as the project's browser tests run it. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
    ],
  });
}

/** A new Japanese-locale page with the default timeouts. */
export async function newPage(browser) {
  const context = await browser.newContext({ locale: 'ja-JP' });
  context.setDefaultTimeout(DEFAULT_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(DEFAULT_TIMEOUT_MS);
  return context.newPage();
}
