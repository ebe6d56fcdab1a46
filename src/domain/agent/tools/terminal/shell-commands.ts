// Splitting what the agent sends into top-level shell commands, so that several newline-separated
// commands in one call can be refused (one call, one exit code, one observation). This is a small
// bash lexer, not a parser: it knows quotes, `$( )`, backquotes, line continuations, comments,
// here-documents, the compound-command keywords (if/fi, for|while|until|select/done, case/esac,
// { }, ( )) and the operators that continue a command on the next line (| && || |&). Newlines
// inside any of those do not separate commands. When in doubt it keeps text together: a missed
// split only means bash runs two commands, a false split would refuse a valid command.

type Ctx = "paren" | "subst" | "brace" | "if" | "loop" | "case" | "dquote" | "squote" | "ansic" | "backtick";

const CODE_CONTEXTS: ReadonlySet<Ctx> = new Set(["paren", "subst", "brace", "if", "loop", "case"]);
const WORD_BREAK = new Set([" ", "\t", "\n", ";", "&", "|", "<", ">", "(", ")"]);
const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=/;

interface Heredoc {
  delimiter: string;
  stripTabs: boolean;
}

/**
 * The top-level commands of `source`, each trimmed, in order; blank and comment-only lines are
 * dropped. `source` with one command (possibly spanning lines) gives a one-element array.
 */
