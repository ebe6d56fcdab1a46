// The built-in `finish` tool (OpenHands FinishAction/FinishObservation): the agent declares the
// task done. The agent loop recognises the FinishAction and sets the conversation `finished`;
// the observation repeats the final message.

import { ArgReader, withInjectedParams } from "../args.js";
import { textContent } from "../text.js";
import type { Content, JsonSchemaObject, Tool } from "../types.js";

export const FINISH_TOOL_NAME = "finish";

export interface FinishAction {
  kind: "FinishAction";
  message: string;
}

export interface FinishObservation {
  kind: "FinishObservation";
  content: Content[];
  is_error: boolean;
}

const PARAMETERS: JsonSchemaObject = withInjectedParams(
  {
    type: "object",
    properties: { message: { type: "string", description: "Final message to the user: what was done, and anything left open." } },
    required: ["message"],
  },
  true,
);

export class FinishTool implements Tool<FinishAction, FinishObservation> {
  readonly name = FINISH_TOOL_NAME;
  readonly description =
    "Call when the task is complete (or cannot be completed), with a final message to the user " +
    "summarising what was done. Ends your turn.";
  readonly parameters = PARAMETERS;
  readonly readOnly = true;

  isUsable(): boolean {
    return true;
  }

  parseAction(args: unknown): FinishAction {
    return { kind: "FinishAction", message: new ArgReader(this.name, args).string("message") ?? "" };
  }

  execute(action: FinishAction): Promise<FinishObservation> {
    return Promise.resolve({ kind: "FinishObservation", content: [textContent(action.message)], is_error: false });
  }
}
