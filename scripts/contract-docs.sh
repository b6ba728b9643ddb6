#!/usr/bin/env bash
# Regenerates docs/openapi.json and docs/policy.schema.json from the code (the zod schemas the broker
# validates with), so the documents and the broker cannot drift apart; test/unit/http/openapi.test.ts
# fails when a committed copy is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build --silent
node -e "
const { writeFileSync } = require('node:fs');
const { contractDocuments } = require('./dist/src/http/contract/documents');
for (const [file, text] of Object.entries(contractDocuments())) { writeFileSync(file, text); console.log('wrote ' + file); }
"
