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
	{"generate", "sample text from a model", generateCommand},
	{"init", "create a run: write its manifest (base-model digest, hyperparameters) in --home", initCommand},
	{"start", "run a peer: join the run's network, train, gossip, serve the HTTP API", startCommand},
	{"status", "print a running peer's status", statusCommand},
	{"id", "print the machine id and peer ID of a home's identity (creating it if needed)", idCommand},
	{"bench", "measure forward passes, ZO steps, updates and memory", benchCommand},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: zopeer <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nEvery flag --x-y also reads $ZOPEER_X_Y and the key x-y of the TOML file given by --config\n(top level, or a [command] table); flags win over the environment, which wins over the file.")
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == args[0] {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "zopeer: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	fs := flag.NewFlagSet("zopeer "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String(config.FileFlag, "", "TOML config file (also $ZOPEER_CONFIG)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	runCmd := cmd.flags(fs)
	if err := config.Parse(fs, cmd.name, args[1:], knownKeys()); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "zopeer %s: %v\n", cmd.name, err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "zopeer %s: --log-level: %v\n", cmd.name, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log) // packages that log through the default logger share the handler

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
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
