/** One CLI subcommand. Commands parse their own flags (node:util parseArgs) and call the library. */
export interface Command {
  name: string;
  /** One line for `sdmprune --help`. */
  summary: string;
  /** Full usage text for `sdmprune NAME --help`. */
  usage: string;
  /** Returns the process exit code. */
  run(argv: string[]): Promise<number>;
}
