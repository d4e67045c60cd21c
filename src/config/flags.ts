// The operator's command line (contract: DESIGN.md §3). Parsed once at start-up; every flag also reads
// from an environment variable (PFO_ + the flag in upper snake case, e.g. PFO_PORT_RANGE); a flag given
// on the command line wins. A bad value stops start-up with one clear line (ConfigError).
import * as net from 'node:net';
import { parseArgs } from 'node:util';
import { durationMs } from '../api/duration';
import { TRANSPORT_NAMES, TransportName } from '../relay';
import { ConfigError } from './errors';

export { ConfigError };

export interface BindAddress {
  host: string;
  port: number;
}

export interface Config {
  kubeconfig?: string;
  /** Namespaces to watch; empty means all. */
  namespaces: string[];
  listenAddress: string;
  /** Listen addresses a PortForward may ask for in spec.listenAddress (besides listenAddress). */
  allowedListenAddresses: string[];
  advertiseAddress: string;
  portRange: { min: number; max: number };
  /** undefined: disabled ("0"). */
  metricsBindAddress?: BindAddress;
  healthProbeBindAddress?: BindAddress;
  leaderElect: boolean;
  /** Namespace of the Lease; '' means $POD_NAMESPACE, the ServiceAccount's namespace, else portforward-system. */
  leaderElectionNamespace: string;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  logFormat: 'json' | 'text';
  workers: number;
  /** Least time between two status writes of one PortForward that only update counters. */
  statusIntervalMs: number;
  /** Counter-only status writes a second across all PortForwards (0: no limit). */
  counterWritesPerSecond: number;
  /** How long a new client connection waits for a ready pod before it is refused. */
  holdMs: number;
  /** On SIGTERM: how long open connections may finish after listeners closed. */
  shutdownGraceMs: number;
  /** How connections reach pods: auto (spdy, then spdy-websocket, then websocket) or one of them. */
  transport: 'auto' | TransportName;
  /** A target pod without a connection for this long has its pre-dialed SPDY session closed; 0: never (ADR 14). */
  sessionIdleTimeoutMs: number;
  /** Idle pre-dialed SPDY sessions held open per API server at most; 0: no cap (ADR 14). */
  maxWarmSessions: number;
  /** The class of PortForwards served (spec.className); '' serves those without one. */
  className: string;
  /** Accept exec and auth-provider users in kubeconfig Secrets (they run code, or reach token issuers). */
  insecureKubeConfigExec: boolean;
  /** Accept insecure-skip-tls-verify in kubeconfig Secrets. */
  insecureKubeConfigTls: boolean;
}

interface FlagDef {
  name: string;
  help: string;
  default: string;
  repeatable?: boolean;
  boolean?: boolean;
  env?: string;
}

const inCluster = (): boolean => !!process.env.KUBERNETES_SERVICE_HOST;

export function flagDefs(): FlagDef[] {
  return [
    {
      name: 'kubeconfig',
      help: 'kubeconfig file; default: $KUBECONFIG, ~/.kube/config, or in-cluster',
      default: '',
      env: 'KUBECONFIG',
    },
    {
      name: 'namespace',
      help: 'namespace to watch (repeatable); default: all namespaces',
      default: '',
      repeatable: true,
    },
    {
      name: 'listen-address',
      help: 'address the forwards listen on',
      default: inCluster() ? '0.0.0.0' : '127.0.0.1',
    },
    {
      name: 'allowed-listen-addresses',
      help: 'comma-separated addresses a PortForward may name in spec.listenAddress, besides --listen-address',
      default: '',
    },
    {
      name: 'advertise-address',
      help: 'address written into status endpoints; default: the listen address (127.0.0.1 for 0.0.0.0)',
      default: '',
    },
    {
      name: 'class',
      help: 'serve only PortForwards whose spec.className is NAME; default: only those without a className',
      default: '',
    },
    { name: 'port-range', help: 'range local ports are allocated from, MIN-MAX', default: '20000-29999' },
    {
      name: 'metrics-bind-address',
      help: 'host:port of the Prometheus metrics endpoint; 0 disables',
      default: ':8080',
    },
    {
      name: 'health-probe-bind-address',
      help: 'host:port of /healthz and /readyz; 0 disables',
      default: ':8081',
    },
    {
      name: 'leader-elect',
      help: 'hold a Lease so only one replica serves the forwards',
      default: 'false',
      boolean: true,
    },
    {
      name: 'leader-election-namespace',
      help: "namespace of the Lease; default: $POD_NAMESPACE, the ServiceAccount's namespace, else portforward-system",
      default: '',
    },
    {
      name: 'insecure-kubeconfig-exec',
      help: "accept exec and auth-provider users in the kubeconfig Secrets of spec.kubeConfig (Flux's flag)",
      default: 'false',
      boolean: true,
    },
    {
      name: 'insecure-kubeconfig-tls',
      help: "accept insecure-skip-tls-verify in the kubeconfig Secrets of spec.kubeConfig (Flux's flag)",
      default: 'false',
      boolean: true,
    },
    { name: 'log-level', help: 'error, warn, info or debug', default: 'info' },
    {
      name: 'log-format',
      help: 'json or text; default: text on a terminal, json otherwise',
      default: '',
    },
    { name: 'workers', help: 'PortForwards reconciled at once', default: '64' },
    {
      name: 'hold-timeout',
      help: 'how long a new connection waits for a ready pod (during a rollout) before it is refused; 0s refuses at once',
      default: '30s',
    },
    {
      name: 'shutdown-grace-period',
      help: 'on SIGTERM, how long open connections may finish after the listeners closed',
      default: '30s',
    },
    {
      name: 'transport',
      help: `how connections reach pods: auto (${TRANSPORT_NAMES.join(', else ')}, chosen once and kept), ${TRANSPORT_NAMES.slice(0, -1).join(', ')} or ${TRANSPORT_NAMES.at(-1)}`,
      default: 'auto',
    },
    {
      name: 'session-idle-timeout',
      help: 'a target pod nobody connected to for this long has its pre-dialed session closed; the next connection dials one (0s: never)',
      default: '15m',
    },
    {
      name: 'max-warm-sessions',
      help: 'pre-dialed sessions with no connection held open per API server at most; beyond it the least recently used targets go cold (0: no cap)',
      default: '1000',
    },
    {
      name: 'status-interval',
      help: 'least time between two counter-only status writes of one PortForward (e.g. 5s)',
      default: '5s',
    },
    {
      name: 'counter-writes-per-second',
      help: 'counter-only status writes a second across all PortForwards at most; beyond it they wait their turn (0: no limit)',
      default: '50',
    },
  ];
}

