#!/usr/bin/env node
// portforward-operator: `node dist/main.js [flags]` (see --help). A bad flag stops start-up with one
// line on stderr and exit code 2; SIGTERM and SIGINT close every listener and exit 0; a start-up
// failure, or a part that cannot work at all, exits 1. The only place that ends the process.
import { ConfigError, parseConfig, usage } from './config/flags';
import { loadKubeConfig } from './kube/client';
import { createLogger, errorMessage } from './observability/logger';
import { PortForwardOperator } from './operator';

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(usage());
    return 0;
  }
  let cfg;
  try {
    cfg = parseConfig(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`portforward-operator: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const log = createLogger(cfg.logLevel, cfg.logFormat);
  let kc;
  try {
    kc = loadKubeConfig({ file: cfg.kubeconfig });
  } catch (err) {
    console.error(`portforward-operator: ${errorMessage(err)}`);
    return 2;
  }
  const operator = PortForwardOperator.create(cfg, kc, log);
  const stopped = new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info(`${signal} received; closing listeners`);
      operator.shutdown().then(
        () => resolve(0),
        (err) => {
          log.error('shutdown failed', { error: errorMessage(err) });
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    // A part that cannot work at all (the relay's worker thread did not start): exit 1 at once.
    operator.onFatal((message, err) => {
      log.error(message, { error: errorMessage(err) });
      resolve(1);
    });
  });
  try {
    await operator.run();
  } catch (err) {
    log.error(`start-up failed: ${errorMessage(err)}`);
    await operator.shutdown(0).catch(() => undefined);
    return 1;
  }
  return stopped;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('portforward-operator: unexpected failure:', err);
    process.exit(1);
  },
);
