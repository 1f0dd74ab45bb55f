// Command longctx is the one CLI of the longctx toolkit: prepare data, mix and
// pack it, plan RoPE, train, evaluate and sweep.
//
// Each subcommand lives in its own file and registers itself in init, so
// adding one never touches this file.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
)

// command is one subcommand of longctx.
type command struct {
	name    string
	summary string
	// run gets the arguments after the subcommand name. It returns a
	// usageError for bad usage (exit 2) and any other error for failures
	// (exit 1).
	run func(args []string) error
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("longctx: duplicate subcommand " + c.name)
	}
	commands[c.name] = c
}

// usageError marks bad usage: unknown flags, missing arguments. main exits 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// errHelp is returned when the user asked for help; main exits 0.
var errHelp = flag.ErrHelp

func main() {
	setupLogging()
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// setupLogging sends structured log lines (log/slog, text format) to stderr.
// LONGCTX_LOG=debug|info|warn|error sets the level (default info);
// LONGCTX_LOG_FORMAT=json switches to JSON lines for log collectors.
func setupLogging() {
	var level slog.Level
	if err := level.UnmarshalText([]byte(os.Getenv("LONGCTX_LOG"))); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if os.Getenv("LONGCTX_LOG_FORMAT") == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	slog.SetDefault(slog.New(h))
}

func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 && args[0] == "help" {
			if c, ok := commands[args[1]]; ok {
				return exitCode(c.run([]string{"--help"}), c.name, stderr)
			}
		}
		printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "longctx: unknown command %q\n\n", args[0])
		printUsage(stderr)
		return 2
	}
	return exitCode(c.run(args[1:]), c.name, stderr)
}

func exitCode(err error, name string, stderr io.Writer) int {
	var ue usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "longctx %s: %v\n", name, err)
		return 2
	default:
		// One line: the error names the file/record and the reason.
		fmt.Fprintf(stderr, "longctx %s: %s\n", name, strings.ReplaceAll(err.Error(), "\n", "; "))
		return 1
	}
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "longctx: long-context continued pretraining toolkit (SmolLM2 2k -> 16k)\n\n")
	fmt.Fprintf(w, "Usage: longctx COMMAND [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'longctx COMMAND --help' for the flags of a command.\n")
}

// newFlags returns a flag set for a subcommand whose errors are returned, not
// printed-and-exited, so main can map them to exit codes.
func newFlags(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("longctx "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: longctx %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs and turns flag errors into usage errors.
// Positional arguments are refused unless allowArgs.
func parseFlags(fs *flag.FlagSet, args []string, allowArgs bool) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usageError{err.Error()}
	}
	if !allowArgs && fs.NArg() > 0 {
		fs.Usage()
		return usagef("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return nil
}

// subcommand is one verb of a command group such as "rope plan".
type subcommand struct {
	summary string
	run     func(args []string) error
}

// dispatch runs the verb named by args[0] from subs, for groups such as
// "longctx rope plan|freqs|extend".
func dispatch(group string, args []string, subs map[string]subcommand) error {
	usage := func() {
		fmt.Fprintf(os.Stderr, "Usage: longctx %s VERB [flags]\n\nVerbs:\n", group)
		names := make([]string, 0, len(subs))
		for n := range subs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, subs[n].summary)
		}
		fmt.Fprintf(os.Stderr, "\nRun 'longctx %s VERB --help' for its flags.\n", group)
	}
	if len(args) == 0 {
		usage()
		return usagef("missing verb")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		return errHelp
	}
	s, ok := subs[args[0]]
	if !ok {
		usage()
		return usagef("unknown verb %q", args[0])
	}
	return s.run(args[1:])
}