export function splitShellCommands(source: string): string[] {
  const text = source.replace(/\r\n/g, "\n");
  const commands: string[] = [];
  const stack: Ctx[] = [];
  const heredocs: Heredoc[] = [];
  let start = 0;
  let hasContent = false; // the current command has something other than blanks and comments
  let continued = false; // the last token was an operator that continues onto the next line
  let cmdPos = true; // the next word is in command position (where keywords count)
  let word = "";
  let wordQuoted = false;

  const top = (): Ctx | undefined => stack[stack.length - 1];
  const pop = (ctx: Ctx): void => {
    if (top() === ctx) stack.pop();
  };

  const endWord = (): void => {
    if (word === "") {
      wordQuoted = false;
      return;
    }
    const w = word;
    const keyword = !wordQuoted;
    word = "";
    wordQuoted = false;
    if (keyword && top() === "case" && w === "esac") {
      stack.pop();
      cmdPos = false;
      return;
    }
    if (!keyword || !cmdPos) {
      cmdPos = false;
      return;
    }
    switch (w) {
      case "if":
        stack.push("if");
        cmdPos = true;
        return;
      case "then":
      case "else":
      case "elif":
      case "do":
      case "!":
      case "time":
        cmdPos = true;
        return;
      case "fi":
        pop("if");
        cmdPos = false;
        return;
      case "while":
      case "until":
        stack.push("loop");
        cmdPos = true;
        return;
      case "for":
      case "select":
        stack.push("loop");
        cmdPos = false;
        return;
      case "done":
        pop("loop");
        cmdPos = false;
        return;
      case "case":
        stack.push("case");
        cmdPos = false;
        return;
      case "{":
        stack.push("brace");
        cmdPos = true;
        return;
      case "}":
        pop("brace");
        cmdPos = false;
        return;
      default:
        cmdPos = ASSIGNMENT.test(w);
    }
  };

  const finishCommand = (end: number): void => {
    if (hasContent) commands.push(text.slice(start, end).trim());
    start = end;
    hasContent = false;
  };

  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    const next = text[i + 1];
    const ctx = top();

    if (ctx === "squote") {
      if (c === "'") stack.pop();
      i++;
      continue;
    }
    if (ctx === "ansic") {
      if (c === "\\") i += 2;
      else {
        if (c === "'") stack.pop();
        i++;
      }
      continue;
    }
    if (ctx === "dquote" || ctx === "backtick") {
      if (c === "\\") {
        i += 2;
      } else if (ctx === "dquote" && c === '"') {
        stack.pop();
        i++;
      } else if (ctx === "backtick" && c === "`") {
        stack.pop();
        i++;
      } else if (c === "$" && next === "(") {
        stack.push("subst");
        word = "";
        cmdPos = true;
        i += 2;
      } else if (ctx === "dquote" && c === "`") {
        stack.push("backtick");
        i++;
      } else {
        i++;
      }
      continue;
    }

    // Code: top level or inside a code context.
    if (c === "#" && word === "") {
      while (i < text.length && text[i] !== "\n") i++;
      continue;
    }
    if (c === "\\") {
      if (next === "\n") {
        i += 2; // line continuation
        continue;
      }
      word += next ?? "";
      wordQuoted = true;
      hasContent = true;
      continued = false;
      i += 2;
      continue;
    }
    if (c === "'" || c === '"' || c === "`") {
      const isAnsiC = c === "'" && word.endsWith("$");
      stack.push(c === "'" ? (isAnsiC ? "ansic" : "squote") : c === '"' ? "dquote" : "backtick");
      wordQuoted = true;
      word += c;
      hasContent = true;
      continued = false;
      i++;
      continue;
    }
    if (c === "$" && next === "(") {
      // The substitution's body is code of its own (keywords count again); the outer word it
      // belongs to can never be a keyword, which the `)` branch records.
      stack.push("subst");
      word = "";
      wordQuoted = false;
      cmdPos = true;
      hasContent = true;
      continued = false;
      i += 2;
      continue;
    }
    if (c === "\n") {
      endWord();
      i++;
      // Here-document bodies start after the newline that ends their command line.
      while (heredocs.length > 0) {
        const doc = heredocs.shift() as Heredoc;
        for (;;) {
          if (i >= text.length) break;
          const eol = text.indexOf("\n", i);
          const line = text.slice(i, eol === -1 ? text.length : eol);
          i = eol === -1 ? text.length : eol + 1;
          if ((doc.stripTabs ? line.replace(/^\t+/, "") : line) === doc.delimiter) break;
        }
      }
      if (stack.length === 0 && !continued) {
        finishCommand(i);
        cmdPos = true;
      } else {
        cmdPos = true;
      }
      continue;
    }
    if (c === " " || c === "\t") {
      endWord();
      i++;
      continue;
    }
    if (c === "<" && next === "<" && text[i + 2] !== "<") {
      endWord();
      let j = i + 2;
      const stripTabs = text[j] === "-";
      if (stripTabs) j++;
      while (text[j] === " " || text[j] === "\t") j++;
      let raw = "";
      while (j < text.length && !WORD_BREAK.has(text[j] as string)) {
        const ch = text[j] as string;
        if (ch === "'" || ch === '"') {
          const close = text.indexOf(ch, j + 1);
          const end = close === -1 ? text.length : close;
          raw += text.slice(j + 1, end);
          j = end + 1;
        } else if (ch === "\\") {
          raw += text[j + 1] ?? "";
          j += 2;
        } else {
          raw += ch;
          j++;
        }
      }
      if (raw !== "") heredocs.push({ delimiter: raw, stripTabs });
      hasContent = true;
      continued = false;
      i = j;
      continue;
    }
    if (c === "(") {
      endWord();
      if (top() !== "case") stack.push("paren");
      cmdPos = true;
      hasContent = true;
      continued = false;
      i++;
      continue;
    }
    if (c === ")") {
      endWord();
      const t = top();
      if (t === "paren") {
        stack.pop();
        cmdPos = true;
      } else if (t === "subst") {
        stack.pop();
        // `$( )` is part of a word; the word goes on.
        wordQuoted = true;
        word = "$()";
      } else if (t === "case") {
        cmdPos = true; // end of a case pattern
      }
      hasContent = true;
      i++;
      continue;
    }
    if (c === ";" || c === "&" || c === "|") {
      endWord();
      const two = c + (next ?? "");
      if (two === "&&" || two === "||" || two === "|&") {
        continued = true;
        i += 2;
      } else if (two === ";;" || two === ";&") {
        continued = false;
        i += two === ";;" && text[i + 2] === "&" ? 3 : 2;
      } else {
        continued = c === "|";
        i++;
      }
      cmdPos = true;
      hasContent = true;
      continue;
    }
    if (c === "<" || c === ">") {
      endWord();
      hasContent = true;
      continued = false;
      i++;
      continue;
    }
    // An ordinary word character. A subst context ends a word only at `)`, handled above.
    if (!CODE_CONTEXTS.has(ctx as Ctx) && ctx !== undefined) {
      i++;
      continue;
    }
    word += c;
    hasContent = true;
    continued = false;
    i++;
  }
  endWord();
  finishCommand(text.length);
  return commands;
}
