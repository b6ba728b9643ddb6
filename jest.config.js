/** Jest runs the TypeScript sources directly (ts-jest, transpile only: `npm run typecheck` is the type gate). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.[tj]s$': ['ts-jest', { isolatedModules: true, tsconfig: { allowJs: true, module: 'commonjs', esModuleInterop: true } }],
  },
  // ESM-only packages (jose v6 and pkce-challenge under the MCP SDK; oauth4webapi and canonicalize in
  // tests): ts-jest turns them into CommonJS.
  transformIgnorePatterns: ['/node_modules/(?!(jose|pkce-challenge|oauth4webapi|canonicalize)/)'],
  // Two cores: integration suites start real servers, so keep parallelism small.
  maxWorkers: 2,
  testTimeout: 30000,
  reporters: ['default', '<rootDir>/test/support/summary-reporter.js'],
};
