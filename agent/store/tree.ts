// Builds a new root tree from an old one plus a set of file changes, reading
// only the trees on the changed paths and writing only the objects that changed.

import { parseTree, serializeTree, writeLooseObject, type ObjectReader, type TreeEntry } from './git.js';

/** path -> new content (executable when `exec`), or null to delete the file. */
export type FileChanges = Map<string, Buffer | { data: Buffer; exec: true } | null>;

interface DirChanges {
  files: Map<string, Buffer | { data: Buffer; exec: true } | null>;
  dirs: Map<string, DirChanges>;
}

function group(changes: FileChanges): DirChanges {
  const root: DirChanges = { files: new Map(), dirs: new Map() };
  for (const [path, content] of changes) {
    const parts = path.split('/');
    if (parts.some((p) => p === '' || p === '.' || p === '..' || p === '.git')) {
      throw new Error(`refusing to write unsafe path ${JSON.stringify(path)}`);
    }
    let node = root;
    for (const dir of parts.slice(0, -1)) {
      let next = node.dirs.get(dir);
      if (!next) node.dirs.set(dir, (next = { files: new Map(), dirs: new Map() }));
      node = next;
    }
    node.files.set(parts[parts.length - 1]!, content);
  }
  return root;
}

async function rewrite(gitDir: string, reader: ObjectReader, treeSha: string | null, changes: DirChanges): Promise<string | null> {
  let entries: TreeEntry[] = [];
  if (treeSha) {
    const obj = await reader.read(treeSha);
    if (!obj || obj.type !== 'tree') throw new Error(`tree ${treeSha} is missing from the local clone`);
    entries = parseTree(obj.data);
  }
  const byName = new Map(entries.map((e) => [e.name, e]));
  for (const [name, content] of changes.files) {
    if (content === null) {
      byName.delete(name);
    } else {
      const exec = !Buffer.isBuffer(content);
      const sha = await writeLooseObject(gitDir, 'blob', exec ? content.data : content);
      byName.set(name, { mode: exec ? '100755' : '100644', name, sha });
    }
  }
  for (const [name, sub] of changes.dirs) {
    const old = byName.get(name);
    const newSha = await rewrite(gitDir, reader, old && old.mode === '40000' ? old.sha : null, sub);
    if (newSha === null) byName.delete(name);
    else byName.set(name, { mode: '40000', name, sha: newSha });
  }
  // git has no empty directories: a tree left empty disappears from its parent.
  if (byName.size === 0) return null;
  return writeLooseObject(gitDir, 'tree', serializeTree([...byName.values()]));
}

const EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';

export async function applyChanges(gitDir: string, reader: ObjectReader, rootTree: string | null, changes: FileChanges): Promise<string> {
  const sha = await rewrite(gitDir, reader, rootTree, group(changes));
  if (sha) return sha;
  return writeLooseObject(gitDir, 'tree', Buffer.alloc(0)).then(() => EMPTY_TREE);
}
