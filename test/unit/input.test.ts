// What people type (agent/model/input.ts): each parser's accepted and refused
// values, and isValidBranch against git's own `check-ref-format --branch`.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { execa } from 'execa';
import { UsageError } from '../../agent/errors.js';
import {
  isValidBranch,
  parseBranch,
  parseCommit,
  parseCount,
  parseDuration,
  parseJobId,
  parseLabel,
  parseName,
  parsePriority,
  parseSource,
  parseText,
  parseType,
} from '../../agent/model/input.js';
import { cleanupAll, gitEnv, tmpDir } from '../helpers/git.js';

after(cleanupAll);

/** Asserts fn(value) throws a one-line UsageError that names the flag. */
function refuses(fn: (v: unknown) => unknown, value: unknown, flag: string): void {
  assert.throws(
    () => fn(value),
    (e: unknown) => {
      assert.ok(e instanceof UsageError, `${JSON.stringify(value)}: a UsageError, got ${String(e)}`);
      assert.ok(e.message.includes(flag), `${JSON.stringify(value)}: message names ${flag}: ${e.message}`);
      assert.ok(!e.message.includes('\n'), `${JSON.stringify(value)}: message is one line: ${JSON.stringify(e.message)}`);
      return true;
    },
    `${JSON.stringify(value)} is refused`,
  );
}

describe('parsePriority', () => {
  it('accepts integers 1..10, as numbers or trimmed strings', () => {
    const ok: Array<[unknown, number]> = [
      ['1', 1],
      ['5', 5],
      ['10', 10],
      [' 3 ', 3],
      ['03', 3],
      [1, 1],
      [10, 10],
      [7.0, 7],
    ];
    for (const [v, want] of ok) assert.equal(parsePriority(v), want, JSON.stringify(v));
  });

  it('refuses everything else, naming --priority', () => {
    for (const v of ['0', '11', '1.5', 'abc', '', ' ', '-1', '+3', '1e1', '0x3', '3abc', '100000000000000000000', 1.5, 0, 11, NaN, Infinity, null, undefined, true, ['1'], {}]) {
      refuses((x) => parsePriority(x), v, '--priority');
    }
  });

  it('uses the flag it is given', () => {
    refuses((x) => parsePriority(x, '--prio'), '0', '--prio');
  });
});

describe('parseDuration', () => {
  it('turns 500ms, 2s, 10m, 1.5h, 7d into milliseconds', () => {
    const ok: Array<[string, number]> = [
      ['500ms', 500],
      ['1ms', 1],
      ['2s', 2000],
      ['10m', 600_000],
      ['1.5h', 5_400_000],
      ['7d', 7 * 86_400_000],
      ['366d', 366 * 86_400_000],
      [' 2s ', 2000],
      ['0.5s', 500],
    ];
    for (const [v, want] of ok) assert.equal(parseDuration(v, '--timeout'), want, v);
  });

  it('refuses zero, negatives, no unit, unknown units and more than a year', () => {
    for (const v of ['0s', '0ms', '0.0h', '-1s', '10', 'forever', '1y', '1w', '2 s', 's', '', '1.s', '.5s', '367d', '9999999999d', '1e3ms', 10, null, undefined]) {
      refuses((x) => parseDuration(x, '--timeout'), v, '--timeout');
    }
  });

  it('never returns 0: a duration that rounds to 0 ms is refused', () => {
    // "must be more than 0" is checked before Math.round, so '0.4ms' comes
    // back as 0; `job add --timeout 0.4ms` then fails as an internal error
    // when the schema refuses timeout_seconds 0.
    refuses((x) => parseDuration(x, '--timeout'), '0.4ms', '--timeout');
  });
});

describe('parseLabel', () => {
  it('splits key=value at the first "="', () => {
    const ok: Array<[string, [string, string]]> = [
      ['os=linux', ['os', 'linux']],
      ['arch=arm64', ['arch', 'arm64']],
      ['k=', ['k', '']],
      ['k=v=w', ['k', 'v=w']],
      ['a.b_c-d=x y', ['a.b_c-d', 'x y']],
      ['K9=é', ['K9', 'é']],
      [`${'k'.repeat(64)}=${'v'.repeat(128)}`, ['k'.repeat(64), 'v'.repeat(128)]],
    ];
    for (const [v, want] of ok) assert.deepEqual(parseLabel(v), want, v);
  });

  it('refuses a missing "=", a bad key, control characters and overlong parts', () => {
    for (const v of ['novalue', '=v', 'a b=c', 'k/x=v', 'k=a\nb', 'k=a\tb', 'k=a\x00b', `${'k'.repeat(65)}=v`, `k=${'v'.repeat(129)}`, '', 5, null]) {
      refuses((x) => parseLabel(x), v, '--label');
    }
  });
});

