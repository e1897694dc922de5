#!/usr/bin/env bash
# What `npm test` runs: setup, typecheck, the vitest projects node + browser, then the
# end-to-end tests (project e2e: the demos, and the packed package in a scratch app). The last
# line of output is `N passed, M failed` (`, K skipped` when some were skipped); the exit status
# is non-zero when anything failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! bash scripts/setup.sh; then
  echo "setup failed"
  echo "0 passed, 1 failed"
  exit 1
fi

mkdir -p reports
rm -f reports/vitest.json reports/vitest-e2e.json

extra_failed=0

echo "== tsc --noEmit"
if ! npx tsc --noEmit; then
  echo "tsc failed"
  extra_failed=$((extra_failed + 1))
fi

echo "== vitest: node + browser"
npx vitest run --project node --project browser --reporter=default --reporter=json --outputFile=reports/vitest.json
unit_rc=$?

echo "== vitest: e2e"
npx vitest run --project e2e --reporter=default --reporter=json --outputFile=reports/vitest-e2e.json
e2e_rc=$?

node - "$extra_failed" "$unit_rc" reports/vitest.json "$e2e_rc" reports/vitest-e2e.json <<'JS'
const { existsSync, readFileSync } = require('node:fs');
const [extra, ...runs] = process.argv.slice(2);
let passed = 0;
let failed = Number(extra);
let skipped = 0;
for (let i = 0; i < runs.length; i += 2) {
  const rc = Number(runs[i]);
  const file = runs[i + 1];
  if (!existsSync(file)) {
    console.error(`${file}: missing (vitest exited ${rc})`);
    failed += 1;
    continue;
  }
  const r = JSON.parse(readFileSync(file, 'utf8'));
  passed += r.numPassedTests ?? 0;
  skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  let f = r.numFailedTests ?? 0;
  // A test file that failed to load has no test results of its own: count it once.
  for (const s of r.testResults ?? []) if (s.status === 'failed' && (s.assertionResults ?? []).length === 0) f += 1;
  if (rc !== 0 && f === 0) {
    console.error(`${file}: vitest exited ${rc} without a failed test`);
    f = 1;
  }
  failed += f;
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 ? 1 : 0);
JS
