/** A mistake in how the command was called or configured: exit code 2, one line naming what is wrong. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
