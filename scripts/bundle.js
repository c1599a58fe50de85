#!/usr/bin/env node
// esbuild's API for scripts/bundle.sh: one CommonJS bundle of an entry, with the aliases and the one patch that
// the command line cannot express. The etcd3 package (loaded only by `tscni etcd`) reads its gRPC service
// definitions from .proto files beside itself at load (`${__dirname}/../proto/rpc.proto`), which a single
// executable does not have: the definitions are read here, at build time, and embedded as protobufjs JSON.
// usage: node scripts/bundle.js <entry> <outfile>
'use strict';
const path = require('path');
const esbuild = require('esbuild');

const [entry, outfile] = process.argv.slice(2);
const root = path.resolve(__dirname, '..');

const etcdProtos = {
  name: 'etcd3-protos',
  setup(build) {
    build.onLoad({ filter: /etcd3[\\/]lib[\\/]connection-pool\.js$/ }, async (args) => {
      const fs = require('fs');
      const protobuf = require('protobufjs');
      const text = fs.readFileSync(args.path, 'utf8');
      const load = /\(0, proto_loader_1\.loadSync\)\(`\$\{__dirname\}\/\.\.\/proto\/rpc\.proto`, /;
      if (!load.test(text)) throw new Error(`${args.path}: its loadSync of rpc.proto changed; update scripts/bundle.js`);
      // field names as the .proto spells them, as etcd3's loadSync asks (keepCase)
      const json = new protobuf.Root().loadSync(path.join(path.dirname(args.path), '..', 'proto', 'rpc.proto'), { keepCase: true }).toJSON();
      return { contents: text.replace(load, `(0, proto_loader_1.fromJSON)(${JSON.stringify(json)}, `), loader: 'js' };
    });
  },
};

esbuild
  .build({
    absWorkingDir: root,
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    // identifiers kept (no minifyIdentifiers) so stack traces on stderr stay readable
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'none',
    logLevel: 'warning',
    alias: {
      'graceful-fs': 'fs',
      'signal-exit': './pkg/shim/signal-exit.ts',
      'human-signals': './pkg/shim/human-signals.ts',
    },
    plugins: [etcdProtos],
  })
  .catch(() => process.exit(1));
