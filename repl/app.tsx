/**
 * The REPL screen: finished commands scroll up as static output; below them either the prompt (a small
 * line editor with history and Tab completion) or the running job's progress; a status line at the bottom.
 * State lives in hooks here; the work happens in the Runner (which only calls the library's Session).
 */
import { useCallback, useEffect, useRef, useState } from "react";
import { error as errorBlock, note, type Block, type Runner, type StatusInfo } from "./blocks";
import { parseCommand, helpText } from "./commands";
import { complete } from "./complete";
import type { History } from "./history";
import { ink, type InkKey } from "./ink";
import type { ProgressEvent } from "../src/types";
import { progressLine } from "./progress";

export const PROMPT = "sdmprune> ";

export interface AppProps {
  runner: Runner;
  history: History;
  color: boolean;
  cwd?: string;
  /** Lines run before the first prompt, as if typed (e.g. "load PATH" from --model). */
  initialCommands?: string[];
  /** Fixed width (tests); otherwise the terminal's columns, following resizes. */
  columns?: number;
  onExit?: () => void;
}

interface Entry {
  id: number;
  input?: string;
  blocks: Block[];
}

interface Job {
  line: string;
  started: number;
  progress: ProgressEvent | null;
  controller: AbortController;
  cancelling: boolean;
}

function useColumns(fixed?: number): number {
  const { stdout } = ink().useStdout();
  const [cols, setCols] = useState(fixed ?? (stdout.columns || 80));
  useEffect(() => {
    if (fixed) return;
    const onResize = () => setCols(stdout.columns || 80);
    stdout.on("resize", onResize);
    return () => {
      stdout.off("resize", onResize);
    };
  }, [stdout, fixed]);
  return Math.max(20, cols);
}

function BlockView({ block, color }: { block: Block; color: boolean }) {
  const { Text } = ink();
  if (block.kind === "error") return <Text color={color ? "red" : undefined}>{`error: ${block.text}`}</Text>;
  if (block.kind === "note") return <Text dimColor={color}>{block.text}</Text>;
  return <Text>{block.text}</Text>;
}

function EntryView({ entry, color, width }: { entry: Entry; color: boolean; width: number }) {
  const { Box, Text } = ink();
  return (
    <Box flexDirection="column" width={width}>
      {entry.input !== undefined && (
        <Text>
          <Text color={color ? "cyan" : undefined}>{PROMPT}</Text>
          {entry.input}
        </Text>
      )}
      {entry.blocks.map((b, i) => (
        <BlockView key={i} block={b} color={color} />
      ))}
    </Box>
  );
}

export function StatusLine({ status, width, color }: { status: StatusInfo | null; width: number; color: boolean }) {
  const { Box, Text } = ink();
  const parts = status
    ? [status.model, status.backend, status.params, status.channels, status.samples, status.criterion]
    : ["no model (load PATH)", "help for commands"];
  // Parts go on as few lines as fit the width (two at 80 columns once a model is pruned and scored).
  const lines: string[] = [];
  for (const p of parts.filter((x) => x)) {
    const last = lines.length - 1;
    if (last >= 0 && lines[last].length + 3 + p.length <= width - 1) lines[last] += ` │ ${p}`;
    else lines.push(p.length > width - 1 ? p.slice(0, Math.max(1, width - 2)) + "…" : p);
  }
  return (
    <Box flexDirection="column">
      {lines.map((l, i) => (
        <Text key={i} inverse={color} dimColor={!color}>
          {l.padEnd(color ? width - 1 : 0)}
        </Text>
      ))}
    </Box>
  );
}

function PromptLine({ value, cursor, color }: { value: string; cursor: number; color: boolean }) {
  const { Text } = ink();
  const at = value[cursor] ?? " ";
  return (
    <Text>
      <Text color={color ? "cyan" : undefined}>{PROMPT}</Text>
      {value.slice(0, cursor)}
      <Text inverse>{at}</Text>
      {value.slice(cursor + 1)}
    </Text>
  );
}

