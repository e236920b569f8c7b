// Every error a person can act on is one of these. They are thrown anywhere
// and turned into one line and an exit code in exactly one place: the CLI's
// top level (agent/cli/main.ts). The daemon logs them and carries on.

export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  unreachable: 3,
  permission: 4,
} as const;

export const EXIT_CODES_HELP =
  'Exit codes: 0 ok, 1 operation failed (e.g. lock held, job already finished, invalid file in the repository), 2 usage or invalid input, 3 remote unreachable, 4 permission denied.';

export class CoordError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** Bad argument or bad input from a person: exit 2, nothing changed. */
export class UsageError extends CoordError {
  constructor(message: string) {
    super(message, EXIT.usage);
  }
}

/** The operation could not be done as asked (lock held, job finished): exit 1. */
export class OperationError extends CoordError {
  constructor(message: string) {
    super(message, EXIT.failed);
  }
}

/** A precondition of a pure mutation failed on the state it was given. Raised
 * inside a transaction: it is final for that state and is never retried. */
export class PreconditionError extends OperationError {}

/** A coordination file in the repository is not valid JSON or breaks its schema. */
export class InvalidFileError extends OperationError {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(problems.length === 1 ? problems[0]! : `${problems[0]} (and ${problems.length - 1} more)`);
    this.problems = problems;
  }
}

/** The remote could not be reached: exit 3. */
export class UnreachableError extends CoordError {
  constructor(message: string) {
    super(message, EXIT.unreachable);
  }
}

/** The remote refused us (authentication, a hook, permissions): exit 4. */
export class PermissionError extends CoordError {
  constructor(message: string) {
    super(message, EXIT.permission);
  }
}
