// File consultation and HM-Box, as their users click through them: a clinic's doctor uploads a
// 30 MB file to HM-Box (progress bar), shares it with a hospital doctor, who downloads it under its
// Japanese name; a stranger is refused; the clinic opens a view-only consultation case with a
// picture, which the hospital sees rendered but cannot download; eight days later the file is gone.
// Screenshots are kept in tests/browser/artifacts/files/.
//
// Run: RENKEI_BIN=target/debug/renkei node --test tests/browser/

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  FIXED_UNIX, artifactsFor, bodyText, button, cli, clickAndLoad, launchBrowser, login, newPage,
  parseId, pathname, renkeiBin, shot, startServer, stopServer, text, totp,
} from './lib.mjs';

const PASSWORD = 'Files-Test-2026';
const FILE_NAME = '検査結果（山田様）.pdf';
const LATER = FIXED_UNIX + 8 * 24 * 3600;

/** Logs in; on first login enrols TOTP and returns the secret (for a later login). */
async function signIn(page, base, loginId, secret = null, unix = FIXED_UNIX) {
  await page.goto(`${base}/login`);
  await login(page, base, loginId, PASSWORD);
  if (pathname(page) === '/login/enrol') {
    secret = (await text(page.locator('#totp-secret'))).replace(/\s+/g, '');
    await page.locator('#code').fill(totp(secret, unix));
    await clickAndLoad(page, button(page, '登録'));
    await clickAndLoad(page, page.locator('#continue'));
  } else if (pathname(page) === '/login/totp') {
    await page.locator('#code').fill(totp(secret, unix));
    await clickAndLoad(page, button(page, '認証'));
  }
  assert.equal(pathname(page), '/', `${loginId} reaches the portal:\n${(await bodyText(page)).slice(0, 800)}`);
  return secret;
}

