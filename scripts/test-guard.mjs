// Timeouts for `npm test` (scripts/test.mjs loads this with --import in the runner and in every test file's process).
//
// Node 20's --test-timeout bounds each test FILE in the runner process (the file's process is killed and the file
// fails, named); it does not reach the tests inside the file. This module gives each test and hook in a file's
// process a default timeout of its own, so a test that awaits forever fails with "test timed out after N ms" under
// its own name while the file's other tests still run. A synchronous loop cannot be interrupted from inside its
// process: only the file timeout stops it, so before every test the process yields once to the event loop, which
// lets the results of the tests before it reach the runner before a loop could start.
//
// Node's runner has no public option for a default per-test timeout, so this sets one on its internal Test class
// (hence --expose-internals). An explicit `{ timeout }` on a test, suite or hook wins, and subtests inherit their
// parent's timeout as usual. If the internals are not as expected, it warns and only the file timeout applies.
import { createRequire } from "node:module";
import { beforeEach } from "node:test";

const MINUTE = 60_000;

/** Per-test default: TEST_TIMEOUT_MS, else 5 minutes (20 with TEST_LONG=1). A file gets twice that. */
export function testTimeoutMs(env = process.env) {
  const given = Number(env.TEST_TIMEOUT_MS);
  if (Number.isSafeInteger(given) && given > 0) return given;
  return env.TEST_LONG === "1" ? 20 * MINUTE : 5 * MINUTE;
}

export function fileTimeoutMs(env = process.env) {
  return 2 * testTimeoutMs(env);
}

function installPerTestTimeout(timeout) {
  let internals;
  try {
    internals = createRequire(import.meta.url)("internal/test_runner/test");
  } catch {
    internals = undefined;
  }
  const { Test, Suite } = internals ?? {};
  const proto = Test?.prototype;
  if (typeof proto?.createSubtest !== "function" || typeof proto.createHook !== "function") {
    process.emitWarning("test-guard: node:test internals not found; only the per-file timeout applies");
    return;
  }
  const createSubtest = proto.createSubtest;
  proto.createSubtest = function (Factory, name, options, fn, overrides) {
    // The same argument shapes node:test accepts: (fn), (options, fn), (name, fn), (name, options, fn).
    if (typeof name === "function") [name, options, fn] = [undefined, undefined, name];
    else if (name !== null && typeof name === "object") [name, options, fn] = [undefined, name, options];
    else if (typeof options === "function") [options, fn] = [undefined, options];
    // A suite takes no default (it would bound all its tests together); its tests get one each.
    if (Factory !== Suite && this.timeout == null && options?.timeout === undefined) {
      options = { ...options, timeout };
    }
    return createSubtest.call(this, Factory, name, options, fn, overrides);
  };
  const createHook = proto.createHook;
  proto.createHook = function (hookName, fn, options) {
    if (options?.timeout === undefined) options = { ...options, timeout };
    return createHook.call(this, hookName, fn, options);
  };
}

// Only in a test file's own process (the runner marks it), not in the runner.
if (process.env.NODE_TEST_CONTEXT !== undefined) {
  installPerTestTimeout(testTimeoutMs());
  beforeEach(() => new Promise((resolve) => setImmediate(resolve)));
}
