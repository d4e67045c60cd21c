// containerd as the real node's container runtime: its configuration, and the images it may run.
// - Everything of its own lives under the state folder (root) and a short folder in /run (state,
//   sockets, runc's state, the pods' network namespaces): `down` finds and removes all of it.
// - No image is ever pulled: the registry configuration sends every registry to 127.0.0.1:1, where
//   nothing listens, so a pull that should not happen fails at once and sends nothing out. The images
//   a test runs (the sandbox image, `make image`'s archive) are imported with `ctr`.
// - Pods' networks come from the CNI bridge plugin (network.ts holds the bridge, the addresses and
//   the rules); runc runs containers with the cgroupfs driver (this machine is cgroup v1).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runChecked } from '../procs';
import type { NodeAssets } from './assets';
import { BRIDGE, GATEWAY, POD_SUBNET } from './network';

/** The namespace of containerd where the CRI plugin keeps Kubernetes' images and containers. */
const K8S_NAMESPACE = 'k8s.io';

export interface RuntimePaths {
  /** Under the state folder: configuration, containerd's root (images, snapshots), the kubelet's root. */
  nodeDir: string;
  /** Short, under /run: sockets (their paths have a length limit), containerd's state, runc's state, netns. */
  runDir: string;
  socket: string;
  config: string;
}

export function runtimePaths(stateDir: string): RuntimePaths {
  const nodeDir = path.join(stateDir, 'node');
  const id = crypto.createHash('sha256').update(path.resolve(stateDir)).digest('hex').slice(0, 8);
  const runDir = `/run/pfo-testenv-${id}`;
  return {
    nodeDir,
    runDir,
    socket: path.join(runDir, 'containerd.sock'),
    config: path.join(nodeDir, 'containerd.toml'),
  };
}

/** Writes containerd's configuration, the CNI network and the registry redirection; returns the paths. */
export function writeRuntimeConfig(p: RuntimePaths, assets: NodeAssets, sandboxImage: string): void {
  const cniConf = path.join(p.nodeDir, 'cni');
  const certsD = path.join(p.nodeDir, 'registries', '_default');
  for (const d of [p.nodeDir, p.runDir, cniConf, certsD]) fs.mkdirSync(d, { recursive: true, mode: 0o755 });
  // Every registry, by `_default`: a refused loopback port instead of the registry itself.
  fs.writeFileSync(
    path.join(certsD, 'hosts.toml'),
    'server = "https://127.0.0.1:1"\n\n[host."https://127.0.0.1:1"]\n  capabilities = ["pull", "resolve"]\n',
  );
  fs.writeFileSync(
    path.join(cniConf, '10-pfo-testenv.conflist'),
    JSON.stringify(
      {
        cniVersion: '1.0.0',
        name: 'pfo-testenv',
        plugins: [
          {
            type: 'bridge',
            bridge: BRIDGE,
            // Not the gateway: the plugin would turn on IP forwarding. network.ts gave the bridge its
            // address; the pods' default route names it.
            isGateway: false,
            ipMasq: false,
            hairpinMode: true,
            ipam: {
              type: 'host-local',
              ranges: [
                [
                  {
                    subnet: POD_SUBNET,
                    rangeStart: '198.18.0.10',
                    rangeEnd: '198.18.0.250',
                    gateway: GATEWAY,
                  },
                ],
              ],
              routes: [{ dst: '0.0.0.0/0', gw: GATEWAY }],
              dataDir: path.join(p.runDir, 'cni-ipam'),
            },
          },
          { type: 'portmap', capabilities: { portMappings: true }, snat: false },
        ],
      },
      null,
      2,
    ),
  );
  const toml = `# Written by tools/testenv/node/containerd.ts for the test env's real node.
version = 3
root = ${q(path.join(p.nodeDir, 'containerd'))}
state = ${q(path.join(p.runDir, 'containerd'))}

[grpc]
  address = ${q(p.socket)}

[ttrpc]
  address = ${q(`${p.socket}.ttrpc`)}

[debug]
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = ${q(sandboxImage)}
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = ${q(path.dirname(certsD))}

[plugins."io.containerd.cri.v1.runtime"]
  # This machine's root lacks CAP_SYS_RESOURCE, so no process may lower its oom_score_adj: runc would
  # fail every sandbox ("failed to update /proc/self/oom_score_adj: Permission denied"). Kept at or
  # above containerd's own instead, as in rootless and nested set-ups.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true # under containerd's state, in runDir, where down finds them
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      runtime_path = ${q(assets.bin['containerd-shim-runc-v2'])}
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = ${q(assets.runc)}
        Root = ${q(path.join(p.runDir, 'runc'))}
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [${q(assets.cniBinDir)}]
    conf_dir = ${q(cniConf)}
    max_conf_num = 1

[plugins."io.containerd.grpc.v1.cri"]
  # The streaming server (port-forward, exec, logs) on loopback only; the kubelet proxies to it.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_tls_streaming = false
`;
  fs.writeFileSync(p.config, toml);
}

function q(s: string): string {
  return JSON.stringify(s);
}

/** `ctr` against this node's containerd, in the Kubernetes namespace. */
export function ctr(assets: NodeAssets, p: RuntimePaths, args: string[]): string {
  return runChecked(assets.bin.ctr, ['--address', p.socket, '--namespace', K8S_NAMESPACE, ...args], {
    timeoutMs: 300_000,
    shownArgs: args,
  });
}

/** Imports an OCI archive into the node's containerd (the CRI plugin sees it at once). */
export function importImage(assets: NodeAssets, p: RuntimePaths, archive: string): void {
  ctr(assets, p, ['images', 'import', archive]);
}