export function envName(def: FlagDef): string {
  return def.env ?? `PFO_${def.name.toUpperCase().replace(/-/g, '_')}`;
}

export function usage(): string {
  const lines = [
    'usage: portforward-operator [flags]',
    '',
    'Flags (each also read from the environment variable shown):',
  ];
  for (const d of flagDefs()) {
    const dflt = d.default === '' ? '' : ` (default ${JSON.stringify(d.default)})`;
    lines.push(`  --${d.name}${d.boolean ? '' : '=VALUE'}`.padEnd(36) + `${d.help}${dflt} [$${envName(d)}]`);
  }
  lines.push('  --help'.padEnd(36) + 'print this help');
  return lines.join('\n');
}

/** Parses argv (without node and script) and env into a Config, or throws a ConfigError. */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): Config {
  const defs = new Map(flagDefs().map((d) => [d.name, d]));
  const given = parseArgv(argv, defs);
  const get = (name: string): string => {
    const def = defs.get(name)!;
    const v = given.get(name);
    if (v) return v[v.length - 1];
    const e = env[envName(def)];
    return e !== undefined && e !== '' ? e : def.default;
  };
  const getAll = (name: string): string[] => {
    const v = given.get(name);
    if (v) return v;
    const e = env[envName(defs.get(name)!)];
    return e ? e.split(',').map((s) => s.trim()) : [];
  };

  const listenAddress = parseIP('listen-address', get('listen-address'));
  const className = get('class');
  const advertise = get('advertise-address');
  return {
    kubeconfig: get('kubeconfig') || undefined,
    namespaces: getAll('namespace')
      .filter(Boolean)
      .map((n) => parseDNSLabel('namespace', n)),
    listenAddress,
    allowedListenAddresses: get('allowed-listen-addresses')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((a) => parseIP('allowed-listen-addresses', a)),
    advertiseAddress: advertise
      ? parseIP('advertise-address', advertise)
      : listenAddress === '0.0.0.0'
        ? '127.0.0.1'
        : listenAddress === '::'
          ? '::1'
          : listenAddress,
    portRange: parsePortRange(get('port-range')),
    metricsBindAddress: parseBind('metrics-bind-address', get('metrics-bind-address')),
    healthProbeBindAddress: parseBind('health-probe-bind-address', get('health-probe-bind-address')),
    leaderElect: parseBool('leader-elect', get('leader-elect')),
    leaderElectionNamespace: get('leader-election-namespace')
      ? parseDNSLabel('leader-election-namespace', get('leader-election-namespace'))
      : '',
    logLevel: parseEnum('log-level', get('log-level'), ['error', 'warn', 'info', 'debug'] as const),
    logFormat: parseEnum('log-format', get('log-format') || (process.stderr.isTTY ? 'text' : 'json'), [
      'json',
      'text',
    ] as const),
    workers: parseInt('workers', get('workers'), 1, 64),
    statusIntervalMs: parseDuration('status-interval', get('status-interval')),
    counterWritesPerSecond: parseInt(
      'counter-writes-per-second',
      get('counter-writes-per-second'),
      0,
      100_000,
    ),
    holdMs: parseDuration('hold-timeout', get('hold-timeout')),
    shutdownGraceMs: parseDuration('shutdown-grace-period', get('shutdown-grace-period')),
    className: className ? parseClassName(className) : '',
    transport: parseEnum('transport', get('transport'), ['auto', ...TRANSPORT_NAMES] as const),
    sessionIdleTimeoutMs: parseDuration('session-idle-timeout', get('session-idle-timeout')),
    maxWarmSessions: parseInt('max-warm-sessions', get('max-warm-sessions'), 0, 1_000_000),
    insecureKubeConfigExec: parseBool('insecure-kubeconfig-exec', get('insecure-kubeconfig-exec')),
    insecureKubeConfigTls: parseBool('insecure-kubeconfig-tls', get('insecure-kubeconfig-tls')),
  };
}

