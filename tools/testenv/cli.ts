// Command line of the test control plane, used by the Makefile:
//   node build/tools/testenv/cli.js up|down|status|assets
//   node build/tools/testenv/cli.js restart|stop|start COMPONENT [--down=SECONDS] [--kill]
import { parseArgs } from 'node:util';
import { ensureAssets } from './assets';
import { isComponent, restartComponent, RESTARTABLE, startComponent, stopComponent } from './components';
import { down, readState, runningState, up } from './controlplane';
import { TestEnvError } from './errors';

const USAGE =
  'usage: cli.js up|down|status|assets\n' +
  `       cli.js restart|stop|start COMPONENT [--down=SECONDS] [--kill]   (COMPONENT: ${RESTARTABLE.join(', ')})`;

async function component(cmd: 'restart' | 'stop' | 'start', argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { down: { type: 'string' }, kill: { type: 'boolean' } },
    allowPositionals: true,
  });
  const name = positionals[0];
  if (!isComponent(name) || positionals.length !== 1) {
    throw new TestEnvError(
      `${cmd} needs one component: ${RESTARTABLE.join(', ')} (not "${positionals.join(' ')}")`,
    );
  }
  const downMs = values.down === undefined || values.down === '' ? 0 : Number(values.down) * 1000;
  if (!(downMs >= 0)) throw new TestEnvError(`--down=${values.down} is not a number of seconds`);
  if (cmd === 'stop') {
    await stopComponent(name, { kill: values.kill });
    console.log(`${name} stopped (its ports and data are kept; \`cli.js start ${name}\` starts it again)`);
  } else if (cmd === 'start') {
    await startComponent(name);
    console.log(`${name} running and ready`);
  } else {
    const { stoppedAt, readyAt } = await restartComponent(name, { kill: values.kill, downMs });
    console.log(
      `${name} restarted: ready again ${((readyAt - stoppedAt) / 1000).toFixed(1)} s after the stop`,
    );
  }
  return 0;
}

async function main(cmd: string | undefined, rest: string[]): Promise<number> {
  switch (cmd) {
    case 'restart':
    case 'stop':
    case 'start':
      return component(cmd, rest);
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
      console.error(USAGE);
      return 2;
  }
}

main(process.argv[2], process.argv.slice(3)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof TestEnvError) console.error(`testenv: ${err.message}`);
    else console.error('testenv: unexpected failure:', err);
    process.exit(1);
  },
);
