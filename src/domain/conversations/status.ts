// Execution status names as OpenHands writes them (the `value` of execution_status updates).

import { ExecutionStatus } from "../../../gen/agentd/v1/conversation_pb.js";

export const STATUS_NAME: Readonly<Record<ExecutionStatus, string>> = {
  [ExecutionStatus.UNSPECIFIED]: "idle",
  [ExecutionStatus.IDLE]: "idle",
  [ExecutionStatus.RUNNING]: "running",
  [ExecutionStatus.PAUSED]: "paused",
  [ExecutionStatus.WAITING_FOR_CONFIRMATION]: "waiting_for_confirmation",
  [ExecutionStatus.FINISHED]: "finished",
  [ExecutionStatus.ERROR]: "error",
  [ExecutionStatus.STUCK]: "stuck",
  [ExecutionStatus.DELETING]: "deleting",
};
