import importX from "eslint-plugin-import-x";
import tseslint from "typescript-eslint";

// Lint is for bug classes, not style: unhandled promises (the main bug class in a streaming
// server), import cycles, and the layer rule of ARCHITECTURE.md §7.
export default tseslint.config(
  { ignores: ["gen/**", "dist/**", "node_modules/**", "third_party/**"] },
  {
    files: ["src/**/*.ts", "test/**/*.ts", "bench/**/*.ts"],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { project: "./tsconfig.check.json", tsconfigRootDir: import.meta.dirname },
    },
    plugins: { "@typescript-eslint": tseslint.plugin, "import-x": importX },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: { arguments: false } }],
      "@typescript-eslint/consistent-type-imports": "error",
      "import-x/no-cycle": "error",
    },
  },
  {
    // The domain knows nothing of the wire: no Connect, no services.
    files: ["src/domain/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [
        { group: ["@connectrpc/*"], message: "domain/ must not depend on Connect (ARCHITECTURE.md §7)" },
        { group: ["**/server/**", "**/rpc/**", "**/gateway/**"], message: "imports point server/rpc/gateway → domain → storage" },
        { group: ["classic-level", "level"], message: "only src/storage imports LevelDB" },
      ] }],
    },
  },
  {
    files: ["src/storage/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [
        { group: ["@connectrpc/*", "**/domain/**", "**/server/**", "**/rpc/**", "**/gateway/**"], message: "storage is the bottom layer" },
      ] }],
    },
  },
);