function JobView({ job, width, color }: { job: Job; width: number; color: boolean }) {
  const { Box, Text } = ink();
  const [, tick] = useState(0);
  // Re-render once a second so elapsed time and the fallback ETA move even between progress events.
  useEffect(() => {
    const t = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(t);
  }, []);
  const elapsed = (Date.now() - job.started) / 1000;
  const line = job.progress
    ? progressLine(job.progress, elapsed, width - 1, !color)
    : `running… ${Math.floor(elapsed)}s`;
  return (
    <Box flexDirection="column">
      <Text>
        <Text color={color ? "cyan" : undefined}>{PROMPT}</Text>
        {job.line}
      </Text>
      <Text color={color ? "yellow" : undefined}>{line}</Text>
      <Text dimColor={color}>{job.cancelling ? "cancelling… (waits for the current sample)" : "(Ctrl-C to cancel)"}</Text>
    </Box>
  );
}

export function App({ runner, history, color, cwd, initialCommands, columns, onExit }: AppProps) {
  const { Box, Static, Text, useApp, useInput } = ink();
  const { exit } = useApp();
  const { stdout } = ink().useStdout();
  const width = useColumns(columns);
  const [entries, setEntries] = useState<Entry[]>([]);
  // The key handler reads the editor, job and exit state from refs: keys can arrive faster than React
  // re-renders (a paste, a busy machine), and a handler closed over an older render would lose them.
  const [line, setLineState] = useState({ value: "", cursor: 0 });
  const lineRef = useRef(line);
  const [job, setJobState] = useState<Job | null>(null);
  const jobRef = useRef<Job | null>(null);
  const setJob = useCallback((next: Job | null | ((j: Job | null) => Job | null)) => {
    const v = typeof next === "function" ? next(jobRef.current) : next;
    jobRef.current = v;
    setJobState(v);
  }, []);
  const [status, setStatus] = useState<StatusInfo | null>(() => runner.status());
  const [hint, setHint] = useState<string | null>(null);
  const armedExit = useRef(false);
  const nextId = useRef(0);
  // Position in history while browsing with ↑/↓ (entries.length = the line being edited) and that line.
  const histPos = useRef<number | null>(null);
  const draft = useRef("");
  const queue = useRef<{ line: string; record: boolean }[]>((initialCommands ?? []).map((line) => ({ line, record: false })));
  const busy = useRef(false);

  const push = useCallback((input: string | undefined, blocks: Block[]) => {
    const id = nextId.current++;
    setEntries((es) => [...es, { id, input, blocks }]);
  }, []);

  const quit = useCallback(() => {
    runner.close();
    onExit?.();
    exit();
  }, [runner, onExit, exit]);

  const run = useCallback(
    async (line: string, record: boolean) => {
      const trimmed = line.trim();
      if (!trimmed) {
        push("", []);
        return;
      }
      if (record) history.add(trimmed);
      let cmd;
      try {
        cmd = parseCommand(trimmed);
      } catch (e) {
        push(trimmed, [errorBlock((e as Error).message)]);
        return;
      }
      if (!cmd) return;
      if (cmd.kind === "exit") {
        push(trimmed, []);
        quit();
        return;
      }
      if (cmd.kind === "help") {
        push(trimmed, [{ kind: "text", text: helpText(cmd.topic) }]);
        return;
      }
      if (cmd.kind === "clear") {
        // Static output already went to the terminal; clear it there and start a fresh list.
        if (stdout.isTTY) stdout.write("\x1b[2J\x1b[3J\x1b[H");
        setEntries([]);
        return;
      }
      const controller = new AbortController();
      const started = Date.now();
      busy.current = true;
      setJob({ line: trimmed, started, progress: null, controller, cancelling: false });
      let blocks: Block[];
      try {
        blocks = await runner.execute(cmd, {
          signal: controller.signal,
          width: width - 1,
          ascii: !color,
          onProgress: (e) => setJob((j) => (j && j.controller === controller ? { ...j, progress: { ...e } } : j)),
        });
      } catch (e) {
        const err = e as Error;
        const cancelled = controller.signal.aborted || err?.name === "CancelledError" || err?.name === "AbortError";
        blocks = cancelled ? [note(`cancelled: ${err?.message ?? "stopped"}`)] : [errorBlock(err?.message ?? String(e))];
      }
      const secs = (Date.now() - started) / 1000;
      if (secs >= 1) blocks.push(note(`(${secs.toFixed(1)}s)`));
      busy.current = false;
      setJob(null);
      push(trimmed, blocks);
      setStatus(runner.status());
    },
    [runner, history, push, quit, width, color, stdout, setJob],
  );

  // Commands given at start-up (and lines pasted with several newlines) run one after another.
  const drain = useCallback(async () => {
    while (!busy.current && queue.current.length > 0) {
      const next = queue.current.shift() as { line: string; record: boolean };
      await run(next.line, next.record);
    }
  }, [run]);

  useEffect(() => {
    void drain();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const setLine = (v: string, c: number = v.length) => {
    const next = { value: v, cursor: Math.max(0, Math.min(c, v.length)) };
    lineRef.current = next;
    setLineState(next);
  };
  const setCursor = (c: number) => setLine(lineRef.current.value, c);

  const submit = (line: string) => {
    histPos.current = null;
    draft.current = "";
    setLine("");
    setHint(null);
    queue.current.push({ line, record: true });
    void drain();
  };

  useInput((input: string, key: InkKey) => {
    const { value, cursor } = lineRef.current;
    const job = jobRef.current;
    if (key.ctrl && input === "c") {
      if (job) {
        job.controller.abort();
        setJob({ ...job, cancelling: true });
        return;
      }
      if (armedExit.current) {
        quit();
        return;
      }
      armedExit.current = true;
      setLine("");
      setHint("(press Ctrl-C again to exit, or type a command)");
      return;
    }
    if (armedExit.current) {
      armedExit.current = false;
      setHint(null);
    }
    if (job) return; // typing ahead while a job runs is not supported; keys are ignored
    if (key.ctrl && input === "d") {
      if (value.length === 0) quit();
      return;
    }
    if (key.return) {
      submit(value);
      return;
    }
    if (key.upArrow || key.downArrow) {
      const items = history.entries;
      let pos = histPos.current ?? items.length;
      if (histPos.current === null) draft.current = value;
      pos = key.upArrow ? Math.max(0, pos - 1) : Math.min(items.length, pos + 1);
      histPos.current = pos === items.length ? null : pos;
      setLine(pos === items.length ? draft.current : items[pos]);
      return;
    }
    if (key.tab) {
      const c = complete(value, cursor, cwd);
      if (!c) {
        setHint(null);
        return;
      }
      const insert = c.candidates.length === 1 ? c.candidates[0] : c.common;
      const next = value.slice(0, c.start) + insert + value.slice(cursor);
      setLine(next, c.start + insert.length);
      setHint(c.candidates.length > 1 ? c.candidates.join("  ") : null);
      return;
    }
    if (key.leftArrow) return setCursor(Math.max(0, cursor - 1));
    if (key.rightArrow) return setCursor(Math.min(value.length, cursor + 1));
    if (key.home || (key.ctrl && input === "a")) return setCursor(0);
    if (key.end || (key.ctrl && input === "e")) return setCursor(value.length);
    if (key.ctrl && input === "u") return setLine(value.slice(cursor), 0);
    if (key.ctrl && input === "k") return setLine(value.slice(0, cursor), cursor);
    if (key.ctrl && input === "w") {
      const head = value.slice(0, cursor).replace(/\S+\s*$/, "");
      return setLine(head + value.slice(cursor), head.length);
    }
    if (key.backspace || key.delete) {
      if (cursor === 0) return;
      return setLine(value.slice(0, cursor - 1) + value.slice(cursor), cursor - 1);
    }
    if (key.ctrl || key.meta || key.escape || !input) return;
    // Pasted text may carry newlines: each complete line runs, the remainder stays in the editor.
    const parts = input.replace(/\r\n/g, "\n").split(/[\r\n]/);
    if (parts.length > 1) {
      const first = value.slice(0, cursor) + parts[0] + value.slice(cursor);
      const lines = [first, ...parts.slice(1, -1)];
      histPos.current = null;
      setHint(null);
      queue.current.push(...lines.map((line) => ({ line, record: true })));
      const rest = parts[parts.length - 1];
      setLine(rest, rest.length);
      void drain();
      return;
    }
    setLine(value.slice(0, cursor) + input + value.slice(cursor), cursor + input.length);
  });

  return (
    <Box flexDirection="column" width={width}>
      <Static items={entries}>{(e: Entry) => <EntryView key={e.id} entry={e} color={color} width={width} />}</Static>
      {job ? <JobView job={job} width={width} color={color} /> : <PromptLine value={line.value} cursor={line.cursor} color={color} />}
      {hint && !job && <Text dimColor={color}>{hint}</Text>}
      <StatusLine status={status} width={width} color={color} />
    </Box>
  );
}

