// Bad settings: a flag, an environment variable or an option a component was built with. main prints
// the message as one line and exits 2; nothing retries it.
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
