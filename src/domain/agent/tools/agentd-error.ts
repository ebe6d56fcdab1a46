// The tools throw the project's one domain error (src/errors.ts); re-exported here so every tool
// module imports it from one place.

export { AgentdError, type ErrorCode } from "../../../errors.js";
