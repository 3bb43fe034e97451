// Command zopeer is a peer-to-peer node for decentralised zeroth-order
// fine-tuning of language models. This file is wiring only: flags,
// environment, config file and signals; the work happens in package node.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/zopeer/zopeer/config"
)

// command is one subcommand: its flags bind into its own state, and run uses it.
type command struct {
	name, summary string
	flags         func(fs *flag.FlagSet) func(ctx context.Context, log *slog.Logger, out io.Writer, args []string) error
}

var commands = []command{
	{"train", "fine-tune a model on local data (the embedded default when no flags are given)", trainCommand},
	{"eval", "print the mean loss and token count of a model on a dataset", evalCommand},
	{"sweep", "pick η and ε: short in-memory runs from the base weights for each pair, eval loss after each", sweepCommand},
	{"generate", "sample text from a model", generateCommand},
	{"init", "create a run: write its manifest (base-model digest, hyperparameters) in --home", initCommand},
	{"start", "run a peer: join the run's network, train, gossip, serve the HTTP API", startCommand},
	{"status", "print a running peer's status", statusCommand},
	{"export", "write the current model of a home (train or start, running or not) in Hugging Face layout", exportCommand},
	{"id", "print the machine id and peer ID of a home's identity (creating it if needed)", idCommand},
	{"log", "log export: write a stopped peer's update log as JSON lines (docs/STORE.md)", logCommand},
	{"bench", "measure forward passes, ZO steps, updates and memory", benchCommand},
	{"peers", "list a running peer's peers: machine, addresses, link, lag, agreement", peersCommand},
	{"version", "print the version, commit and Go version", versionCommand},
}

func main() {
	// The int32 weights are large, live and pointer-free. With Go's default
	// GOGC=100 the collector waits for as much garbage as there are weights
	// before it runs, so a long-running peer's RSS could drift towards twice
	// its weights. Marking pointer-free memory costs nothing, so collecting
	// at 10% growth is cheap. An explicit GOGC in the environment wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(10)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: zopeer <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\n`zopeer help <command>` describes a command, its flags and examples.")
	fmt.Fprintln(w, "Every flag --x-y also reads $ZOPEER_X_Y and the key x-y of the TOML file given by --config\n(top level, or a [command] table); flags win over the environment, which wins over the file.")
}

func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	if args[0] == "help" {
		if len(args) == 1 {
			usage(stdout)
			return 0
		}
		if c := lookup(args[1]); c != nil && len(args) == 2 {
			commandHelp(stdout, c)
			return 0
		}
		fmt.Fprintf(stderr, "zopeer help: unknown command %q; `zopeer help` lists them\n", strings.Join(args[1:], " "))
		return 2
	}
	cmd := lookup(args[0])
	if cmd == nil {
		fmt.Fprintf(stderr, "zopeer: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	fs, runCmd := newFlagSet(cmd)
	logLevel := fs.Lookup("log-level")
	if err := config.Parse(fs, cmd.name, args[1:], knownKeys()); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandHelp(stdout, cmd)
			return 0
		}
		fmt.Fprintln(stderr, flagError(cmd, fs, err))
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel.Value.String())); err != nil {
		fmt.Fprintf(stderr, "zopeer %s: --log-level: %v\n", cmd.name, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log) // packages that log through the default logger share the handler

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = context.WithValue(ctx, stderrKey{}, stderr)
	if err := runCmd(ctx, log, stdout, fs.Args()); err != nil {
		fmt.Fprintf(stderr, "zopeer %s: %v\n", cmd.name, err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

// usageError marks errors in how the command was called (exit status 2).
type usageError struct{ error }

// knownKeys is every config-file key any command accepts, and its table.
func knownKeys() map[string]bool {
	known := map[string]bool{"log-level": true}
	for _, c := range commands {
		known["["+c.name+"]"] = true
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		c.flags(fs)
		fs.VisitAll(func(f *flag.Flag) { known[f.Name] = true })
	}
	return known
}
