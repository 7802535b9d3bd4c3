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