describe('parseCommit', () => {
  it('accepts 7 to 40 lowercase hex digits', () => {
    for (const v of ['abcdef0', '0123456789abcdef0123456789abcdef01234567', 'deadbeefcafe']) assert.equal(parseCommit(v), v);
  });

  it('refuses refs, short, long, uppercase and anything with other characters', () => {
    for (const v of ['HEAD', 'main', 'xyz', 'abcdef', 'a'.repeat(41), 'ABCDEF0', 'abcdef0 ', ' abcdef0', 'abcdef0^', 'abcdef0~1', '; rm -rf /', '', 1234567, null]) {
      refuses((x) => parseCommit(x), v, '--commit');
    }
  });
});

describe('parseName', () => {
  it('accepts letters, digits, ".", "_", "-", at most 64, starting with a letter or digit', () => {
    for (const v of ['build1', 'b', '9', 'Build-2.local_x', 'x'.repeat(64)]) assert.equal(parseName(v, '--on'), v);
  });

  it('refuses the rest', () => {
    for (const v of ['', 'bad name', '-x', '.x', '_x', 'a/b', 'a:b', 'é', 'x'.repeat(65), 'a\nb', '../x', 'x;y', 7, null, undefined]) {
      refuses((x) => parseName(x, '--on'), v, '--on');
    }
  });
});

describe('parseType', () => {
  it('accepts lowercase types', () => {
    for (const v of ['build', 'maven', 'deb', 'make', 'distcc-smoketest', 'x', 'a1', 'a'.repeat(32)]) assert.equal(parseType(v), v);
  });

  it('refuses uppercase, spaces, paths, punctuation and a leading digit or dash', () => {
    for (const v of ['Make', 'MAVEN', 'a b', '../x', 'x;y', 'x_y', 'x.y', '1x', '-x', '', 'a'.repeat(33), 'é', null]) {
      refuses((x) => parseType(x), v, '--type');
    }
  });
});

describe('parseJobId', () => {
  it('accepts ids and prefixes of id characters', () => {
    for (const v of ['job_20261123T101500Z_3f9a1c2b7d', 'job_nope', 'job_2026', 'x'.repeat(90)]) assert.equal(parseJobId(v), v);
  });

  it('refuses paths, spaces, dots, newlines and overlong ids', () => {
    for (const v of ['../../etc/passwd', 'job_a/b', 'job a', 'job_a.b', '', 'x'.repeat(91), 'job_a\n', null, 12]) {
      refuses((x) => parseJobId(x, '--after'), v, '--after');
    }
  });
});

describe('parseCount', () => {
  it('accepts integers in range', () => {
    assert.equal(parseCount('0', '--retries', 0, 20), 0);
    assert.equal(parseCount('20', '--retries', 0, 20), 20);
    assert.equal(parseCount(' 7 ', '--retries', 0, 20), 7);
    assert.equal(parseCount(3, '--retries', 0, 20), 3);
  });

  it('refuses out of range, negative, fractional and non-numbers', () => {
    for (const v of ['-1', '21', '100', '1.5', 'x', '', '1e1', 1.5, -1, null]) refuses((x) => parseCount(x, '--retries', 0, 20), v, '--retries');
    refuses((x) => parseCount(x, '--attempt', 1, 1_000_000), '0', '--attempt');
  });
});

describe('parseText', () => {
  it('accepts text up to the limit, with newlines unless single-line', () => {
    assert.equal(parseText('', '--description', 10), '');
    assert.equal(parseText('x'.repeat(10), '--description', 10), 'x'.repeat(10));
    assert.equal(parseText('two\nlines', '--description', 100), 'two\nlines');
    assert.equal(parseText('tab\there', '--summary', 100, { singleLine: true }), 'tab\there');
    assert.equal(parseText('é日本', '--description', 3), 'é日本');
  });

  it('refuses overlong text, line breaks in single-line text, NUL anywhere, and non-strings', () => {
    refuses((x) => parseText(x, '--description', 10), 'x'.repeat(11), '--description');
    refuses((x) => parseText(x, '--description', 2000), 'x'.repeat(2001), '--description');
    refuses((x) => parseText(x, '--summary', 100, { singleLine: true }), 'a\nb', '--summary');
    refuses((x) => parseText(x, '--summary', 100, { singleLine: true }), 'a\rb', '--summary');
    refuses((x) => parseText(x, '--summary', 100, { singleLine: true }), 'a\x00b', '--summary');
    refuses((x) => parseText(x, '--description', 100), 'a\x00b', '--description');
    refuses((x) => parseText(x, '--description', 100), 5, '--description');
    refuses((x) => parseText(x, '--description', 100), undefined, '--description');
  });
});

describe('parseSource', () => {
  it('accepts URLs and paths', () => {
    for (const v of ['https://example.org/x.git', 'git@example.org:fleet/x.git', '/srv/git/x.git', './rel', 'file:///tmp/x']) assert.equal(parseSource(v), v);
  });

  it('refuses empty, option-like, control characters and overlong sources', () => {
    for (const v of ['', '--upload-pack=x', '-x', 'a\nb', 'a\tb', 'a\x1bb', 'a\x7fb', 'a\x00b', 'x'.repeat(1025), null]) refuses((x) => parseSource(x), v, '--source');
  });
});

