// Foundation browser test: bootstraps a Renkei instance with the CLI, starts the
// server on a random port with a frozen clock, and drives Debian's Chromium
// through the operator and first-user journeys with playwright-core.
//
// Run: RENKEI_BIN=target/debug/renkei node --test tests/browser/
// Env: RENKEI_BIN (server binary, default target/debug/renkei relative to the
//      repo root), CHROMIUM (browser executable, default /usr/bin/chromium).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  DEFAULT_TIMEOUT_MS, FIXED_UNIX, RECOVERY_CODES, artifactsFor, bodyText, button, cli,
  clickAndLoad, finishLogin, launchBrowser, login, parseId, pathname, renkeiBin, shot, startServer, stopServer,
  text, totp,
} from './lib.mjs';

const OPERATOR = { loginId: 'admin', password: 'Renkei-Operator-2026' };
const FACILITY_NAME = 'みどり内科クリニック';
const USER = { loginId: 'midori.dr', name: '緑川 一郎', newPassword: 'Midori-Clinic-2026' };
const NOTICE_TITLE = 'システムメンテナンスのお知らせ';

// ---------------------------------------------------------------- the test

test('foundation: bootstrap, operator administration, first user login, public search', { timeout: 120_000 }, async () => {
  const ARTIFACTS = artifactsFor('foundation');
  const bin = renkeiBin();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'renkei-browser-'));
  let server;
  let browser;
  let page;
  let passed = false;
  try {
    // a. Bootstrap with the CLI.
    const facilityOut = cli(bin, dataDir, ['admin', 'create-facility', '--type', 'operator', '--name', '広島県医師会 事務局']);
    const operatorFacilityId = parseId(facilityOut, 'create-facility');
    const userOut = cli(bin, dataDir, [
      'admin', 'create-user',
      '--facility-id', String(operatorFacilityId),
      '--login-id', OPERATOR.loginId,
      '--name', '事務局 太郎',
      '--profession', 'operator',
      '--role', 'operator',
      '--password', OPERATOR.password,
    ]);
    parseId(userOut, 'create-user');
    // A disclosing hospital that issues HM cards, with a clerk.
    const hospitalOut = cli(bin, dataDir, [
      'admin', 'create-facility', '--type', 'hospital', '--name', '広島中央総合病院',
      '--code', '3411234572', '--discloses', '--issues-hm-card',
    ]);
    const hospitalId = parseId(hospitalOut, 'create-facility');
    parseId(cli(bin, dataDir, [
      'admin', 'create-user', '--facility-id', String(hospitalId), '--login-id', 'chuo.clerk',
      '--name', '地域連携室 事務', '--profession', 'clerk', '--role', 'facility_admin', '--password', 'Chuo-Clerk-2026',
    ]), 'create-user');
    // The national code list, here one row, lets the facility form fill itself from the code.
    const codeList = path.join(dataDir, 'codes.csv');
    fs.writeFileSync(codeList, `\ufeff341234564,1234564,${FACILITY_NAME},7300011,広島市中区基町1-1\n`);
    const imported = cli(bin, dataDir, ['admin', 'import-facilities', codeList]);
    assert.match(imported, /1 件を取り込みました/);

    // b. Start the server.
    server = await startServer(bin, dataDir);
    const base = server.baseUrl;

    // c. Health check.
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200, 'GET /healthz');

    browser = await launchBrowser();
    const context = await browser.newContext({ locale: 'ja-JP' });
    context.setDefaultTimeout(DEFAULT_TIMEOUT_MS);
    context.setDefaultNavigationTimeout(DEFAULT_TIMEOUT_MS);
    page = await context.newPage();

    // d. Operator login with TOTP enrolment.
    await page.goto(`${base}/login`);
    await shot(page, 'login');
    await login(page, base, OPERATOR.loginId, OPERATOR.password);
    assert.equal(pathname(page), '/login/enrol', 'first login enrols TOTP');
    const operatorSteps = await finishLogin(page, { label: 'operator' });
    assert.deepEqual(operatorSteps, ['/login/enrol'], 'the operator only enrols TOTP before the portal');

    // e. Portal top page.
    assert.equal(pathname(page), '/');
    const top = await bodyText(page);
    for (const heading of ['他院診療情報', 'グループウェア', 'ユーティリティ']) {
      assert.ok(top.includes(heading), `portal top page shows ${heading}`);
    }
    await shot(page, 'portal-top');

    // f. Register a facility.
    await page.goto(`${base}/admin/facilities/new`);
    // Typing the code (as a barcode reader would) and leaving the field fills name and address.
    await page.locator('#code').fill('3411234564');
    await page.locator('#code').press('Tab');
    await page.locator('#code-status', { hasText: '補完しました' }).waitFor();
    assert.equal(await page.locator('#name').inputValue(), FACILITY_NAME, 'name filled from the code list');
    assert.equal(await page.locator('#address').inputValue(), '広島市中区基町1-1', 'address filled from the code list');
    await page.locator('#facility_type').selectOption({ value: 'clinic' });
    await page.locator('#phone').fill('082-000-0000');
    await page.locator('#max_accounts').fill('5');
    await clickAndLoad(page, button(page, '登録'));
    await page.locator('h1', { hasText: FACILITY_NAME }).waitFor().catch(async () => {
      throw new Error(`facility page not shown after registration:\n${(await bodyText(page)).slice(0, 1000)}`);
    });
    await shot(page, 'facility');

    // g. Create the facility's first user.
    await clickAndLoad(page, page.locator('#new-user'));
    await page.locator('#login_id').fill(USER.loginId);
    await page.locator('#name').fill(USER.name);
    await page.locator('#name_kana').fill('ミドリカワ イチロウ');
    await page.locator('#profession').selectOption({ value: 'doctor' });
    await page.locator('#role').selectOption({ value: 'staff' });
    await clickAndLoad(page, button(page, '登録'));
    await page.locator('#temp-password').waitFor().catch(async () => {
      throw new Error(`no temporary password after user creation:\n${(await bodyText(page)).slice(0, 1000)}`);
    });
    const tempPassword = await text(page.locator('#temp-password'));
    assert.ok(tempPassword.length > 0, 'a temporary password is shown');
    await shot(page, 'user-created');

    // h. Post a notice.
    await page.goto(`${base}/admin/notices/new`);
    await page.locator('#title').fill(NOTICE_TITLE);
    await page.locator('#body').fill('12月1日 22時から停止します。');
    await clickAndLoad(page, button(page, '掲載'));
    await page.goto(`${base}/`);
    assert.ok((await text(page.locator('#notices'))).includes(NOTICE_TITLE), 'the notice is listed on the operator top page');

    // i. Audit trail.
    await page.goto(`${base}/admin/audit`);
    const audit = await text(page.locator('#audit'));
    assert.ok(audit.includes('施設の登録'), 'audit shows the facility registration in words');
    assert.ok(audit.includes('ログイン'), 'audit shows the login in words');
    assert.ok(!/directory\.facility\.create|auth\.login|system:/.test(audit), 'no action keys or system: strings on the screen');
    // Actions are chosen from a list, with a filter for break-the-glass.
    await page.locator('#action').selectOption({ label: 'ログイン' });
    await clickAndLoad(page, button(page, '検索'));
    const logins = await page.locator('#audit tbody tr').allTextContents();
    assert.ok(logins.length > 0 && logins.every((r) => r.includes('ログイン')), `only logins: ${logins.slice(0, 3)}`);
    await shot(page, 'audit');

    // j. Log out.
    await clickAndLoad(page, button(page, 'ログアウト'));
    assert.equal(pathname(page), '/login', 'logout lands on /login');

    // k. The new user logs in, changes the temporary password and enrols TOTP (either order).
    await login(page, base, USER.loginId, tempPassword);
    const userSteps = await finishLogin(page, { label: 'user', password: tempPassword, newPassword: USER.newPassword });
    assert.ok(userSteps.includes('/password'), 'the temporary password had to be changed');
    assert.ok(userSteps.includes('/login/enrol'), 'the user enrolled TOTP');

    // l. The user's top page.
    assert.equal(pathname(page), '/');
    assert.ok((await text(page.locator('#notices'))).includes(NOTICE_TITLE), 'the notice is listed on the user top page');
    assert.ok((await bodyText(page)).includes(USER.name), 'the user top page shows the user name');
    await shot(page, 'user-top');

    // l2. HM card: the hospital's clerk issues a card; the clinic's doctor reads it the way a USB
    //     barcode reader does (it types the QR payload and Enter) and the patient is linked.
    const clinicPage = page;
    const hospitalContext = await browser.newContext({ locale: 'ja-JP' });
    hospitalContext.setDefaultTimeout(DEFAULT_TIMEOUT_MS);
    hospitalContext.setDefaultNavigationTimeout(DEFAULT_TIMEOUT_MS);
    page = await hospitalContext.newPage();
    await login(page, base, 'chuo.clerk', 'Chuo-Clerk-2026');
    await finishLogin(page, { label: 'hospital-clerk', password: 'Chuo-Clerk-2026', newPassword: 'Chuo-Clerk-2026b' });
    await page.goto(`${base}/cards`);
    await page.locator('#issue_patient').fill('H-0001');
    await page.locator('#kanji_name').fill('髙橋 太郎');
    await page.locator('#kana_name').fill('タカハシ タロウ');
    await page.locator('#birth_date').fill('1948-04-05');
    await clickAndLoad(page, button(page, '発行'));
    await page.locator('#payload').waitFor().catch(async () => {
      throw new Error(`no card after issuing:\n${(await bodyText(page)).slice(0, 1000)}`);
    });
    const payload = await text(page.locator('#payload'));
    const cardCode = await text(page.locator('#card-code'));
    assert.match(cardCode, /^\d{6}$/, 'the verification code is shown for the card');
    assert.match(payload, /^RENKEI1:34\d{9}::[A-Z2-7]{16}$/, 'the QR payload carries the common ID and the card secret');
    assert.ok(await page.locator('#card-qr svg').isVisible(), 'the card QR is shown');
    await shot(page, 'card-issued');
    // The printable card and seal label (PDF, card size).
    const pdfHref = await page.locator('#print-card').getAttribute('href');
    const pdf = await page.request.get(`${base}${pdfHref}`);
    assert.equal(pdf.status(), 200, 'GET the card PDF');
    assert.equal(pdf.headers()['content-type'], 'application/pdf');
    const pdfBytes = await pdf.body();
    assert.equal(pdfBytes.subarray(0, 4).toString(), '%PDF', 'a PDF comes back');
    fs.writeFileSync(path.join(ARTIFACTS, 'card.pdf'), pdfBytes);

    // HMカード保持確認: the same person, typed in hiragana, already holds a card.
    await page.goto(`${base}/cards`);
    await page.locator('#check_name').fill('たかはし たろう');
    await page.locator('#check_birth').fill('1948-04-05');
    await clickAndLoad(page, button(page, '確認'));
    assert.ok((await text(page.locator('#holding-result'))).includes('保持している方がいます'), 'the card-holding check finds the holder');

    // The same man registered under a second patient ID, typed differently and without his
    // card: the clerk is shown him as a likely match, confirms, and the ID is linked to him.
    await page.goto(`${base}/cards`);
    await page.locator('#issue_patient').fill('H-0002');
    await page.locator('#kanji_name').fill('高橋太郎');
    await page.locator('#kana_name').fill('たかはし たろう');
    await page.locator('#birth_date').fill('1948-04-05');
    await clickAndLoad(page, button(page, '発行'));
    await page.locator('#candidates').waitFor().catch(async () => {
      throw new Error(`no candidates shown:\n${(await bodyText(page)).slice(0, 1000)}`);
    });
    const candidates = await text(page.locator('#candidates'));
    assert.ok(candidates.includes('髙橋 太郎') && candidates.includes('生年月日'), 'the existing person is suggested with the reasons');
    await shot(page, 'mpi-candidates');
    await clickAndLoad(page, page.locator('#candidates .confirm-person').first());
    assert.ok((await text(page.locator('#linked'))).includes('H-0002'), 'the second ID is linked to the same person');

    const hospitalPage = page;
    page = clinicPage;
    await page.goto(`${base}/cards`);
    await page.locator('#read_patient').fill('C-0001');
    await page.locator('#scanned').focus();
    await page.keyboard.type(payload);
    await Promise.all([page.waitForLoadState('load'), page.keyboard.press('Enter')]);
    // Read and linked: the patient's record opens, its banner naming the patient.
    await page.locator('#patient-banner').waitFor().catch(async () => {
      throw new Error(`card not read:\n${(await bodyText(page)).slice(0, 1000)}`);
    });
    assert.ok(pathname(page).startsWith('/viewer/'), 'the record opens after the read');
    assert.ok((await text(page.locator('#patient-banner'))).includes('髙橋 太郎'), 'the card links the clinic patient');
    await shot(page, 'card-read');
    // A mistyped ID is refused by the check digit.
    await page.goto(`${base}/cards`);
    await page.locator('#read_patient').fill('C-0002');
    const digits = payload.split(':')[1];
    const typo = digits.slice(0, 5) + digits[6] + digits[5] + digits.slice(7);
    await page.locator('#scanned').fill(typo === digits ? digits.slice(0, 10) : typo);
    await Promise.all([page.waitForLoadState('load'), page.locator('#scanned').press('Enter')]);
    assert.ok((await bodyText(page)).match(/検査用数字|11桁/), 'a typo is refused with a reason');
    // The ID typed by hand alone opens nothing and names no one; with the printed code it reads.
    await page.locator('#read_patient').fill('C-0002');
    await page.locator('#scanned').fill(digits);
    await Promise.all([page.waitForLoadState('load'), page.locator('#scanned').press('Enter')]);
    const bare = await bodyText(page);
    assert.ok(bare.includes('このカードは使用できません') && !bare.includes('髙橋'), `a bare ID is refused without a name:\n${bare.slice(0, 600)}`);
    await page.locator('#read_patient').fill('C-0001');
    await page.locator('#scanned').fill(digits);
    await page.locator('#manual-proof summary').click();
    await page.locator('#code').fill(cardCode);
    await clickAndLoad(page, button(page, '読み取り'));
    assert.ok((await text(page.locator('#patient-banner'))).includes('髙橋 太郎'), 'typed by hand with the printed code, the card reads');
    await shot(page, 'card-read-by-hand');

    // l2b. Consent: the hospital records what it discloses, to whom, for which period; the
    //      consent form prints; the clinic finds the patient on its card-less list; the
    //      withdrawal takes effect at once.
    await hospitalPage.goto(`${base}/consents?patient=H-0001`);
    await hospitalPage.locator('#new-consent input[value="image"]').uncheck();
    await hospitalPage.locator('#data_from').fill('2025-01-01');
    await clickAndLoad(hospitalPage, button(hospitalPage, '同意を登録'));
    const consentRows = await text(hospitalPage.locator('#consents'));
    assert.ok(consentRows.includes('全参加施設') && consentRows.includes('検査') && !consentRows.includes('画像') && consentRows.includes('有効'), `the consent is listed: ${consentRows}`);
    await shot(hospitalPage, 'consent');
    const formHref = await hospitalPage.locator('#consents a[href$="/pdf"]').first().getAttribute('href');
    const form = await hospitalPage.request.get(`${base}${formHref}`);
    assert.equal(form.status(), 200, 'GET the consent form');
    assert.equal(form.headers()['content-type'], 'application/pdf');
    fs.writeFileSync(path.join(ARTIFACTS, 'consent.pdf'), await form.body());

    await page.goto(`${base}/patients`);
    assert.ok((await text(page.locator('#patients'))).includes('髙橋 太郎'), 'the card-less list shows the patient whose card was read');
    await shot(page, 'patients');
    await clickAndLoad(page, page.locator('#patients a').first());
    assert.ok(pathname(page).startsWith('/viewer/'), 'the patient opens from the list');

    // The signed paper form, scanned, is attached to the consent.
    await hospitalPage.locator('#consents input[type=file]').first().setInputFiles({
      name: '同意書_署名済.pdf', mimeType: 'application/pdf', buffer: await form.body(),
    });
    await clickAndLoad(hospitalPage, button(hospitalPage, '添付'));
    assert.ok((await text(hospitalPage.locator('#consents'))).includes('同意書_署名済.pdf'), 'the signed scan is attached');
    const scanHref = await hospitalPage.locator('#consents a[href^="/consents/scans/"]').first().getAttribute('href');
    const scan = await hospitalPage.request.get(`${base}${scanHref}`);
    assert.equal(scan.headers()['content-type'], 'application/pdf', 'the scan downloads');
    await clickAndLoad(hospitalPage, button(hospitalPage, '撤回'));
    assert.ok((await text(hospitalPage.locator('#consents'))).includes('撤回'), 'the consent shows as withdrawn');

    // l3. The operator signs in again with a recovery code (the TOTP step of the fixed clock is
    //     spent) and finds the person: both facilities' patient IDs are linked.
    const operatorContext = await browser.newContext({ locale: 'ja-JP' });
    operatorContext.setDefaultTimeout(DEFAULT_TIMEOUT_MS);
    operatorContext.setDefaultNavigationTimeout(DEFAULT_TIMEOUT_MS);
    page = await operatorContext.newPage();
    await login(page, base, OPERATOR.loginId, OPERATOR.password);
    assert.equal(pathname(page), '/login/totp', 'the second login asks for the second factor');
    await page.locator('#code').fill(RECOVERY_CODES.operator.toUpperCase());
    await clickAndLoad(page, button(page, '認証'));
    assert.equal(pathname(page), '/', 'a recovery code completes the login');
    await page.goto(`${base}/admin/persons?birth_date=1948-04-05&name=${encodeURIComponent('たかはし')}`);
    await clickAndLoad(page, page.locator('#persons a').first());
    const links = await text(page.locator('#links'));
    assert.ok(links.includes('H-0001') && links.includes('H-0002') && links.includes('C-0001'), 'the hospital and clinic IDs are linked to the person');
    await shot(page, 'person');
    // Who read the record, and when.
    await clickAndLoad(page, page.locator('#access-history'));
    assert.ok((await text(page.locator('#access'))).includes('診療情報の閲覧'), 'the access history lists the clinic\'s read');
    await shot(page, 'access-history');
    // The profession matrix: pharmacists no longer see diagnoses.
    await page.goto(`${base}/admin/rights`);
    await page.locator('input[name="pharmacist:diagnosis"]').uncheck();
    await clickAndLoad(page, button(page, '保存'));
    assert.ok((await bodyText(page)).includes('更新しました'), 'the matrix is saved');
    assert.equal(await page.locator('input[name="pharmacist:diagnosis"]').isChecked(), false);
    await shot(page, 'rights');

    // m. Public facility search without login.
    const anonymous = await browser.newContext({ locale: 'ja-JP' });
    anonymous.setDefaultTimeout(DEFAULT_TIMEOUT_MS);
    anonymous.setDefaultNavigationTimeout(DEFAULT_TIMEOUT_MS);
    page = await anonymous.newPage();
    await page.goto(`${base}/facilities/search?q=${encodeURIComponent('みどり')}`);
    assert.ok((await text(page.locator('#facilities'))).includes(FACILITY_NAME), 'public search finds the facility');
    await shot(page, 'public-search');

    // n. A wrong CSRF token is refused.
    const forged = await fetch(`${base}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'login_id=admin&password=x&csrf=bogus',
      redirect: 'manual',
    });
    assert.equal(forged.status, 403, 'POST /login with a bogus CSRF token');

    passed = true;
  } catch (err) {
    if (page) await shot(page, 'failure').catch(() => {});
    if (server) err.message += `\n--- server stderr (tail) ---\n${server.stderr().slice(-4000)}`;
    throw err;
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (server) await stopServer(server.child);
    if (passed) fs.rmSync(dataDir, { recursive: true, force: true });
    else console.error(`renkei data dir kept for inspection: ${dataDir}`);
  }
});
