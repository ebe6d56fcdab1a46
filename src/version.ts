/** agentd's own version (package.json). */
export const AGENTD_VERSION = "0.1.0";

/**
 * The OpenHands agent-server API version agentd is compatible with, reported as `version` in
 * /server_info. OpenHands clients gate features on it (the TypeScript client refuses some below
 * 1.23.0); it is the version of the published client our compatibility suite runs.
 */
export const OPENHANDS_COMPAT_VERSION = "1.39.0";
