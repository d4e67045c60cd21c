/**
 * An error meant for a person at a terminal: one sentence that says what is wrong and what to do.
 * The command-line entry point prints only the message of a TestEnvError, without a stack.
 */
export class TestEnvError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TestEnvError';
  }
}
