import type { Command } from "./command";

// Each command lives in its own file under ./commands; add one line here per command.
export function commands(): Command[] {
  return [
  ];
}
