import { describe, expect, it } from "vitest";

import { splitShellCommands } from "./shell-commands.js";

describe("splitShellCommands", () => {
  it.each([
    ["echo a\necho b", ["echo a", "echo b"]],
    ["echo done\necho if", ["echo done", "echo if"]],
    ["cat <<EOF\na\nEOF\necho after", ["cat <<EOF\na\nEOF", "echo after"]],
    ["cat <<-EOF\n\tx\n\tEOF\necho z", ["cat <<-EOF\n\tx\n\tEOF", "echo z"]],
    ["x=$(if true; then\necho 1\nfi)\necho $x", ["x=$(if true; then\necho 1\nfi)", "echo $x"]],
    ["echo a # c\necho b", ["echo a # c", "echo b"]],
  ])("splits top-level commands: %j", (source, expected) => {
    expect(splitShellCommands(source)).toEqual(expected);
  });

  it.each([
    "echo hello",
    "cat <<EOF\nline\necho not a command\nEOF",
    "cat <<'EOF' > f.txt\n$a\nEOF\n",
    'cat << "END"\nx\nEND',
    "for i in 1 2; do\necho $i\ndone",
    "while true\ndo\n sleep 1\ndone",
    "if true; then\n echo y\nelse\n echo n\nfi",
    "case x in\n a) echo a;;\n *) echo b;;\nesac",
    "f() {\n echo\n}",
    "{ echo a\necho b; }",
    "(\ncd /tmp\nls\n)",
    'echo "a\nb"',
    "echo 'a\nb'",
    "echo $'a\\'\nb'",
    "echo $(\nls\n)",
    "echo `\ndate\n`",
    'python3 -c "\nprint(1)\n"',
    "ls && \\\n pwd",
    "ls |\n wc -l",
    "ls &&\n pwd",
    "false ||\n echo fallback",
    "# comment\necho hi",
    "\n\necho a\n\n",
    "echo a;\n",
  ])("keeps one command together: %j", (source) => {
    expect(splitShellCommands(source)).toHaveLength(1);
  });

  it("drops blank and comment-only input", () => {
    expect(splitShellCommands("")).toEqual([]);
    expect(splitShellCommands("  \n# just a comment\n")).toEqual([]);
  });
});
