// The real node's network, and the rules that keep its traffic on this machine. Pods get addresses
// on a Linux bridge from the CNI bridge plugin; nothing is ever routed off the host:
// - no masquerade or SNAT anywhere, and the bridge plugin is not the gateway (so it never turns on
//   IP forwarding); the bridge's address is set here;
// - a FORWARD rule drops whatever arrives from the bridge and is not for the bridge itself;
// - `unreachable` routes for the pod range and the Service range: a ClusterIP nobody programmed fails
//   at once instead of following the default route out;
// - one DNAT rule takes the `kubernetes` Service's ClusterIP to kube-apiserver on the bridge's
//   address (in-cluster config from a pod; ADR 0012 says why this rule and not kube-proxy).
// Each rule is installed, then read back (iptables -S, ip route), before the first pod starts.
// One real node per machine: the names below are fixed, and `up` refuses a second one.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { TestEnvError } from '../errors';
import { runChecked } from '../procs';

export const BRIDGE = 'pfo0';
/** The pods' subnet, on the bridge. 198.18.0.0/15 is reserved for network testing (RFC 2544). */
export const POD_SUBNET = '198.18.0.0/24';
/** The bridge's address: the pods' gateway, where kube-apiserver, the kubelet and CoreDNS listen. */
export const GATEWAY = '198.18.0.1';
/** The pod range made unreachable beyond the bridge's own subnet. */
export const POD_RANGE = '198.18.0.0/16';
export const SERVICE_CIDR = '198.19.0.0/16';
/** The `kubernetes` Service's ClusterIP: the first address of SERVICE_CIDR. */
export const KUBERNETES_SERVICE_IP = '198.19.0.1';
const FORWARD_CHAIN = 'PFO-TESTENV-FORWARD';
const DNAT_CHAIN = 'PFO-TESTENV-APISERVER';
/** Which state folder holds the real node now (one per machine). */
const OWNER_FILE = '/run/pfo-testenv-node.owner';

function run(cmd: string, args: string[], opts: { check?: boolean } = {}): string {
  if (opts.check === false) return spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 }).stdout ?? '';
  return runChecked(cmd, args, { timeoutMs: 30_000 });
}
const ok = (cmd: string, args: string[]): boolean =>
  spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 }).status === 0;

