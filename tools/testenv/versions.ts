// The pinned versions of the test control plane, read from hack/controlplane/go.mod: the Kubernetes
// release (kube-apiserver, kube-controller-manager, kubectl), the etcd that release depends on, and kwok.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestEnvError } from './errors';
import { controlPlaneModule } from './paths';

export interface Versions {
  kubernetes: string; // v1.36.3
  etcd: string; // v3.6.8
  kwok: string; // v0.8.0
}

export function readVersions(goMod = path.join(controlPlaneModule, 'go.mod')): Versions {
  const text = fs.readFileSync(goMod, 'utf8');
  const find = (module: string): string => {
    const m = new RegExp(`^\\s*(?:require\\s+)?${module.replace(/\./g, '\\.')}\\s+(v\\S+)`, 'm').exec(text);
    if (!m) throw new TestEnvError(`${goMod} does not require ${module}; restore the file from git.`);
    return m[1];
  };
  return {
    kubernetes: find('k8s.io/kubernetes'),
    etcd: find('go.etcd.io/etcd/server/v3'),
    kwok: find('sigs.k8s.io/kwok'),
  };
}
