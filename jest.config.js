// Three projects: unit tests need no root; e2e tests build namespaces and need root + the built binary; soak
// (make soak, a release check outside make test) runs the e2e world for an hour's worth of faults, churn and fuzz.
const tsJest = { '^.+\\.ts$': ['ts-jest', {}] };
module.exports = {
  projects: [
    { displayName: 'unit', testMatch: ['<rootDir>/{pkg,plugins,ipam}/**/*.test.ts'], transform: tsJest, testEnvironment: 'node' },
    {
      displayName: 'e2e',
      testMatch: ['<rootDir>/e2e/**/*.e2e.ts'],
      transform: tsJest,
      testEnvironment: 'node',
      globalSetup: '<rootDir>/e2e/lib/global-setup.ts',
    },
    {
      displayName: 'soak',
      testMatch: ['<rootDir>/e2e/soak/*.soak.ts'],
      transform: tsJest,
      testEnvironment: 'node',
      globalSetup: '<rootDir>/e2e/lib/global-setup.ts',
    },
  ],
};
