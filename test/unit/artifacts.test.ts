// Which files a make build made are artifacts: decided from the name and the
// first bytes, so a relocatable .o never passes for a program.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isShippable } from '../../agent/builds/artifacts.js';

/** The first 20 bytes of an ELF file: class 64-bit, the given byte order and e_type. */
function elf(type: number, order: 'le' | 'be' = 'le'): Buffer {
  const b = Buffer.alloc(20);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, order === 'le' ? 1 : 2, 1]).copy(b);
  if (order === 'le') b.writeUInt16LE(type, 16);
  else b.writeUInt16BE(type, 16);
  return b;
}

describe('isShippable', () => {
  test('ELF executables and shared objects (PIE programs are shared objects) are; relocatable objects and core files are not', () => {
    assert.equal(isShippable('hello', elf(2)), true, 'ET_EXEC');
    assert.equal(isShippable('hello', elf(3)), true, 'ET_DYN: a PIE program');
    assert.equal(isShippable('libx.so.1', elf(3, 'be')), true, 'big-endian shared object');
    assert.equal(isShippable('part1.o', elf(1)), false, 'ET_REL');
    assert.equal(isShippable('core', elf(4)), false, 'ET_CORE');
    assert.equal(isShippable('hello', elf(2, 'be').subarray(0, 17)), false, 'too short to have an e_type');
  });

  test('static libraries by their ar magic, packages and archives by their extension', () => {
    assert.equal(isShippable('libfoo.a', Buffer.from('!<arch>\nfoo.o/          ')), true);
    for (const name of ['x_1.0_amd64.deb', 'x-1.0.rpm', 'app.jar', 'app.war', 'x.zip', 'x.tgz', 'x.tar', 'x.tar.gz', 'x.tar.xz', 'x.tar.bz2', 'x.tar.zst']) {
      assert.equal(isShippable(name, Buffer.from('whatever')), true, name);
    }
  });

  test('sources, scripts, dependency files, logs and empty files are not', () => {
    for (const [name, head] of [
      ['run.sh', '#!/bin/sh\necho hi\n'],
      ['part1.d', 'build/part1.o: src/part1.c\n'],
      ['build.log', 'gcc -c ...'],
      ['x.tar.gz.sha256', 'abc  x.tar.gz'],
      ['empty', ''],
      ['notelf', '\x7fELX\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00'],
    ] as const) {
      assert.equal(isShippable(name, Buffer.from(head, 'latin1')), false, name);
    }
  });
});
