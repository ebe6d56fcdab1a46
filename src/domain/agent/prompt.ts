// The agent's system prompt and the fixed texts the loop sends the model (corrective nudges,
// title and summary instructions). Written for agentd; the behaviour they ask for follows the
// OpenHands agent (work in the working directory, use tools, finish explicitly).

export interface SystemPromptOptions {
  workingDir: string;
  toolNames: readonly string[];
  /** With the LLM security analyzer, the model must rate each call. */
  securityAnalyzer: boolean;
  /** Appended at the end (agent_context.system_message_suffix). */
  suffix?: string | undefined;
  /** Replaces the built-in prompt (agent.system_prompt). */
  override?: string | undefined;
  /** Names of the conversation's secrets (exported as environment variables). */
  secretNames?: readonly string[];
}

export function buildSystemPrompt(o: SystemPromptOptions): string {
  const parts: string[] = [];
  if (o.override !== undefined && o.override.trim() !== "") {
    parts.push(o.override.trim());
  } else {
    parts.push(
      [
        "You are a software engineering agent. You solve the user's task by calling the tools you are given, step by step, until the task is done.",
        "",
        "How to work:",
        `- Your working directory is ${o.workingDir}. Keep files you create inside it unless the user says otherwise.`,
        "- Explore before you change things: look at the relevant files and run the project's own commands.",
        "- Make one focused change at a time and check the result (run it, test it, read the output).",
        "- Tool results are facts about the environment; when one reports an error, read it and adapt instead of repeating the same call.",
        "- Never run commands that wait for interactive input without a way to answer them, and never start long-running servers in the foreground.",
        "- When the task is complete, or cannot be completed, call `finish` with a short summary for the user. If you only need to answer a question, you may reply with plain text instead.",
      ].join("\n"),
    );
  }
  parts.push(`Available tools: ${o.toolNames.join(", ")}.`);
  if (o.securityAnalyzer) {
    parts.push(
      "Every call that can change something takes a `security_risk` argument: LOW for read-only or easily undone actions, " +
        "MEDIUM for changes inside the workspace, HIGH for destructive or irreversible actions or anything that reaches outside the workspace " +
        "(deleting data, pushing code, network writes, installing system packages). Rate honestly: risky calls are shown to the user for confirmation.",
    );
  }
  if (o.secretNames !== undefined && o.secretNames.length > 0) {
    parts.push(
      `These secrets are available as environment variables in the terminal: ${o.secretNames.map((n) => `$${n}`).join(", ")}. ` +
        "Use them by name; their values are hidden from you and from the output.",
    );
  }
  if (o.suffix !== undefined && o.suffix.trim() !== "") parts.push(o.suffix.trim());
  return parts.join("\n\n");
}

/** Sent (as a user-role message from the environment) after a reply with neither text nor tool call. */
export const EMPTY_REPLY_NUDGE =
  "Your last response did not include a function call or a message. Either call a tool to make progress, " +
  "call `finish` when the task is done, or reply with a message to the user.";

/** Sent after the model's reply was cut off by the output token limit with nothing usable. */
export const TRUNCATED_REPLY_NUDGE =
  "Your last response was cut off by the output token limit before it contained a usable tool call. Make smaller steps.";

/** Instructions for the title generator. */
export function titlePrompt(maxLength: number): string {
  return (
    `Write a short title (at most ${maxLength} characters) for a conversation that starts with the user's message below. ` +
    "Answer with the title only: no quotes, no trailing punctuation, no explanation."
  );
}

/** Instructions for the summarizing condenser. */
export const SUMMARY_PROMPT = [
  "You maintain the memory of a software engineering agent whose context window is limited.",
  "Below are the agent's earlier events (and the previous summary, if any) that will be removed from its context.",
  "Write a concise summary that lets the agent continue the task without them. Keep:",
  "- the user's goals and requirements, and any constraints they stated;",
  "- what has been done so far: files created or changed (with paths), commands run and their important results;",
  "- the current state: what works, what fails (with the exact error), and what remains to be done.",
  "Write plain text, no preamble.",
].join("\n");

/** Prefix of the summary as the agent sees it in place of the forgotten events. */
export const SUMMARY_HEADER = "Summary of the earlier part of this conversation (older events were condensed):\n";

/** System prompt of ask_agent side questions. */
export const ASK_AGENT_PROMPT =
  "Answer the user's side question about the conversation above in plain text. Do not call tools; " +
  "this question and your answer are not part of the conversation.";
