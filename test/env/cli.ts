// Command line of the test control plane, used by the Makefile:
//   node build/test/env/cli.js up|down|status|assets
import { ensureAssets } from './assets';
import { down, readState, runningState, up } from './controlplane';
import { TestEnvError } from './errors';

async function main(cmd: string | undefined): Promise<number> {
  switch (cmd) {
    case 'up': {
      const { state } = await up();
      console.log(`try: kubectl --kubeconfig ${state.kubeconfig} get nodes`);
      return 0;
    }
    case 'down':
      await down();
      return 0;
    case 'status': {
      const state = await runningState();
      if (state) {
        console.log(`running: ${state.server}, kubeconfig ${state.kubeconfig}`);
        for (const p of state.processes) console.log(`  ${p.name.padEnd(24)} pid ${p.pid}  log ${p.logFile}`);
        return 0;
      }
      console.log(readState() ? 'not healthy: run `make testenv-down` and `make testenv-up`' : 'not running');
      return 1;
    }
    case 'assets': {
      const assets = await ensureAssets();
      console.log(`control-plane binaries ready (${assets.source}):`);
      for (const [name, file] of Object.entries(assets.bin)) console.log(`  ${name.padEnd(24)} ${file}`);
      return 0;
    }
    default:
      console.error('usage: cli.js up|down|status|assets');
      return 2;
  }
}

main(process.argv[2]).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof TestEnvError) console.error(`testenv: ${err.message}`);
    else console.error('testenv: unexpected failure:', err);
    process.exit(1);
  },
);