// ---------------------------------------------------------------- branches

const BRANCHES: string[] = [
  'main',
  'master',
  'release/2.1',
  'feature/x-y_z',
  'a/b/c/d/e',
  'refs/heads/x',
  'a.b',
  'x.lockx',
  'lock',
  'a/HEAD',
  'HEAD/x',
  'foo@',
  'a@b',
  '@a',
  'x/@',
  'x/@/y',
  '$(touch)',
  'a..b',
  'a..',
  'a//b',
  'feature//x',
  '/a',
  'a/',
  'a/b/',
  'a.',
  'a/.',
  '.',
  '..',
  'a.lock',
  'a/b.lock',
  'a.lock/b',
  'a/b.lock/c',
  'a.LOCK',
  'a.lock.',
  '.hidden',
  'x/.y',
  'a/./b',
  'a/../b',
  '@',
  '@{',
  'a@{1}',
  '@{-1}',
  '@{upstream}',
  'a b',
  'a~1',
  '~',
  'a^',
  'a:b',
  'a?b',
  'a*b',
  'a[b',
  'a]b',
  'a{b',
  'a!b',
  'a#b',
  'a\\b',
  'a\x01b',
  'a\x1fb',
  'a\x7fb',
  'a\tb',
  'a\nb',
  'a\u00a0b',
  '-dash',
  '-',
  '--upload-pack=evil',
  'a/-b',
  'HEAD',
  'x'.repeat(255),
  'x'.repeat(256),
  'a/'.repeat(127) + 'b',
  'x'.repeat(1000),
  'é',
  'branché',
  'ä/ö',
  '日本',
  '',
];

/**
 * Where we are stricter than git on purpose. git may accept these (depending
 * on its version), we never do.
 */
function intendedStricter(name: string): string | null {
  // A leading '-' reads as an option to whatever command the branch reaches
  // (git fetch, git clone --branch); git >= 2.x refuses it too, older ones did not.
  if (name.startsWith('-')) return 'leading "-": could be taken for an option';
  // `git check-ref-format --branch @` accepts '@' outside a repository (inside
  // one it expands it to the current branch), but '@' is shorthand for HEAD
  // and no ref may be the single character '@' (check-ref-format rule 9).
  if (name === '@') return '"@" alone is HEAD shorthand';
  // git has no length limit; the jobs schema caps branch at 255 characters.
  if (name.length > 255) return 'longer than the schema maxLength of 255';
  return null;
}

describe('isValidBranch agrees with git check-ref-format --branch', () => {
  let where: Promise<{ cwd: string; env: Record<string, string> }> | undefined;
  const gitAccepts = async (name: string): Promise<boolean> => {
    // Run outside any repository: there '@{-1}' and '@' must not expand to a branch.
    where ??= (async () => ({ cwd: await tmpDir('refcheck-'), env: await gitEnv() }))();
    const { cwd, env } = await where;
    const r = await execa('git', ['check-ref-format', '--branch', name], { cwd, env, extendEnv: false, reject: false, stdin: 'ignore' });
    if (r.exitCode !== 0 && r.exitCode !== 128 && r.exitCode !== 1) throw new Error(`git check-ref-format exited ${r.exitCode}: ${r.stderr}`);
    return r.exitCode === 0;
  };

  it('has a corpus of at least 40 names', () => {
    assert.ok(BRANCHES.length >= 40, `${BRANCHES.length} names`);
  });

  for (const name of BRANCHES) {
    const label = name.length > 40 ? `${JSON.stringify(name.slice(0, 20))}… (${name.length} chars)` : JSON.stringify(name);
    it(label, async () => {
      const ours = isValidBranch(name);
      const why = intendedStricter(name);
      if (why) {
        assert.equal(ours, false, `we refuse ${label} on purpose: ${why}`);
        return;
      }
      const theirs = await gitAccepts(name);
      assert.equal(ours, theirs, `git ${theirs ? 'accepts' : 'refuses'} ${label}, isValidBranch says ${ours}`);
    });
  }

  it('refuses a NUL byte (no argv can carry one to git)', () => {
    assert.equal(isValidBranch('a\x00b'), false);
  });
});

describe('parseBranch', () => {
  it('returns valid names and refuses invalid ones naming --branch', () => {
    assert.equal(parseBranch('release/2.1'), 'release/2.1');
    for (const v of ['a..b', '$(touch /tmp/pwned)', 'x y', '--upload-pack=evil', 'x'.repeat(300), 'a\nb', '', null, 5]) refuses((x) => parseBranch(x), v, '--branch');
  });

  it('refuses names git accepts but only a shell cares about, before anything is queued', () => {
    for (const v of ['main;id', 'a|b', 'x&&y', 'feat`id`', "it's", 'a>b', 'w{x}', 'x!', 'hash#tag']) {
      assert.throws(() => parseBranch(v), /^UsageError: --branch .*: shell metacharacters/, v);
    }
    assert.equal(parseBranch('feature/ABC-123_fix.2'), 'feature/ABC-123_fix.2');
  });
});
