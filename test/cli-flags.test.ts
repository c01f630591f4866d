import { strict as assert } from "node:assert";
import { BACKEND_FLAG, CALIBRATION_FLAGS, MODEL_FLAG, bool, flagHelp, parseFlags, str } from "../src/cli/flags";
import { unknownOption } from "../src/cli/main";
import { commands, loadCommand } from "../src/cli/registry";

describe("CLI flag sets: one definition for the option table and --help", () => {
  it("every command documents every option it parses (an unknown option reaches parseArgs, not the documentation check)", async () => {
    for (const cmd of commands()) {
      for (const argv of cmd.name === "scores" ? [["--no-such-option"], ["merge", "--no-such-option"]] : [["--no-such-option"]]) {
        await assert.rejects(
          () => cmd.run(argv),
          (e: Error & { code?: string }) => e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION",
          `${cmd.name} ${argv.join(" ")}: expected parseArgs' unknown-option error`,
        );
      }
    }
  });

  it("a shared flag is spelled and documented once: the same --help line wherever it is used", () => {
    const line = (name: string, usage: string) => usage.split("\n").find((l) => new RegExp(`^ {2}--${name} `).test(l))?.replace(/ {2,}/g, " ");
    const backend = line("backend", flagHelp(BACKEND_FLAG));
    for (const name of ["info", "generate", "ppl", "scores", "prune", "eval", "demo", "compare"]) assert.equal(line("backend", loadCommand(name)!.usage), backend, name);
    const skip = line("skip-memory-check", flagHelp(CALIBRATION_FLAGS));
    for (const name of ["scores", "prune", "compare"]) assert.equal(line("skip-memory-check", loadCommand(name)!.usage), skip, name);
  });

  it("parses values and defaults as declared, and refuses an option its usage does not name", () => {
    const flags = { ...MODEL_FLAG, n: str("N", "a count", "3"), quiet: bool("say less") } as const;
    const usage = `Usage: x\n${flagHelp(flags)}`;
    const { values } = parseFlags(["--model", "m.gguf"], flags, usage);
    assert.deepEqual({ ...values }, { model: "m.gguf", n: "3", quiet: false });
    assert.throws(() => parseFlags([], flags, "Usage: x --model PATH --n N"), /--quiet is missing from its command's usage text/);
  });

  it("aligns descriptions and continuation lines under one column", () => {
    const text = flagHelp({ a: str("X", "first\nsecond"), "much-longer-name": bool("third") }, 10);
    assert.deepEqual(text.split("\n"), ["  --a X     first", "            second", "  --much-longer-name  third"]);
  });

  it("did-you-mean reads the generated usage", () => {
    assert.equal(unknownOption("Unknown option '--backnd'", loadCommand("info")!.usage), "unknown option --backnd (did you mean --backend?)");
    assert.equal(unknownOption("Unknown option '--skip-memory'", loadCommand("prune")!.usage), "unknown option --skip-memory (did you mean --skip-memory-check?)");
    assert.equal(unknownOption("Unknown option '--seed'", loadCommand("compare")!.usage), "unknown option --seed (did you mean --seeds?)");
  });
});
