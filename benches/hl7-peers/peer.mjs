// @medplum/core's HL7 v2 parser (Hl7Message.parse) measured the way
// crates/renkei-hl7v2/benches/parse.rs measures Renkei.
//
// Every message of the corpus is decoded from UTF-8 and parsed on its own (the decoding is timed,
// as Renkei's Message::parse_bytes decodes too); then PID-3.1 and PID-5.1 (first repetition,
// unescaped), and for every OBX segment OBX-3.1 (raw) and OBX-5 (whole field, unescaped) are read.
// The checksum is the sum of the UTF-8 byte lengths of those values (absent values count 0). Best
// of three passes; only the parse+extract loop is timed.
//
// @medplum/core has no HL7 unescape API, so `unescape` below resolves the standard delimiter
// escapes (\F\ \S\ \T\ \R\ \E\) itself; a value without the escape character is returned as is.
//
// Usage: node peer.mjs CORPUS   (run from a directory where `@medplum/core` resolves)
// Prints `medplum-core MBps MSGps CHECKSUM`.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

// Resolve @medplum/core from the working directory (run.sh installs it in its temp dir), not
// from this file's location inside the repository.
const require = createRequire(pathToFileURL(process.cwd() + '/').href);
const { Hl7Message } = await import(pathToFileURL(require.resolve('@medplum/core')).href);

function unescape(value, ctx) {
  const esc = ctx.escapeCharacter;
  if (!value.includes(esc)) {
    return value;
  }
  const map = {
    F: ctx.fieldSeparator,
    S: ctx.componentSeparator,
    T: ctx.subcomponentSeparator,
    R: ctx.repetitionSeparator,
    E: esc,
  };
  let out = '';
  let i = 0;
  while (i < value.length) {
    const start = value.indexOf(esc, i);
    if (start < 0) {
      break;
    }
    const end = value.indexOf(esc, start + 1);
    if (end < 0) {
      break;
    }
    const code = value.slice(start + 1, end);
    out += value.slice(i, start) + (code in map ? map[code] : value.slice(start, end + 1));
    i = end + 1;
  }
  return out + value.slice(i);
}

function extract(text) {
  const m = Hl7Message.parse(text);
  const ctx = m.context;
  let n = 0;
  const pid = m.getSegment('PID');
  if (pid) {
    n += Buffer.byteLength(unescape(pid.getComponent(3, 1), ctx));
    n += Buffer.byteLength(unescape(pid.getComponent(5, 1), ctx));
  }
  for (const obx of m.getAllSegments('OBX')) {
    n += Buffer.byteLength(obx.getComponent(3, 1));
    const f5 = obx.getField(5);
    if (f5) {
      n += Buffer.byteLength(unescape(f5.toString(), ctx));
    }
  }
  return n;
}

function main() {
  const path = process.argv[2];
  if (!path) {
    console.error('usage: node peer.mjs CORPUS');
    process.exit(2);
  }
  const data = readFileSync(path);
  // Message boundaries as byte ranges; each message is decoded inside the timed loop.
  const ranges = [];
  let start = 0;
  while (start < data.length) {
    let end = data.indexOf(0x0a, start);
    if (end < 0) {
      end = data.length;
    }
    if (end > start) {
      ranges.push([start, end]);
    }
    start = end + 1;
  }
  const total = ranges.reduce((s, [a, b]) => s + (b - a), 0);
  let best = Infinity;
  let check = 0;
  for (let pass = 0; pass < 3; pass++) {
    const started = process.hrtime.bigint();
    check = 0;
    for (const [a, b] of ranges) {
      check += extract(data.toString('utf8', a, b));
    }
    const secs = Number(process.hrtime.bigint() - started) / 1e9;
    best = Math.min(best, secs);
  }
  console.log(`medplum-core ${(total / best / 1e6).toFixed(1)} ${(ranges.length / best).toFixed(0)} ${check}`);
}

main();
