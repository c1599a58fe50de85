#!/usr/bin/env node
// Turns the esbuild bundle into one self-contained executable with @yao-pkg/pkg's SEA code path.
// usage: node scripts/sea.js <bundle.js> <output executable> [base node binary] [asset-name=file ...]
//
// Why not the `pkg` command line: its default mode downloads pkg's patched Node base binaries, and its
// `--sea` flag (pkg 6.14.2) hands sea() only {targets, signature}, so sea() downloads an official Node
// tarball (and fetches nodejs.org's version index). Both need the internet, which build machines here
// lack. The same sea() function, called through its module API, accepts `nodePath` (a local Node binary)
// and `seaConfig` (so we can turn on the V8 code cache). That is what we do here; nothing is fetched.
'use strict';
const fs = require('fs');
const path = require('path');

async function main() {
  const [entry, output, base, ...assetArgs] = process.argv.slice(2);
  // files the program reads with node:sea getAsset (the netlink module): name=path
  const assets = Object.fromEntries(
    assetArgs.map((a) => {
      const i = a.indexOf('=');
      if (i <= 0 || !fs.existsSync(a.slice(i + 1))) throw new Error(`bad asset ${a} (want name=existing-file)`);
      return [a.slice(0, i), path.resolve(a.slice(i + 1))];
    }),
  );
  if (!entry || !output) throw new Error('usage: node scripts/sea.js <bundle.js> <output>');
  const root = path.resolve(__dirname, '..');
  // The blob (and its code cache) must be made by the same Node version that becomes the executable:
  // sea() runs `node --experimental-sea-config` from PATH, so put this Node first. `base` may be a
  // (stripped) copy of it.
  const self = fs.realpathSync(process.execPath);
  const nodePath = base ? path.resolve(base) : self;
  process.env.PATH = `${path.dirname(self)}${path.delimiter}${process.env.PATH ?? ''}`;
  // sea() works in $TMPDIR/pkg-sea/<time> and runs `npx postject` there: a scratch dir inside the repo
  // lets npx find our locked postject in node_modules; offline mode forbids it from fetching one instead.
  const tmp = path.join(root, 'build', 'tmp');
  fs.mkdirSync(tmp, { recursive: true });
  process.env.TMPDIR = tmp;
  process.env.npm_config_offline = 'true';
  process.env.npm_config_yes = 'false';
  process.env.npm_config_update_notifier = 'false'; // else npx asks the registry for a newer npm

  const out = path.resolve(output);
  fs.rmSync(out, { force: true });
  const sea = require('@yao-pkg/pkg/lib-es5/sea').default;
  await sea(path.resolve(entry), {
    targets: [{ nodeRange: `node${process.versions.node.split('.')[0]}`, platform: 'linux', arch: process.arch, output: out }],
    nodePath,
    seaConfig: {
      disableExperimentalSEAWarning: true,
      // V8 code cache in the blob: the bundle is not parsed and compiled at every start (each CNI call is a new process)
      useCodeCache: true,
      useSnapshot: false,
      ...(Object.keys(assets).length ? { assets } : {}),
    },
  });

  // sea() bakes with Promise.allSettled and so never reports a failed postject: check the result ourselves.
  const st = fs.statSync(out, { throwIfNoEntry: false });
  if (!st) throw new Error(`pkg sea produced no ${out} (postject failed?)`);
  const bin = fs.readFileSync(out);
  if (bin.indexOf('NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2:1') < 0) {
    throw new Error(`${out}: SEA fuse not flipped, the blob was not injected`);
  }
  fs.chmodSync(out, 0o755);
}

main().catch((e) => {
  process.stderr.write(`sea: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
