// The core flow of the network, as its users click through it:
// a hospital's SS-MIX2 storage is imported → the hospital issues an HM card and registers the
// patient's consent (without prescriptions) → a clinic's doctor reads the card with a barcode
// reader (typed payload + Enter) → sees the calendar → opens a lab trend → the withheld category
// stays invisible → the operator's access history shows each read. Screenshots of the main
// screens are kept in tests/browser/artifacts/core-flow/.
//
// Run: RENKEI_BIN=target/debug/renkei node --test tests/browser/

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import {
  REPO_ROOT, artifactsFor, bodyText, button, cli, clickAndLoad, finishLogin, launchBrowser, login,
  newPage, parseId, pathname, renkeiBin, shot, startServer, stopServer, text,
} from './lib.mjs';

const HOSPITAL_CODE = '3411234572';
const PATIENT = '0001500000'; // the generator's first patient for seed 5

test('core flow: import, card and consent, clinic reads the card, calendar, lab trend, withheld category, audit', { timeout: 180_000 }, async () => {
  artifactsFor('core-flow');
  const bin = renkeiBin();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'renkei-core-flow-'));
  let server;
  let browser;
  let hookServer;
  let appServer;
  let passed = false;
  try {
    const operatorFacility = parseId(cli(bin, dataDir, ['admin', 'create-facility', '--type', 'operator', '--name', '広島県医師会 事務局']), 'operator facility');
    cli(bin, dataDir, ['admin', 'create-user', '--facility-id', String(operatorFacility), '--login-id', 'admin', '--name', '事務局 太郎', '--profession', 'operator', '--role', 'operator', '--password', 'Renkei-Operator-2026']);
    const hospital = parseId(cli(bin, dataDir, ['admin', 'create-facility', '--type', 'hospital', '--name', '広島中央総合病院', '--code', HOSPITAL_CODE, '--discloses', '--issues-hm-card']), 'hospital');
    cli(bin, dataDir, ['admin', 'create-user', '--facility-id', String(hospital), '--login-id', 'chuo.clerk', '--name', '地域連携室 事務', '--profession', 'clerk', '--role', 'facility_admin', '--password', 'Chuo-Clerk-2026']);
    const clinic = parseId(cli(bin, dataDir, ['admin', 'create-facility', '--type', 'clinic', '--name', 'みどり内科クリニック']), 'clinic');
    cli(bin, dataDir, ['admin', 'create-user', '--facility-id', String(clinic), '--login-id', 'midori.dr', '--name', '緑川 一郎', '--profession', 'doctor', '--role', 'staff', '--password', 'Midori-Doctor-2026']);
    const pharmacy = parseId(cli(bin, dataDir, ['admin', 'create-facility', '--type', 'pharmacy', '--name', '駅前薬局', '--discloses']), 'pharmacy');
    cli(bin, dataDir, ['admin', 'create-user', '--facility-id', String(pharmacy), '--login-id', 'ekimae.ph', '--name', '駅前 薬子', '--profession', 'pharmacist', '--role', 'facility_admin', '--password', 'Ekimae-Pharm-2026']);
    // The hospital's SS-MIX2 storage: two years of records for three patients.
    const storage = path.join(dataDir, 'ssmix2');
    cli(bin, dataDir, ['dev', 'generate-ssmix2', storage, '--patients', '3', '--years', '2', '--seed', '5']);
    cli(bin, dataDir, ['import', 'ssmix2', storage, '--facility', HOSPITAL_CODE]);

    server = await startServer(bin, dataDir);
    const base = server.baseUrl;
    browser = await launchBrowser();

    // The hospital issues the card and records the consent: everything but prescriptions.
    const hospitalPage = await newPage(browser);
    await login(hospitalPage, base, 'chuo.clerk', 'Chuo-Clerk-2026');
    await finishLogin(hospitalPage, { label: 'hospital-clerk', password: 'Chuo-Clerk-2026' });
    await hospitalPage.goto(`${base}/cards`);
    await hospitalPage.locator('#issue_patient').fill(PATIENT);
    await clickAndLoad(hospitalPage, button(hospitalPage, '発行'));
    await hospitalPage.locator('#payload').waitFor().catch(async () => {
      throw new Error(`no card:\n${(await bodyText(hospitalPage)).slice(0, 1000)}`);
    });
    const payload = await text(hospitalPage.locator('#payload'));
    // Redirect after POST: reloading the issued card shows the same card, never a new one.
    assert.match(pathname(hospitalPage), /^\/cards\/\d+$/, 'the issued card has its own page');
    await hospitalPage.reload();
    assert.equal(await text(hospitalPage.locator('#payload')), payload, 'a reload does not issue again');
    await hospitalPage.goto(`${base}/consents?patient=${PATIENT}`);
    await hospitalPage.locator('#new-consent input[value="prescription"]').uncheck();
    await clickAndLoad(hospitalPage, button(hospitalPage, '同意を登録'));
    assert.ok((await text(hospitalPage.locator('#consents'))).includes('有効'), 'the consent is registered');
    await shot(hospitalPage, 'consent');

    // The clinic's doctor reads the card from the patient list, as a USB barcode reader types it.
    const page = await newPage(browser);
    await login(page, base, 'midori.dr', 'Midori-Doctor-2026');
    await finishLogin(page, { label: 'clinic-doctor', password: 'Midori-Doctor-2026' });
    await clickAndLoad(page, page.locator('#menu-patients'));
    await page.locator('#read_patient').fill('M-0001');
    await page.locator('#scanned').focus();
    await page.keyboard.type(payload);
    await Promise.all([page.waitForEvent('load'), page.keyboard.press('Enter')]);
    const list = await text(page.locator('#patients'));
    assert.ok(list.includes(payload.split(':')[1]), `the patient is on the clinic's list: ${list}`);
    await shot(page, 'patient-list');

    // The calendar, with marks per facility; a click opens that day.
    await clickAndLoad(page, page.locator('#patients tbody a').first());
    assert.ok(pathname(page).startsWith('/viewer/'), 'the viewer opens');
    const person = pathname(page).split('/')[2];
    const marks = page.locator('#calendar a.mark');
    assert.ok((await marks.count()) > 0, 'the calendar marks days with data');
    await shot(page, 'calendar');
    await clickAndLoad(page, marks.first());
    assert.ok((await text(page.locator('h2'))).includes('の診療情報'), 'a day opens from the calendar');
    await shot(page, 'day');

    // Lab results harmonised in a table; a trend chart for one item.
    await page.goto(`${base}/viewer/${person}?tab=labs`);
    assert.ok((await page.locator('#labs tbody tr').count()) > 0, 'lab results are listed');
    await clickAndLoad(page, page.locator('#labs tbody th a').first());
    assert.ok(await page.locator('#trend svg polyline').isVisible(), 'the trend chart is drawn');
    await shot(page, 'lab-trend');

    // Prescriptions were not consented to: nowhere to be seen, not even as an empty heading.
    await page.goto(`${base}/viewer/${person}?tab=categories&row=prescription`);
    assert.ok((await bodyText(page)).includes('該当する診療情報はありません'), 'no prescriptions');
    await page.goto(`${base}/viewer/${person}?tab=timeline`);
    const rows = await page.locator('#timeline tbody tr td:nth-child(2)').allTextContents();
    assert.ok(rows.length > 0 && !rows.includes('処方'), `no prescription in the time line: ${rows.slice(0, 20)}`);
    await shot(page, 'timeline');
    // The chest CT: DICOM rendered on the server, window presets, the series in order.
    await page.goto(`${base}/viewer/${person}?tab=documents`);
    assert.ok(await page.locator('#timeline img.thumb').first().isVisible(), 'the image study has a thumbnail');
    await clickAndLoad(page, page.locator('#timeline a:has(img.thumb)').first());
    assert.ok(await page.locator('#patient-banner').isVisible(), 'the image page names the patient');
    const image = page.locator('#dicom-image');
    await image.waitFor();
    assert.ok(await image.evaluate((img) => img.complete && img.naturalWidth > 0), 'the DICOM image renders');
    // The document's file itself, as the browser would open it: it never runs as a page of
    // this site (sandboxed, not sniffed).
    const fileUrl = base + (await image.getAttribute('src')).replace(/\/image\?.*$/, '');
    const fileResponse = await page.request.get(fileUrl);
    assert.equal(fileResponse.status(), 200, `the file opens: ${fileUrl}`);
    assert.match(fileResponse.headers()['content-security-policy'] ?? '', /^sandbox/, 'a document file is sandboxed');
    assert.equal(fileResponse.headers()['x-content-type-options'], 'nosniff');
    await clickAndLoad(page, page.getByRole('link', { name: '肺野', exact: true }));
    assert.ok((await page.locator('#dicom-viewer a[aria-current="page"]').textContent()).includes('肺野'), 'the lung window is chosen');
    await clickAndLoad(page, page.locator('#next-image'));
    assert.ok((await text(page.locator('#h-image'))).includes('画像2'), 'the next image of the series');
    assert.ok(await image.evaluate((img) => img.complete && img.naturalWidth > 0), 'the next image renders');
    await shot(page, 'dicom');

    await page.goto(`${base}/viewer/${person}?tab=summary`);
    assert.ok(await page.locator('#summary').isVisible(), 'the minimum data page');
    // The patient banner: who it is (with the age) and whether allergies are recorded.
    const bannerText = await text(page.locator('#patient-banner'));
    assert.match(bannerText, /(男|女)・\d{4}年\d{1,2}月\d{1,2}日（\d+歳）・地域共通ID \d{11}/, `the banner: ${bannerText}`);
    assert.ok(/アレルギー(あり|: 登録なし)/.test(bannerText), `the allergy flag: ${bannerText}`);
    // Prescriptions are outside the patient's consent: the summary says so, never 「なし」, and
    // the print-out names who printed it and what it leaves out.
    const withheldRx = await text(page.locator('#summary [data-scope="prescription"]'));
    assert.ok(withheldRx.includes('同意の範囲外'), `prescriptions are said to be outside the consent: ${withheldRx}`);
    const section = await page.evaluate(() => {
      const h = [...document.querySelectorAll('#summary h3')].find((e) => e.textContent === '現在の処方');
      return h.nextElementSibling.nextElementSibling?.tagName === 'P' ? h.nextElementSibling.nextElementSibling.textContent : '';
    });
    assert.notEqual(section.trim(), 'なし', 'not allowed is not shown as none');
    assert.ok((await text(page.locator('#summary .print-note'))).includes('含まれない区分: 処方（同意の範囲外'), 'the print-out lists what it leaves out');
    // 印刷 prints (no inline handler: the app's CSP would block it).
    await page.evaluate(() => { window.__printed = 0; window.print = () => { window.__printed += 1; }; });
    await page.locator('#print-summary').click();
    assert.equal(await page.evaluate(() => window.__printed), 1, 'the print button calls window.print');
    await shot(page, 'minimum-data');

    // A pharmacy uploads its receipt computer's export for the patient's card and discloses its
    // dispensings (a facility-level rule); the doctor sees them in the お薬手帳.
    // Before that, at the patient's request, the pharmacy links the patient's notebook app (registered
    // by the operator) to the card: the new dispensings are pushed to the app as signed webhooks.
    const pushed = [];
    hookServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => { pushed.push({ headers: req.headers, body }); res.writeHead(204).end(); });
    });
    await new Promise((resolve) => hookServer.listen(0, '127.0.0.1', resolve));
    const hookUrl = `http://127.0.0.1:${hookServer.address().port}/renkei`;
    cli(bin, dataDir, ['admin', 'create-medication-app', '--name', 'おくすり手帳アプリ', '--url', hookUrl]);
    const pharmacyPage = await newPage(browser);
    await login(pharmacyPage, base, 'ekimae.ph', 'Ekimae-Pharm-2026');
    await finishLogin(pharmacyPage, { label: 'pharmacist', password: 'Ekimae-Pharm-2026' });
    await clickAndLoad(pharmacyPage, pharmacyPage.locator('#menu-medication'));
    await pharmacyPage.locator('#link_card').fill(payload);
    await pharmacyPage.locator('#link_app').selectOption({ label: 'おくすり手帳アプリ' });
    await clickAndLoad(pharmacyPage, button(pharmacyPage, '連携'));
    assert.ok((await bodyText(pharmacyPage)).includes('お薬手帳アプリと連携しました'), 'the app is linked to the card');
    await pharmacyPage.locator('#card').fill(payload);
    // The receipt computer's export (a public fixture) for this patient: its record 1 says who
    // the patient is, as the viewer's banner does (birth date in the era form).
    const fixture = fs.readFileSync(path.join(REPO_ROOT, 'fixtures/jahis-rx-parser/fixtures/tc-multi-dispensing.txt'), 'utf8');
    const banner = await page.evaluate(() => ({
      name: document.querySelector('.patient-bar h1').firstChild.textContent.trim(),
      kana: document.querySelector('.patient-bar h1 span').textContent.trim(),
      line: document.querySelector('.patient-bar p').textContent,
    }));
    const [, sexLabel, y, mm, dd] = banner.line.match(/(男|女)・(\d{4})年(\d{1,2})月(\d{1,2})日（\d+歳）/);
    const [m, d] = [mm.padStart(2, '0'), dd.padStart(2, '0')];
    const era = Number(y) >= 1989 ? `H${String(Number(y) - 1988).padStart(2, '0')}` : `S${String(Number(y) - 1925).padStart(2, '0')}`;
    const record1 = `1,${banner.name},${sexLabel === '男' ? 1 : 2},${era}${m}${d},730-0011,広島市中区基町1-1,,,,,${banner.kana}`;
    const exported = Buffer.from(fixture.replace(/^1,.*$/m, record1));
    await pharmacyPage.locator('#files').setInputFiles({ name: 'okusuri.txt', mimeType: 'text/plain', buffer: exported });
    await clickAndLoad(pharmacyPage, button(pharmacyPage, '登録'));
    assert.ok((await text(pharmacyPage.locator('#medication-report'))).includes('登録 2 件'), 'two dispensings are stored');
    await shot(pharmacyPage, 'medication-upload');
    // Another patient's export under this card is refused, naming the fields.
    await pharmacyPage.locator('#card').fill(payload);
    await pharmacyPage.locator('#files').setInputFiles({ name: 'other.txt', mimeType: 'text/plain', buffer: Buffer.from(fixture) });
    await clickAndLoad(pharmacyPage, button(pharmacyPage, '登録'));
    const refused = await text(pharmacyPage.locator('#medication-report'));
    assert.ok(refused.includes('一致しない項目') && refused.includes('登録 0 件'), `another patient's file: ${refused}`);
    // The patient's QR code split over two symbols, read out of order with the barcode reader:
    // the first read waits (and says what is missing), the second stores the dispensing.
    const qrPart = (n, body) => `JAHISTC08,1\r\n${n === 1 ? record1 + '\r\n' : ''}${body}911,20261121001,2,${n}\r\n`;
    const dispensing = ['5,20261120,1', '11,駅前薬局,34,4,1234567,,,,1', '51,広島中央総合病院,34,1,1234564,1', '201,1,アムロジピン錠５ｍｇ,1,錠,2,620000001,1', '301,1,1日1回朝食後,28,日分,1,,,1', '421,残薬は5錠,1'];
    const scanQr = async (text) => {
      await pharmacyPage.locator('#card').fill(payload);
      await pharmacyPage.locator('#qr').fill(text);
      await clickAndLoad(pharmacyPage, button(pharmacyPage, '登録'));
    };
    await scanQr(qrPart(2, dispensing.slice(3).join('\r\n') + '\r\n'));
    const waiting = await text(pharmacyPage.locator('#medication-splits'));
    assert.ok(waiting.includes('1 / 2') && waiting.includes('まで'), `the split code waits: ${waiting}`);
    await shot(pharmacyPage, 'medication-split-waiting');
    // The card stays read and the reader's next scan lands in the QR field.
    assert.equal(await pharmacyPage.locator('#card').inputValue(), payload, 'the card is kept while a code waits');
    assert.equal(await pharmacyPage.evaluate(() => document.activeElement.id), 'qr', 'the QR field has the focus');
    await pharmacyPage.keyboard.type(qrPart(1, dispensing.slice(0, 3).join('\r\n') + '\r\n'));
    await clickAndLoad(pharmacyPage, button(pharmacyPage, '登録'));
    assert.ok((await text(pharmacyPage.locator('#medication-report'))).includes('登録 1 件'), 'the whole code is stored once complete');
    assert.equal(await pharmacyPage.locator('#medication-splits').count(), 0, 'nothing waits any more');
    for (let i = 0; i < 100 && pushed.length < 3; i++) await new Promise((r) => setTimeout(r, 200));
    assert.equal(pushed.length, 3, 'each new dispensing (two in the file, one in the split code) is pushed to the linked app');
    assert.match(pushed[0].headers['x-renkei-signature'], /^t=\d+,v1=[0-9a-f]{64}$/, 'pushes are signed');
    assert.equal(JSON.parse(pushed[0].body).event, 'medication.dispensing');
    // A one-time code for the patient's notebook app; the app reads the history once.
    await pharmacyPage.locator('#code_card').fill(payload);
    await clickAndLoad(pharmacyPage, button(pharmacyPage, 'コードを発行'));
    const oneTime = (await text(pharmacyPage.locator('#one-time-code'))).replace(/\s+/g, '');
    assert.match(oneTime, /^[A-Z2-9]{8}$/, 'an eight-character code is shown');
    await shot(pharmacyPage, 'one-time-code');
    const redeem = () => fetch(`${base}/api/medication/v1/history`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `code=${oneTime}&format=jahis`,
    });
    const first = await redeem();
    assert.equal(first.status, 200, 'the app reads the history');
    const history = await first.text();
    assert.ok(history.startsWith('JAHISTC08') && history.includes('ノルバスク'), history.slice(0, 200));
    const second = await redeem();
    assert.equal(second.status, 410, 'a used code fails plainly');
    assert.equal((await second.json()).error, 'used_code');
    await pharmacyPage.goto(`${base}/consents`);
    await pharmacyPage.locator('input[name="mode"][value="facility_level"]').check();
    await pharmacyPage.locator('#h-policy ~ form input[value="prescription"]').check();
    await clickAndLoad(pharmacyPage, button(pharmacyPage, 'ルールを保存'));
    await page.goto(`${base}/viewer/${person}?tab=medication`);
    const notebook = await text(page.locator('#medication'));
    assert.ok(notebook.includes('ノルバスク') && notebook.includes('ロキソニン') && notebook.includes('工業会薬局'), `the medication notebook: ${notebook.slice(0, 300)}`);
    assert.ok(notebook.includes('アムロジピン') && notebook.includes('残薬確認: 残薬は5錠'), `the split code's dispensing and its 残薬確認: ${notebook.slice(0, 600)}`);
    const firstDay = page.locator('.month-calendars a.dispensed').first();
    assert.ok(await firstDay.isVisible(), 'dispensing dates are marked on a month calendar');
    await firstDay.click();
    assert.equal(new URL(page.url()).hash, '#d1', 'a marked day leads to its dispensing');
    await shot(page, 'medication-notebook');
    // The same dispensings under 処方, as the pharmacy's records beside the hospital's.
    await page.goto(`${base}/viewer/${person}?tab=categories`);
    await clickAndLoad(page, page.getByRole('link', { name: '処方', exact: true }));
    const prescriptions = await text(page.locator('#timeline'));
    assert.ok(prescriptions.includes('ノルバスク') && prescriptions.includes('駅前薬局'), `処方 shows the pharmacy as a source: ${prescriptions.slice(0, 300)}`);

    // An app the doctor uses connects with the doctor's own rights (SMART App Launch with
    // PKCE): the doctor approves it on the portal, the app exchanges the code for a token and
    // reads the same consented record over FHIR.
    const callbacks = [];
    appServer = http.createServer((req, res) => {
      // Only the redirect counts (the browser also asks the app for /favicon.ico).
      const url = new URL(req.url, 'http://127.0.0.1');
      if (url.pathname === '/callback') callbacks.push(url);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<p>接続しました</p>');
    });
    await new Promise((resolve) => appServer.listen(0, '127.0.0.1', resolve));
    const redirectUri = `http://127.0.0.1:${appServer.address().port}/callback`;
    cli(bin, dataDir, ['admin', 'create-client', '--client-id', 'midori-viewer', '--name', '連携ビューアアプリ',
      '--facility', HOSPITAL_CODE, '--scope', 'user/*.rs', '--redirect-uri', redirectUri]);
    const verifier = crypto.randomBytes(48).toString('base64url');
    const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
    const authorize = new URL(`${base}/oauth/authorize`);
    for (const [k, v] of Object.entries({ response_type: 'code', client_id: 'midori-viewer', redirect_uri: redirectUri,
      scope: 'launch/patient openid user/*.rs', state: 's-1', code_challenge: challenge, code_challenge_method: 'S256' })) {
      authorize.searchParams.set(k, v);
    }
    await page.goto(authorize.toString());
    await page.locator('#h-app').waitFor();
    assert.ok((await text(page.locator('#scopes'))).includes('user/*.rs'), 'the scopes asked for are shown');
    await shot(page, 'app-authorize');
    await Promise.all([page.waitForURL((u) => u.toString().startsWith(redirectUri)), button(page, '許可する').click()]);
    const back = callbacks.at(-1);
    assert.equal(back.searchParams.get('state'), 's-1');
    const exchanged = await fetch(`${base}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: back.searchParams.get('code'),
        redirect_uri: redirectUri, client_id: 'midori-viewer', code_verifier: verifier }),
    });
    assert.equal(exchanged.status, 200, 'the code is exchanged once for a token');
    const appToken = (await exchanged.json()).access_token;
    const commonId = payload.split(':')[1];
    const read = await fetch(`${base}/fhir/Observation?patient=Patient/${commonId}&_count=5`, { headers: { authorization: `Bearer ${appToken}` } });
    assert.equal(read.status, 200);
    const bundle = await read.json();
    assert.ok(bundle.total > 0, 'the doctor\'s consented lab results');
    const withheld = await fetch(`${base}/fhir/MedicationRequest?patient=Patient/${commonId}`, { headers: { authorization: `Bearer ${appToken}` } });
    const oral = ((await withheld.json()).entry ?? []).filter((e) => e.resource.meta.profile[0].endsWith('/JP_MedicationRequest'));
    assert.equal(oral.length, 0, 'prescriptions the patient withheld stay withheld for the app too (injections were consented)');

    // Break-the-glass at an emergency clinic that never read the card: the start asks for a
    // confirmation, the next page names the patient, and every page of the grant is red with the
    // time left.
    const er = parseId(cli(bin, dataDir, ['admin', 'create-facility', '--type', 'clinic', '--name', '救急クリニック']), 'er clinic');
    cli(bin, dataDir, ['admin', 'create-user', '--facility-id', String(er), '--login-id', 'er.dr', '--name', '救急 太郎', '--profession', 'doctor', '--role', 'staff', '--password', 'Er-Doctor-2026']);
    const erPage = await newPage(browser);
    await login(erPage, base, 'er.dr', 'Er-Doctor-2026');
    await finishLogin(erPage, { label: 'er doctor', password: 'Er-Doctor-2026' });
    await clickAndLoad(erPage, erPage.locator('#menu-emergency'));
    await erPage.locator('#common_id').fill(commonId);
    await erPage.locator('#reason').fill('意識障害で救急搬送、既往歴の確認');
    assert.ok(await erPage.locator('#confirm').evaluate((e) => e.required && e.validity.valueMissing), 'the start needs the confirmation ticked');
    await erPage.locator('#confirm').check();
    await clickAndLoad(erPage, button(erPage, '緊急時閲覧を開始'));
    const granted = await text(erPage.locator('.emergency-read'));
    assert.ok(granted.includes(banner.name) && granted.includes(commonId), `the page names the patient: ${granted}`);
    await shot(erPage, 'emergency-granted');
    await clickAndLoad(erPage, erPage.locator('#emergency-record'));
    assert.match(await text(erPage.locator('#emergency-banner')), /緊急時閲覧中（残り 2[34]:\d\d/, 'the red banner with the time left');
    await erPage.goto(`${base}/viewer/${person}?tab=summary`);
    assert.ok(await erPage.locator('#emergency-banner').isVisible(), 'on every tab of the grant');
    await shot(erPage, 'emergency-viewer');
    // The barcode reader scans first: the cursor starts in the QR field; a patient new here is
    // named and the patient ID asked for, then the record opens.
    await erPage.goto(`${base}/cards`);
    assert.equal(await erPage.evaluate(() => document.activeElement.id), 'scanned', 'the cursor starts in the QR field');
    await Promise.all([erPage.waitForEvent('load'), erPage.keyboard.type(payload + '\n')]);
    assert.ok((await text(erPage.locator('#scan-pending'))).includes(banner.name), 'the scanned patient is named');
    assert.equal(await erPage.evaluate(() => document.activeElement.id), 'pending_patient', 'the patient ID is asked for next');
    await Promise.all([erPage.waitForEvent('load'), erPage.keyboard.type('E-0001\n')]);
    assert.equal(pathname(erPage), `/viewer/${person}`, 'the record opens after the read');
    // A wrong scan: the error is said and the cursor is back in the QR field.
    await erPage.goto(`${base}/cards`);
    await Promise.all([erPage.waitForEvent('load'), erPage.keyboard.type('34000000000\n')]);
    assert.ok((await text(erPage.locator('.error'))).length > 0, 'the error is said');
    assert.equal(await erPage.evaluate(() => document.activeElement.id), 'scanned', 'the cursor is back in the QR field');

    // Phones: no main page is wider than a 390 px screen (tables scroll inside their box).
    const wide = [];
    const phone = async (p, urls) => {
      await p.setViewportSize({ width: 390, height: 844 });
      for (const u of urls) {
        await p.goto(`${base}${u}`);
        const [scroll, inner] = await p.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
        if (scroll > inner) wide.push(`${u}: ${scroll}px`);
        await shot(p, `phone${u.replace(/[^a-z0-9]+/gi, '-')}`);
      }
      await p.setViewportSize({ width: 1280, height: 800 });
    };
    await phone(page, ['/', '/patients', `/viewer/${person}?tab=calendar`, `/viewer/${person}?tab=timeline`, `/viewer/${person}?tab=labs`, `/viewer/${person}?tab=medication`, `/viewer/${person}?tab=summary`, '/cards', '/box', '/cases', '/facilities/search']);
    await phone(hospitalPage, ['/consents', `/consents?patient=${PATIENT}`]);
    await phone(pharmacyPage, ['/medication']);
    assert.deepEqual(wide, [], 'pages wider than a phone');

    // The operator sees each read in the person's access history.
    const operator = await newPage(browser);
    await login(operator, base, 'admin', 'Renkei-Operator-2026');
    await finishLogin(operator, { label: 'operator', password: 'Renkei-Operator-2026' });
    await operator.goto(`${base}/admin/persons/${person}/access`);
    const reads = await operator.locator('#access tbody tr', { hasText: '診療情報の閲覧' }).filter({ hasText: 'midori.dr' }).count();
    const accessText = await text(operator.locator('#access'));
    assert.ok(accessText.includes('みどり内科クリニック') && !/\bclinical\.read\b|system:/.test(accessText), 'names and words, not IDs and keys');
    assert.ok(reads >= 7, `each of the doctor's reads is audited (${reads})`);
    await shot(operator, 'access-history');
    passed = true;
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (hookServer) hookServer.close();
    if (appServer) appServer.close();
    if (server) await stopServer(server.child);
    if (passed) fs.rmSync(dataDir, { recursive: true, force: true });
    else if (server) console.error(server.stderr());
  }
});
