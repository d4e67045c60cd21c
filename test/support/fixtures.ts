// Mocha global fixture of the suites on the test control plane (test/mocharc.integration.json,
// mocharc.e2e.json, mocharc.reliability.json): start the control plane, or reuse the one `make testenv-up`
// left running. One this run started is stopped at the end unless TESTENV_KEEP=1.
import { down, up } from '../../tools/testenv/controlplane';

let startedHere = false;

export async function mochaGlobalSetup(): Promise<void> {
  const { started } = await up((line) => console.log(`[testenv] ${line}`));
  startedHere = started;
}

export async function mochaGlobalTeardown(): Promise<void> {
  if (startedHere && process.env.TESTENV_KEEP !== '1') await down((line) => console.log(`[testenv] ${line}`));
}
