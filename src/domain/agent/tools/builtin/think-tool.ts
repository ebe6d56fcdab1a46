// The built-in `think` tool (OpenHands ThinkAction/ThinkObservation): a place for the agent to
// reason out loud without acting. Nothing is executed; the thought is recorded in the action.

import { ArgReader, withInjectedParams } from "../args.js";
import { textContent } from "../text.js";
import type { Content, JsonSchemaObject, Tool } from "../types.js";

export const THINK_TOOL_NAME = "think";

export interface ThinkAction {
  kind: "ThinkAction";
  thought: string;
}

export interface ThinkObservation {
  kind: "ThinkObservation";
  content: Content[];
  is_error: boolean;
}

const PARAMETERS: JsonSchemaObject = withInjectedParams(
  {
    type: "object",
    properties: { thought: { type: "string", description: "Your reasoning." } },
    required: ["thought"],
  },
  true,
);

export class ThinkTool implements Tool<ThinkAction, ThinkObservation> {
  readonly name = THINK_TOOL_NAME;
  readonly description =
    "Write down your reasoning without taking an action: to plan the next steps, weigh alternatives, " +
    "or make sense of an error before fixing it. Nothing is executed and nothing changes.";
  readonly parameters = PARAMETERS;
  readonly readOnly = true;

  isUsable(): boolean {
    return true;
  }

  parseAction(args: unknown): ThinkAction {
    return { kind: "ThinkAction", thought: new ArgReader(this.name, args).requiredString("thought") };
  }

  execute(): Promise<ThinkObservation> {
    return Promise.resolve({ kind: "ThinkObservation", content: [textContent("Your thought has been logged.")], is_error: false });
  }
}