/**
 * The command line by node:util's parseArgs (strict: no unknown flags, no positionals), with this
 * project's error lines. A boolean flag also takes `--flag=true|false|1|0`, which parseArgs alone
 * refuses: those are rewritten to `--flag` / `--no-flag` first.
 */
function parseArgv(argv: string[], defs: Map<string, FlagDef>): Map<string, string[]> {
  const args: string[] = [];
  for (const arg of argv) {
    const m = /^--([^=]+)=(.*)$/s.exec(arg);
    const def = m && defs.get(m[1]);
    if (m && def?.boolean) {
      args.push(`--${parseBool(def.name, m[2]) ? '' : 'no-'}${def.name}`);
    } else {
      args.push(arg);
    }
  }
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {};
  for (const d of defs.values()) options[d.name] = { type: d.boolean ? 'boolean' : 'string', multiple: true };
  let tokens;
  try {
    ({ tokens } = parseArgs({
      args,
      options,
      strict: true,
      allowPositionals: false,
      allowNegative: true,
      tokens: true,
    }));
  } catch (err) {
    throw argvError(err as NodeJS.ErrnoException, args);
  }
  const given = new Map<string, string[]>();
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const def = defs.get(t.name)!;
    if (given.has(t.name) && !def.repeatable) throw new ConfigError(`flag --${t.name} is given twice`);
    const value = def.boolean ? String(!t.rawName.startsWith('--no-')) : (t.value ?? '');
    given.set(t.name, [...(given.get(t.name) ?? []), value]);
  }
  return given;
}

/** parseArgs' error as one of this parser's lines. */
function argvError(err: NodeJS.ErrnoException, args: string[]): ConfigError {
  const flag = /'(-[^' ]+)/.exec(err.message)?.[1] ?? '';
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return new ConfigError(`unknown flag ${flag.replace(/^--no-/, '--')}: see --help for the flags`);
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return new ConfigError(`flag ${flag} needs a value`);
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': {
      const stray = args.find((a) => !a.startsWith('-')) ?? /'([^']*)'/.exec(err.message)?.[1] ?? '';
      return new ConfigError(`unexpected argument ${JSON.stringify(stray)}: flags start with --`);
    }
    default:
      return new ConfigError(err.message.split('\n')[0]);
  }
}

function parseIP(flag: string, v: string): string {
  if (net.isIP(v) === 0) throw new ConfigError(`--${flag}=${v} is not an IP address (e.g. 127.0.0.1 or ::1)`);
  return v;
}

function parseDNSLabel(flag: string, v: string): string {
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(v)) {
    throw new ConfigError(
      `--${flag}=${v} is not a namespace name (lowercase letters, digits and '-', at most 63)`,
    );
  }
  return v;
}

function parseClassName(v: string): string {
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(v)) {
    throw new ConfigError(
      `--class=${v} is not a class name: a DNS label of lowercase letters, digits and '-', at most 63, as in spec.className`,
    );
  }
  return v;
}

function parsePortRange(v: string): { min: number; max: number } {
  const m = /^(\d+)-(\d+)$/.exec(v);
  const min = m ? Number(m[1]) : NaN;
  const max = m ? Number(m[2]) : NaN;
  if (!m || min < 1 || max > 65535 || min > max) {
    throw new ConfigError(
      `--port-range=${v} is not a range MIN-MAX with 1 <= MIN <= MAX <= 65535 (e.g. 20000-29999)`,
    );
  }
  return { min, max };
}

function parseBind(flag: string, v: string): BindAddress | undefined {
  if (v === '0') return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(v);
  const host = m ? (m[1] ?? m[2] ?? '') : '';
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535 || (host !== '' && net.isIP(host) === 0 && host !== 'localhost')) {
    throw new ConfigError(`--${flag}=${v} is not HOST:PORT, :PORT or 0 (disabled)`);
  }
  return { host: host || '0.0.0.0', port };
}

function parseBool(flag: string, v: string): boolean {
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new ConfigError(`--${flag}=${v} is not true or false`);
}

function parseEnum<T extends string>(flag: string, v: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(v))
    throw new ConfigError(`--${flag}=${v} is not one of ${allowed.join(', ')}`);
  return v as T;
}

function parseInt(flag: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max)
    throw new ConfigError(`--${flag}=${v} is not a whole number from ${min} to ${max}`);
  return n;
}

/** Go-style durations (90s, 15m, 1h30m, 500ms) in milliseconds; throws ConfigError. */
export function parseDuration(flag: string, v: string): number {
  const ms = durationMs(v);
  if (ms === undefined)
    throw new ConfigError(`--${flag}=${v} is not a duration such as 500ms, 5s, 1m or 1h30m`);
  return ms;
}
