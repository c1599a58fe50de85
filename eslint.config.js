// The layers of the house, enforced (make lint, run by make test-unit):
// - pkg/ is the library: it imports neither plugins/ nor ipam/;
// - pkg/exec.ts, the one module that spawns, is imported only by the kernel and NAT layers (pkg/ip, pkg/nat) and
//   by IPAM delegation (pkg/cni/delegate.ts) and the BGP agent's daemon (pkg/bgp/daemon.ts); tests, e2e worlds
//   and benchmarks spawn as they need;
// - pkg/netlink, the in-process door, is imported only by the layers that carry ops out (pkg/ip, pkg/nat), and
//   spawns nothing itself;
// - no import cycles.
const tseslint = require('typescript-eslint');
const importX = require('eslint-plugin-import-x');

const LIBRARY = { target: './pkg', from: ['./plugins', './ipam'], message: 'pkg/ is the library: it imports neither plugins/ nor ipam/' };
const ONE_DOOR = {
  target: ['./pkg', './plugins', './ipam'],
  from: './pkg/exec.ts',
  message:
    'only pkg/ip, pkg/nat, IPAM delegation (pkg/cni/delegate.ts) and the BGP agent starting its daemon (pkg/bgp/daemon.ts) run programs: plans speak the typed kernel operations of pkg/ip',
};
const NETLINK_DOOR = {
  target: ['./pkg', './plugins', './ipam'],
  from: './pkg/netlink',
  message: 'only pkg/ip and pkg/nat carry out kernel operations: plans speak the typed kernel operations of pkg/ip',
};
const zones = (...z) => ['error', { zones: z, basePath: __dirname }];

module.exports = tseslint.config(
  { ignores: ['node_modules/**', 'build/**', 'e2e/cnictl/**', '**/*.js'] },
  {
    files: ['**/*.ts'],
    languageOptions: { parser: tseslint.parser, parserOptions: { sourceType: 'module' } },
    plugins: { '@typescript-eslint': tseslint.plugin, 'import-x': importX },
    settings: {
      'import-x/resolver': { node: { extensions: ['.ts', '.js', '.json'] } },
      // without a parser for .ts, the imported files cannot be read and no-cycle sees no cycle
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
    },
    rules: {
      'import-x/no-cycle': ['error', { commonjs: true, ignoreExternal: true }],
      'import-x/no-restricted-paths': zones(LIBRARY, ONE_DOOR, NETLINK_DOOR),
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  // product code says what it reads (pkg/ip/ops.ts shapes); tests may be loose
  { files: ['pkg/**', 'plugins/**', 'ipam/**'], ignores: ['**/*.test.ts'], rules: { '@typescript-eslint/no-explicit-any': 'error' } },
  // the doors themselves, and tests of any layer
  { files: ['pkg/ip/**', 'pkg/nat/**', '**/*.test.ts'], rules: { 'import-x/no-restricted-paths': zones(LIBRARY) } },
  { files: ['pkg/cni/delegate.ts', 'pkg/exec.ts', 'pkg/bgp/daemon.ts'], rules: { 'import-x/no-restricted-paths': zones(LIBRARY, NETLINK_DOOR) } },
  { files: ['pkg/netlink/**'], ignores: ['**/*.test.ts'], rules: { 'import-x/no-restricted-paths': zones(LIBRARY, ONE_DOOR) } },
  // e2e worlds and benchmarks drive programs and read the store themselves
  { files: ['e2e/**', 'bench/**'], rules: { 'import-x/no-restricted-paths': 'off' } },
);
