// How the benches' stand-alone checks (own-client.ts, floor.ts) end: exit 0 when `main` resolves,
// else its message on stderr and exit 1.
export function runCheck(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}