test('HM-Box and file consultation: upload with progress, share, download, refusals, expiry', { timeout: 240_000 }, async () => {
  artifactsFor('files');
  const bin = renkeiBin();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'renkei-files-'));
  let server;
  let browser;
  let passed = false;
  try {
    const op = parseId(cli(bin, dataDir, ['admin', 'create-facility', '--type', 'operator', '--name', '事務局']), 'operator');
    cli(bin, dataDir, ['admin', 'create-user', '--facility-id', String(op), '--login-id', 'admin', '--name', '事務局 太郎', '--profession', 'operator', '--role', 'operator', '--password', PASSWORD]);
    const hospital = parseId(cli(bin, dataDir, ['admin', 'create-facility', '--type', 'hospital', '--name', '広島中央総合病院']), 'hospital');
    cli(bin, dataDir, ['admin', 'create-user', '--facility-id', String(hospital), '--login-id', 'chuo.rad', '--name', '放射 一郎', '--profession', 'doctor', '--role', 'staff', '--password', PASSWORD]);
    const clinic = parseId(cli(bin, dataDir, ['admin', 'create-facility', '--type', 'clinic', '--name', 'みどり内科クリニック']), 'clinic');
    cli(bin, dataDir, ['admin', 'create-user', '--facility-id', String(clinic), '--login-id', 'midori.dr', '--name', '緑川 一郎', '--profession', 'doctor', '--role', 'staff', '--password', PASSWORD]);
    const other = parseId(cli(bin, dataDir, ['admin', 'create-facility', '--type', 'clinic', '--name', 'きた診療所']), 'other clinic');
    cli(bin, dataDir, ['admin', 'create-user', '--facility-id', String(other), '--login-id', 'kita.dr', '--name', '北 三郎', '--profession', 'doctor', '--role', 'staff', '--password', PASSWORD]);

    const upload = path.join(dataDir, FILE_NAME);
    const size = 30 * 1024 * 1024 + 17;
    const bytes = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4096) bytes[i] = i % 251;
    fs.writeFileSync(upload, bytes);

    server = await startServer(bin, dataDir);
    let base = server.baseUrl;
    browser = await launchBrowser();

    // The clinic's doctor uploads to HM-Box and watches the progress bar.
    const clinicPage = await newPage(browser);
    const clinicSecret = await signIn(clinicPage, base, 'midori.dr');
    await clickAndLoad(clinicPage, clinicPage.locator('#menu-box'));
    assert.equal(pathname(clinicPage), '/box');
    assert.ok((await text(clinicPage.locator('#box-quota'))).includes('5.0 GB'), 'the quota is shown');
    await clinicPage.locator('#box-files').setInputFiles(upload);
    const seen = [];
    const watch = setInterval(async () => {
      try { seen.push(Number(await clinicPage.locator('#box-progress').getAttribute('value'))); } catch (_) { /* reloading */ }
    }, 20);
    const reloaded = clinicPage.waitForNavigation({ timeout: 60_000 });
    await button(clinicPage, 'アップロード').click();
    await clinicPage.locator('#box-progress').waitFor({ state: 'visible' });
    await reloaded;
    clearInterval(watch);
    assert.ok(seen.some((v) => v > 0 && v < 100), `the progress bar moved in steps: ${[...new Set(seen)].join(',')}`);
    const row = clinicPage.locator('#box-files-table tbody tr').first();
    assert.ok((await text(row)).includes(FILE_NAME), 'the file is listed');
    assert.ok((await text(row.locator('.expires'))).startsWith('2026-11-28'), 'deleted 7 days after upload');
    await shot(clinicPage, 'box-uploaded');

    // Shared with the hospital's doctor, by login ID.
    await row.locator('input[name=logins]').fill('chuo.rad');
    await clickAndLoad(clinicPage, row.getByRole('button', { name: '共有', exact: true }));
    assert.ok((await bodyText(clinicPage)).includes('放射 一郎 さんと共有しました'), 'shared');
    const fileHref = await clinicPage.locator('#box-files-table tbody tr a[download]').first().getAttribute('href');
    await shot(clinicPage, 'box-shared');

    // The hospital's doctor downloads it, under its Japanese name.
    const hospitalPage = await newPage(browser);
    await signIn(hospitalPage, base, 'chuo.rad');
    await clickAndLoad(hospitalPage, hospitalPage.locator('#menu-box'));
    const sharedRow = hospitalPage.locator('#box-shared-table tbody tr').first();
    assert.ok((await text(sharedRow)).includes('緑川 一郎'), 'who shared it is shown');
    const [download] = await Promise.all([
      hospitalPage.waitForEvent('download'),
      sharedRow.locator('a[download]').click(),
    ]);
    assert.equal(download.suggestedFilename(), FILE_NAME);
    assert.equal(fs.statSync(await download.path()).size, size, 'the whole file arrives');
    await shot(hospitalPage, 'box-shared-with-me');

    // Someone it was not shared with: as if it did not exist.
    const otherPage = await newPage(browser);
    await signIn(otherPage, base, 'kita.dr');
    const refused = await otherPage.goto(`${base}${fileHref}`);
    assert.equal(refused.status(), 404);
    assert.ok((await bodyText(otherPage)).includes('見つかりません'));

    // A view-only consultation case with a picture, for the whole hospital.
    await clinicPage.goto(`${base}/`);
    await clickAndLoad(clinicPage, clinicPage.locator('#menu-cases'));
    await clickAndLoad(clinicPage, clinicPage.locator('#new-case'));
    await clinicPage.locator('#title').fill('胸部X線の読影依頼');
    await clinicPage.locator('#body').fill('右下肺野の陰影についてご意見をお願いします。');
    await clinicPage.locator('#facility').selectOption({ label: '広島中央総合病院' });
    await clickAndLoad(clinicPage, button(clinicPage, '作成'));
    assert.match(pathname(clinicPage), /^\/cases\/\d+$/);
    const picture = path.join(dataDir, '胸部正面.bmp');
    // A 64x48 24-bit BMP.
    const w = 64; const h = 48; const rowBytes = w * 3;
    const bmp = Buffer.alloc(54 + rowBytes * h);
    bmp.write('BM', 0); bmp.writeUInt32LE(bmp.length, 2); bmp.writeUInt32LE(54, 10);
    bmp.writeUInt32LE(40, 14); bmp.writeInt32LE(w, 18); bmp.writeInt32LE(h, 22);
    bmp.writeUInt16LE(1, 26); bmp.writeUInt16LE(24, 28); bmp.writeUInt32LE(rowBytes * h, 34);
    for (let i = 54; i < bmp.length; i += 1) bmp[i] = (i * 7) % 256;
    fs.writeFileSync(picture, bmp);
    await clinicPage.locator('#case-files-input').setInputFiles(picture);
    const caseReloaded = clinicPage.waitForNavigation({ timeout: 30_000 });
    await button(clinicPage, '添付').click();
    await caseReloaded;
    assert.ok((await text(clinicPage.locator('#case-files'))).includes('胸部正面.bmp'), 'attached');
    const casePath = pathname(clinicPage);
    await shot(clinicPage, 'case-sender');

    await hospitalPage.goto(`${base}/`);
    await clickAndLoad(hospitalPage, hospitalPage.locator('#menu-cases'));
    await clickAndLoad(hospitalPage, hospitalPage.getByRole('link', { name: '胸部X線の読影依頼' }));
    assert.equal(pathname(hospitalPage), casePath);
    const thumb = hospitalPage.locator('#case-files img').first();
    await thumb.waitFor();
    await hospitalPage.waitForFunction(() => {
      const img = document.querySelector('#case-files img');
      return img && img.complete && img.naturalWidth > 0;
    });
    assert.equal(await thumb.evaluate((img) => img.naturalWidth), 64, 'the BMP is shown, rendered as PNG');
    assert.ok((await text(hospitalPage.locator('#case-files'))).includes('ダウンロード不可'));
    const imageHref = await hospitalPage.locator('#case-files a').first().getAttribute('href');
    const caseFile = imageHref.replace(/\/image$/, '');
    const forbidden = await hospitalPage.request.get(`${base}${caseFile}`);
    assert.equal(forbidden.status(), 403, 'view only: no download');
    await hospitalPage.locator('#reply').fill('拝見しました。肺炎を疑います。');
    await clickAndLoad(hospitalPage, button(hospitalPage, '返信する'));
    assert.ok((await text(hospitalPage.locator('#thread'))).includes('肺炎を疑います'));
    await shot(hospitalPage, 'case-recipient');
    // The stranger does not find the case.
    const noCase = await otherPage.goto(`${base}${casePath}`);
    assert.equal(noCase.status(), 404);

    // Eight days later the HM-Box file has been deleted.
    await stopServer(server.child);
    server = await startServer(bin, dataDir, { RENKEI_FIXED_CLOCK: new Date(LATER * 1000).toISOString().replace(/\.\d+Z$/, 'Z') });
    base = server.baseUrl;
    const laterPage = await newPage(browser);
    await signIn(laterPage, base, 'midori.dr', clinicSecret, LATER);
    await clickAndLoad(laterPage, laterPage.locator('#menu-box'));
    let boxText = '';
    for (let i = 0; i < 50; i += 1) {
      boxText = await bodyText(laterPage);
      if (boxText.includes('ファイルはありません')) break;
      await new Promise((r) => setTimeout(r, 200));
      await laterPage.reload();
    }
    assert.ok(boxText.includes('ファイルはありません'), `the expired file is gone:\n${boxText.slice(0, 600)}`);
    await shot(laterPage, 'box-after-expiry');
    passed = true;
  } finally {
    if (browser) await browser.close();
    if (server) {
      if (!passed) console.error(server.stderr());
      await stopServer(server.child);
    }
    if (passed) fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
