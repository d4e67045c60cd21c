// The real node's kubelet (and CoreDNS, the cluster DNS it hands to pods). Settings this machine
// needs, each with its reason (ADR 0012 lists them):
// - cgroupfs driver and failCgroupV1: false: the machine is cgroup v1 (hybrid), and kubelet 1.35+
//   refuses v1 unless told; pods go under a cgroup root of their own, which `down` removes;
// - no swap check, image garbage collection off (images are imported, never pulled again), eviction
//   thresholds low (a shared developer disk must not evict the test's pods);
// - it listens on the bridge's address (the API server reaches it there; so can pods, as on any node)
//   and its health port on loopback; the API server authenticates with a client certificate
//   (kubelet-client.crt, made here) and the kubelet asks the API server whether it may (Webhook);
// - pods' DNS: CoreDNS on the bridge's address, resolv.conf with no host name servers (a pod resolves
//   cluster names and nothing else).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runChecked } from '../procs';
import { GATEWAY } from './network';

export const REAL_NODE_NAME = 'real-node-0';
export const REAL_NODE_LABEL = 'portforward.dev/testenv-node';
/** Pods' cgroups go under this root in every v1 hierarchy. */
export const CGROUP_ROOT = '/pfo-testenv';

/** A CA, and a client certificate from it for the API server's calls to the kubelet. */
export function kubeletClientPki(pki: string): { ca: string; cert: string; key: string } {
  const ca = path.join(pki, 'kubelet-ca.crt');
  const caKey = path.join(pki, 'kubelet-ca.key');
  const cert = path.join(pki, 'kubelet-client.crt');
  const key = path.join(pki, 'kubelet-client.key');
  const csr = path.join(pki, 'kubelet-client.csr');
  const openssl = (args: string[]): string => runChecked('openssl', args);
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', ca, '-days', '7',
    '-subj', '/CN=pfo-testenv-kubelet-ca']); // prettier-ignore
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr,
    '-subj', '/O=system:masters/CN=kube-apiserver-kubelet-client']); // prettier-ignore
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca,
    '-CAkey',
    caKey,
    '-CAcreateserial',
    '-out',
    cert,
    '-days',
    '7',
  ]);
  return { ca, cert, key };
}

export interface KubeletFiles {
  config: string;
  rootDir: string;
  args: string[];
  healthz: string;
}

export function writeKubeletConfig(opts: {
  nodeDir: string;
  kubeconfig: string;
  clientCA: string;
  socket: string;
  port: number;
  healthzPort: number;
}): KubeletFiles {
  const rootDir = path.join(opts.nodeDir, 'kubelet');
  fs.mkdirSync(rootDir, { recursive: true });
  const resolvConf = path.join(opts.nodeDir, 'resolv.conf');
  fs.writeFileSync(resolvConf, '# pods resolve cluster names only (CoreDNS at the cluster DNS address)\n');
  const config = path.join(opts.nodeDir, 'kubelet.yaml');
  const kubelet = {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: GATEWAY,
    port: opts.port,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: opts.healthzPort,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: opts.clientCA },
    },
    authorization: { mode: 'Webhook' },
    containerRuntimeEndpoint: `unix://${opts.socket}`,
    cgroupDriver: 'cgroupfs',
    failCgroupV1: false,
    cgroupRoot: CGROUP_ROOT,
    failSwapOn: false,
    clusterDNS: [GATEWAY],
    clusterDomain: 'cluster.local',
    resolvConf,
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
    serializeImagePulls: false,
    maxPods: 110,
    // A pod's status reaches the API server without waiting for the periodic sync.
    nodeStatusUpdateFrequency: '4s',
    syncFrequency: '10s',
    fileCheckFrequency: '0s',
    staticPodPath: '',
    protectKernelDefaults: false,
    makeIPTablesUtilChains: false,
    localStorageCapacityIsolation: true,
  };
  fs.writeFileSync(config, JSON.stringify(kubelet, null, 2));
  return {
    config,
    rootDir,
    healthz: `http://127.0.0.1:${opts.healthzPort}/healthz`,
    args: [
      `--config=${config}`,
      `--kubeconfig=${opts.kubeconfig}`,
      `--root-dir=${rootDir}`,
      `--cert-dir=${path.join(rootDir, 'pki')}`,
      `--hostname-override=${REAL_NODE_NAME}`,
      `--node-ip=${GATEWAY}`,
      `--node-labels=${REAL_NODE_LABEL}=real`,
      '--v=1',
    ],
  };
}

/** CoreDNS on the bridge's address, answering for cluster.local from the API server, nothing else. */
export function writeCorefile(nodeDir: string, kubeconfig: string): string {
  const file = path.join(nodeDir, 'Corefile');
  fs.writeFileSync(
    file,
    `cluster.local:53 {
    bind ${GATEWAY}
    errors
    kubernetes cluster.local {
        kubeconfig ${kubeconfig}
        pods insecure
        ttl 1
    }
}
# Any other name: refused (no forward plugin in this build; nothing leaves the machine).
.:53 {
    bind ${GATEWAY}
    errors
}
`,
  );
  return file;
}
