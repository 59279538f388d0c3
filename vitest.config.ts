import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: [
      "test/**/*.test.ts",
      "core/**/*.test.ts",
      "providers/**/*.test.ts",
      "agent/**/*.test.ts",
      "cli/**/*.test.ts",
      "cdk/**/*.test.ts",
      "lambdas/**/*.test.ts",
    ],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
  },
});
