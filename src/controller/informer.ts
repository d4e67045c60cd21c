// A watch-backed cache that never gives up. @kubernetes/client-node's ListWatch stops for good on a
// watch error (and @dot-i/k8s-operator answers that with process.exit); this wrapper restarts it with
// backoff, so a restarted API server or a dropped connection costs a relist, never the process.
import * as k8s from '@kubernetes/client-node';
import { apiHint, apiMessage, statusCode } from '../kube/client';
import { errorMessage, Logger } from '../observability/logger';

export type ChangeHandler<T> = (obj: T) => void;

export interface InformerOptions<T extends k8s.KubernetesObject> {
  kind: string;
  /** API path to watch, e.g. /api/v1/pods or /api/v1/namespaces/x/pods. */
  path: string;
  list: k8s.ListPromise<T>;
  kubeConfig: k8s.KubeConfig;
  logger: Logger;
  /**
   * Applied to every object listed or watched before it is cached or handed to a handler (trim.ts).
   * Default: none, objects are kept as the API server sent them.
   */
  transform?: (obj: T) => T;
  /** First restart delay; doubles up to maxRestartDelayMs. Defaults 200 ms and 30 s. */
  restartDelayMs?: number;
  maxRestartDelayMs?: number;
}

export class ResilientInformer<T extends k8s.KubernetesObject> {
  private readonly lw: k8s.ListWatch<T>;
  private readonly handlers: ChangeHandler<T>[] = [];
  private readonly recoverHandlers: (() => void)[] = [];
  private readonly failureHandlers: ((err: unknown) => void)[] = [];
  /** The error of the latest failed list or watch, until a list succeeds again. */
  private failure: unknown;
  private stopped = false;
  private failures = 0;
  /** Failed starts since the last successful one. */
  private failedStarts = 0;
  private synced = false;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: InformerOptions<T>) {
    const transform = opts.transform;
    const list: k8s.ListPromise<T> = transform
      ? async () => {
          const l = await opts.list();
          return { ...l, items: l.items.map(transform) };
        }
      : opts.list;
    const watch = transform
      ? new TransformingWatch(opts.kubeConfig, transform)
      : new k8s.Watch(opts.kubeConfig);
    this.lw = new k8s.ListWatch<T>(opts.path, watch, list, false);
    const changed = (obj: T): void => {
      this.failures = 0;
      for (const h of this.handlers) h(obj);
    };
    this.lw.on(k8s.ADD, changed);
    this.lw.on(k8s.UPDATE, changed);
    this.lw.on(k8s.DELETE, changed);
    this.lw.on(k8s.ERROR, (err: unknown) => this.restart(err));
  }

  /** Called for every added, updated or deleted object (deletions too: look the key up again). */
  onChange(handler: ChangeHandler<T>): void {
    this.handlers.push(handler);
  }

  /**
   * Called when a list succeeds again after failures (the API server is reachable again). A relist
   * reports only objects that changed, so work that waits on something else (a status write that
   * failed meanwhile) is the caller's to resume.
   */
  onRecover(handler: () => void): void {
    this.recoverHandlers.push(handler);
  }

  /** Called on every failed list or watch, with its error (before the restart's backoff). */
  onFailure(handler: (err: unknown) => void): void {
    this.failureHandlers.push(handler);
  }

  /** The error of the latest failed list or watch while it has not listed again; else undefined. */
  lastFailure(): unknown {
    return this.failure;
  }

  /** Starts listing and watching; resolves after the first list (or keeps retrying in the background). */
  async start(): Promise<void> {
    this.stopped = false;
    // ListWatch.start() resolves also when its list failed (it reports that as an ERROR event, which
    // restarts this informer): only a start that saw no error has listed.
    const failedBefore = this.failedStarts;
    try {
      await this.lw.start();
      if (this.failedStarts !== failedBefore || this.stopped) return;
      this.synced = true;
      this.failure = undefined;
      if (this.failedStarts > 0) {
        this.opts.logger.info(`watch of ${this.opts.kind} resumed`, {
          path: this.opts.path,
          failedAttempts: this.failedStarts,
        });
        this.failedStarts = 0;
        for (const h of this.recoverHandlers) h();
      }
    } catch (err) {
      this.restart(err);
    }
  }

  hasSynced(): boolean {
    return this.synced;
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    void this.lw.stop();
  }

  get(name: string, namespace?: string): T | undefined {
    return this.lw.get(name, namespace);
  }

  list(namespace?: string): ReadonlyArray<T> {
    return this.lw.list(namespace);
  }

  private restart(err: unknown): void {
    if (this.stopped) return;
    this.failedStarts++;
    this.failure = err;
    for (const h of this.failureHandlers) h(err);
    const base = this.opts.restartDelayMs ?? 200;
    const delay = Math.min(this.opts.maxRestartDelayMs ?? 30_000, base * 2 ** Math.min(this.failures, 10));
    this.failures++;
    const code = statusCode(err);
    const hint = apiHint(err);
    const meta = {
      path: this.opts.path,
      ...(code !== undefined ? { code } : {}),
      error: apiMessage(err),
      ...(hint ? { hint } : {}),
      retryInMs: delay,
    };
    // An API server that is still starting (429 "storage is (re)initializing", 503, a refused
    // connection) is expected once: info. Anything else, or the same again, is a warning.
    const transient = code === 429 || code === 503 || /ECONNREFUSED|ECONNRESET/.test(errorMessage(err));
    if (transient && this.failures === 1) {
      this.opts.logger.info(`watch of ${this.opts.kind} not ready yet; retrying`, meta);
    } else {
      this.opts.logger.warn(`watch of ${this.opts.kind} failed; restarting`, meta);
    }
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.stopped) void this.start();
    }, delay);
  }
}

/** A Watch whose objects (not its ERROR Status or BOOKMARK) pass through `transform` first. */
class TransformingWatch<T> extends k8s.Watch {
  constructor(
    kc: k8s.KubeConfig,
    private readonly transform: (obj: T) => T,
  ) {
    super(kc);
  }

  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: any, watchObj?: any) => void, // eslint-disable-line @typescript-eslint/no-explicit-any
    done: (err: any) => void, // eslint-disable-line @typescript-eslint/no-explicit-any
  ): Promise<AbortController> {
    return super.watch(
      path,
      queryParams,
      (phase, obj, watchObj) =>
        callback(phase, phase === 'ERROR' || phase === 'BOOKMARK' ? obj : this.transform(obj as T), watchObj),
      done,
    );
  }
}
