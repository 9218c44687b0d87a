// axe-core in the browser tests: injects axe.min.js into a page (the page's
// context must be created with `bypassCSP: true`, the hub's CSP forbids inline
// scripts) and runs the WCAG 2.1 A and AA rules on the whole document.
//
//   const audit = new A11yAudit();
//   await audit.check(page, 'hosts · light · desktop');   // one line per screen
//   audit.assertClean();                                  // fails with every violation found

import { AssertionError } from 'node:assert';
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
export const AXE_VERSION = require('axe-core/package.json').version;
export const WCAG_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

/** The WCAG 2.1 A/AA violations on `page` now: [{ id, impact, help, nodes: [{ target, summary }] }]. */
export async function axeViolations(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.addScriptTag({ content: AXE_SOURCE });
  return page.evaluate(async (tags) => {
    const r = await window.axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })),
    }));
  }, WCAG_TAGS);
}

/** One violation as a readable line or three: rule id, impact, how many, the first few targets. */
export function describeViolation(v, first = 3) {
  const targets = v.nodes.slice(0, first).map((n) => `      ${n.target}${n.summary ? `  — ${n.summary.split('\n').slice(1, 2).join(' ').trim()}` : ''}`);
  const more = v.nodes.length > first ? [`      … and ${v.nodes.length - first} more`] : [];
  return [`  ${v.id} (${v.impact}, ${v.nodes.length} node${v.nodes.length === 1 ? '' : 's'}): ${v.help}`, ...targets, ...more].join('\n');
}

/** Checks screen after screen; remembers each one's violations so one run reports them all. */
export class A11yAudit {
  constructor() {
    this.screens = []; // { label, violations }
  }

  /** Runs axe on `page` as it is now and records the result under `label`. */
  async check(page, label) {
    const violations = await axeViolations(page);
    this.screens.push({ label, violations });
    return violations;
  }

  /** Violations (rules × nodes) per screen label. */
  counts() {
    return this.screens.map(({ label, violations }) => ({ label, rules: violations.length, ids: violations.map((v) => v.id), nodes: violations.reduce((a, v) => a + v.nodes.length, 0) }));
  }

  /** Throws one message listing every screen with violations, each with its rules and first targets. */
  assertClean() {
    const bad = this.screens.filter((s) => s.violations.length);
    if (!bad.length) return;
    const text = bad.map((s) => `${s.label}:\n${s.violations.map((v) => describeViolation(v)).join('\n')}`).join('\n');
    throw new AssertionError({ message: `WCAG 2.1 A/AA violations on ${bad.length} of ${this.screens.length} screens (axe-core ${AXE_VERSION}):\n${text}` });
  }
}

/** Fails right away if `page` has any WCAG 2.1 A/AA violation. */
export async function expectAccessible(page, label) {
  const audit = new A11yAudit();
  await audit.check(page, label);
  audit.assertClean();
}
