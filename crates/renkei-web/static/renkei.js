// Small progressive enhancements; every page works without them.
'use strict';

// Facility form: typing (or scanning) a 10-digit medical-institution code fills the name, postal
// code and address from the imported national code list, leaving what the user typed alone.
document.addEventListener('DOMContentLoaded', () => {
  const code = document.querySelector('input[data-lookup]');
  if (!code) return;
  const status = document.getElementById('code-status');
  const say = (text) => { if (status) status.textContent = text; };
  code.addEventListener('change', async () => {
    const value = code.value.trim();
    if (value === '') { say(''); return; }
    try {
      const response = await fetch(code.dataset.lookup + encodeURIComponent(value), {
        headers: { accept: 'application/json' },
        credentials: 'same-origin',
      });
      if (!response.ok || !(response.headers.get('content-type') || '').includes('json')) {
        say('医療機関コードマスタに該当がありません（手入力してください）');
        return;
      }
      const found = await response.json();
      for (const field of ['name', 'postal_code', 'address']) {
        const input = document.getElementById(field);
        if (input && input.value.trim() === '' && found[field]) input.value = found[field];
      }
      say(`医療機関コードマスタから補完しました：${found.name}`);
    } catch (_) {
      say('医療機関コードマスタを参照できませんでした');
    }
  });
});

// Resumable uploads (tus 1.0) with a progress bar: files go up in chunks; after a dropped
// connection the upload asks the server how much arrived and goes on from there, also after a
// page reload (the upload's address is remembered per file in this browser's localStorage).
document.addEventListener('DOMContentLoaded', () => {
  const CHUNK = 16 * 1024 * 1024;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const b64 = (text) => {
    const bytes = new TextEncoder().encode(text);
    let bin = '';
    bytes.forEach((b) => { bin += String.fromCharCode(b); });
    return btoa(bin);
  };
  for (const form of document.querySelectorAll('form[data-upload]')) {
    const input = form.querySelector('input[type=file]');
    const bar = form.querySelector('progress');
    const status = form.querySelector('.upload-status');
    const button = form.querySelector('button[type=submit]');
    const csrf = form.dataset.csrf;
    const target = form.dataset.upload;
    const say = (text) => { status.textContent = text; };
    const headers = (extra) => Object.assign({ 'Tus-Resumable': '1.0.0', 'X-CSRF-Token': csrf }, extra);
    const offsetOf = async (url) => {
      const r = await fetch(url, { method: 'HEAD', headers: headers({}), credentials: 'same-origin' });
      if (!r.ok) return null;
      return Number(r.headers.get('Upload-Offset'));
    };
    // One PATCH by XMLHttpRequest, for its upload progress events.
    const patch = (url, offset, blob, onProgress) => new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('PATCH', url);
      const h = headers({ 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream' });
      for (const [k, v] of Object.entries(h)) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e) => onProgress(e.loaded);
      xhr.onload = () => resolve(xhr);
      xhr.onerror = () => reject(new Error('network'));
      xhr.onabort = () => reject(new Error('network'));
      xhr.send(blob);
    });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const files = [...input.files];
      if (files.length === 0) return;
      const total = files.reduce((n, f) => n + f.size, 0) || 1;
      let done = 0;
      button.disabled = true;
      bar.hidden = false;
      const show = (sent) => { bar.value = Math.floor(((done + sent) * 100) / total); };
      for (const file of files) {
        const key = `renkei-upload:${target}:${file.name}:${file.size}:${file.lastModified}`;
        let url = localStorage.getItem(key);
        let offset = url ? await offsetOf(url) : null;
        if (offset === null) {
          const meta = `filename ${b64(file.name)},filetype ${b64(file.type || '')},target ${b64(target)}`;
          const r = await fetch('/uploads', {
            method: 'POST',
            credentials: 'same-origin',
            headers: headers({ 'Upload-Length': String(file.size), 'Upload-Metadata': meta }),
          });
          if (r.status !== 201) {
            say(`${file.name}: ${await r.text()}`);
            button.disabled = false;
            return;
          }
          url = r.headers.get('Location');
          localStorage.setItem(key, url);
          offset = 0;
        }
        let failures = 0;
        while (offset < file.size) {
          say(`${file.name} を送信中… ${Math.floor((offset * 100) / file.size)}%`);
          try {
            const xhr = await patch(url, offset, file.slice(offset, offset + CHUNK), (n) => show(offset + n));
            if (xhr.status === 204) {
              offset = Number(xhr.getResponseHeader('Upload-Offset'));
              failures = 0;
            } else if (xhr.status === 409) {
              offset = await offsetOf(url);
              if (offset === null) throw new Error('gone');
            } else {
              localStorage.removeItem(key);
              say(`${file.name}: ${xhr.responseText}`);
              button.disabled = false;
              return;
            }
          } catch (e) {
            failures += 1;
            if (failures > 30) {
              say(`${file.name}: 接続できません。回線を確認してから、もう一度「${button.textContent}」を押すと続きから再開します`);
              button.disabled = false;
              return;
            }
            say(`接続が切れました。再開します…（${failures} 回目）`);
            await sleep(Math.min(1000 * failures, 10000));
            const at = await offsetOf(url).catch(() => null);
            if (at !== null) offset = at;
          }
          show(offset);
        }
        localStorage.removeItem(key);
        done += file.size;
        show(0);
      }
      bar.value = 100;
      say('アップロードが完了しました');
      setTimeout(() => { window.location.reload(); }, 400);
    });
  }
});

// Print buttons: the app's CSP allows no inline handlers, so a button marked data-print prints
// the page here (its print CSS leaves out the navigation).
document.addEventListener('DOMContentLoaded', () => {
  for (const button of document.querySelectorAll('button[data-print]')) {
    button.addEventListener('click', () => window.print());
  }
});