/** The state folder whose real node holds the network, if one does. */
export function networkOwner(): string | undefined {
  try {
    return fs.readFileSync(OWNER_FILE, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Creates the bridge (with the gateway address) and the safety rules; then checks them. */
export function setUpNetwork(dir: string): void {
  const owner = networkOwner();
  if (owner && owner !== dir && fs.existsSync(owner)) {
    throw new TestEnvError(
      `a real test node already runs for ${owner} (bridge ${BRIDGE}); one per machine: ` +
        `stop it with \`TESTENV_DIR=${owner} make testenv-down\` first.`,
    );
  }
  tearDownNetwork(); // leftovers of a crashed run
  fs.writeFileSync(OWNER_FILE, dir);
  run('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
  run('ip', ['addr', 'add', `${GATEWAY}/24`, 'dev', BRIDGE]);
  run('ip', ['link', 'set', BRIDGE, 'up']);
  run('ip', ['route', 'add', 'unreachable', POD_RANGE]);
  run('ip', ['route', 'add', 'unreachable', SERVICE_CIDR]);
  run('iptables', ['-w', '-N', FORWARD_CHAIN]);
  run('iptables', ['-w', '-A', FORWARD_CHAIN, '-i', BRIDGE, '!', '-o', BRIDGE, '-j', 'DROP']);
  run('iptables', ['-w', '-I', 'FORWARD', '1', '-j', FORWARD_CHAIN]);
}

/** Sends the `kubernetes` Service's ClusterIP:443 from pods to kube-apiserver at GATEWAY:port. */
export function routeKubernetesService(apiPort: number): void {
  run('iptables', ['-w', '-t', 'nat', '-N', DNAT_CHAIN]);
  run('iptables', [
    '-w', '-t', 'nat', '-A', DNAT_CHAIN, '-i', BRIDGE, '-d', `${KUBERNETES_SERVICE_IP}/32`, '-p', 'tcp',
    '--dport', '443', '-j', 'DNAT', '--to-destination', `${GATEWAY}:${apiPort}`,
  ]); // prettier-ignore
  run('iptables', ['-w', '-t', 'nat', '-I', 'PREROUTING', '1', '-j', DNAT_CHAIN]);
}

/**
 * Reads the rules back and throws unless every one is in place: the bridge holds the gateway
 * address, FORWARD drops what leaves the bridge, no MASQUERADE or SNAT rule exists, both ranges are
 * unreachable. Returns the lines it read, for the log.
 */
export function checkNetwork(): string[] {
  const problems: string[] = [];
  const addr = run('ip', ['-4', '-o', 'addr', 'show', 'dev', BRIDGE], { check: false });
  if (!addr.includes(`${GATEWAY}/24`)) problems.push(`bridge ${BRIDGE} does not hold ${GATEWAY}/24`);
  const forward = run('iptables', ['-w', '-S', 'FORWARD']).trim().split('\n');
  if (forward[1] !== `-A FORWARD -j ${FORWARD_CHAIN}`) {
    problems.push(`the first FORWARD rule is not the jump to ${FORWARD_CHAIN}: ${forward[1] ?? '(none)'}`);
  }
  const drop = run('iptables', ['-w', '-S', FORWARD_CHAIN], { check: false });
  if (!drop.includes(`-A ${FORWARD_CHAIN} -i ${BRIDGE} ! -o ${BRIDGE} -j DROP`)) {
    problems.push(`${FORWARD_CHAIN} does not drop traffic leaving ${BRIDGE}`);
  }
  const nat = run('iptables-save', ['-t', 'nat']);
  const masq = nat.split('\n').filter((l) => /-j (MASQUERADE|SNAT)\b/.test(l));
  if (masq.length) problems.push(`masquerade or SNAT rules exist: ${masq.join('; ')}`);
  const unreachable = run('ip', ['route', 'show', 'type', 'unreachable']);
  for (const range of [POD_RANGE, SERVICE_CIDR]) {
    if (!unreachable.split('\n').some((l) => l.startsWith(`unreachable ${range}`))) {
      problems.push(`no unreachable route for ${range}`);
    }
  }
  if (problems.length) {
    throw new TestEnvError(`the real node's network is not safe to start pods on: ${problems.join('; ')}`);
  }
  return [addr.trim(), ...drop.trim().split('\n'), ...unreachable.trim().split('\n')];
}

/** Removes the bridge, the routes and the rules (each only if present). */
export function tearDownNetwork(): void {
  if (ok('iptables', ['-w', '-t', 'nat', '-S', DNAT_CHAIN])) {
    while (ok('iptables', ['-w', '-t', 'nat', '-D', 'PREROUTING', '-j', DNAT_CHAIN]));
    run('iptables', ['-w', '-t', 'nat', '-F', DNAT_CHAIN]);
    run('iptables', ['-w', '-t', 'nat', '-X', DNAT_CHAIN]);
  }
  if (ok('iptables', ['-w', '-S', FORWARD_CHAIN])) {
    while (ok('iptables', ['-w', '-D', 'FORWARD', '-j', FORWARD_CHAIN]));
    run('iptables', ['-w', '-F', FORWARD_CHAIN]);
    run('iptables', ['-w', '-X', FORWARD_CHAIN]);
  }
  for (const range of [POD_RANGE, SERVICE_CIDR]) {
    while (ok('ip', ['route', 'del', 'unreachable', range]));
  }
  if (ok('ip', ['link', 'show', BRIDGE])) run('ip', ['link', 'del', BRIDGE]);
  fs.rmSync(OWNER_FILE, { force: true });
}

/**
 * Reads back where the node's processes listen (`ss`) and throws if any listens elsewhere than on
 * loopback or the bridge's address: nothing of the test env may be reachable from outside.
 */
export function checkListeners(pids: number[]): string[] {
  const lines = run('ss', ['-Hltnup']).trim().split('\n');
  const ours = lines.filter((l) => pids.some((pid) => l.includes(`pid=${pid},`)));
  const local = (l: string): string => l.trim().split(/\s+/)[4] ?? '';
  const bad = ours.filter((l) => !/^(127\.0\.0\.1|\[::1\]|198\.18\.0\.1):\d+$/.test(local(l)));
  if (bad.length) {
    throw new TestEnvError(
      `the real node listens where it must not (only loopback and ${GATEWAY}): ${bad.join('; ')}`,
    );
  }
  return ours.map((l) => local(l));
}
