// Validates an AsyncAPI document with the official parser (from static/node_modules) and prints
// its diagnostics as JSON: exit 0 when it has no errors, 1 otherwise.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

const require = createRequire(new URL("../../static/", import.meta.url));
const { Parser, DiagnosticSeverity } = require("@asyncapi/parser");

const [path] = process.argv.slice(2);
const { document, diagnostics } = await new Parser().parse(await readFile(path, "utf8"));
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
const report = (d) => ({ code: d.code, message: d.message, path: d.path.join(".") });
console.log(JSON.stringify({
  valid: document !== undefined && errors.length === 0,
  version: document?.version(),
  operations: document ? document.operations().all().map((o) => o.id()) : [],
  errors: errors.map(report),
  warnings: diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning).map(report),
}));
process.exit(errors.length === 0 && document ? 0 : 1);
