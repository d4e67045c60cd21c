// Kubernetes clients from one KubeConfig: the --kubeconfig file, else $KUBECONFIG, ~/.kube/config or
// the in-cluster ServiceAccount (client-node's loadFromDefault order).
import * as k8s from '@kubernetes/client-node';

export function loadKubeConfig(file?: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) {
    throw new Error(
      file
        ? `kubeconfig ${file} names no current cluster`
        : 'no kubeconfig found: pass --kubeconfig or set KUBECONFIG',
    );
  }
  return kc;
}

/** The HTTP status of an API error from client-node, if it carries one. */
export function statusCode(err: unknown): number | undefined {
  const e = err as { statusCode?: number; response?: { statusCode?: number }; body?: { code?: number } };
  return e?.statusCode ?? e?.response?.statusCode ?? e?.body?.code;
}

/** The API server's own message of an API error, else the error's message. */
export function apiMessage(err: unknown): string {
  const body = (err as { body?: { message?: string } })?.body;
  if (body && typeof body.message === 'string') return body.message;
  return err instanceof Error ? err.message : String(err);
}
