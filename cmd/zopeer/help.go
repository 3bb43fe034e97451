package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"

	"github.com/zopeer/zopeer/config"
)

// helpText is a command's long help: what it does and how it is used.
type helpText struct {
	args     string // after "zopeer NAME [flags]"
	desc     string
	examples []string
}

// helps holds the long help of each command (the summary is in commands).
var helps = map[string]helpText{
	"train": {desc: "Fine-tunes a model on local data with zeroth-order steps, alone (no network). With no\n" +
		"--model and --data it trains the embedded default model on its embedded task. The home keeps\n" +
		"the update log and checkpoints; a second run resumes. Use `zopeer export` for the result:\n" +
		"the home's default-model/ is the BASE model, not the trained one. --lr is per update: a step\n" +
		"applies --samples updates computed on the same weights, so it moves about --samples × --lr.\n" +
		"Evaluations go to history.jsonl in the home (JSON lines; docs/API.md).",
		examples: []string{"zopeer train --steps 25", "zopeer train --model ./smollm --data chat.jsonl --home run1",
			"zopeer export --home run1 --out ./tuned"}},
	"eval": {desc: "Prints the mean held-out loss (nats per target token) and the token count of a model on a dataset.\n" +
		"A model whose weights hold NaN or Inf is an error (exit 1).",
		examples: []string{"zopeer eval --model ./tuned --data eval.jsonl", "zopeer eval --model ./tuned --data eval.jsonl --json"}},
	"sweep": {desc: "Picks η (--lrs) and ε (--epss) for a model and data: for each pair, a short run of --steps\n" +
		"steps from the base weights, in memory, then the eval loss; it prints the table, the median |ĝ|\n" +
		"at the base for each ε, and the pair with the lowest loss. Takes train's flags (model, data,\n" +
		"batch size, samples, window …); writes nothing but the embedded model when that is used.",
		examples: []string{"zopeer sweep --steps 20 --lrs 3e-5,1e-4,3e-4,1e-3",
			"zopeer sweep --model ./m --data d.jsonl --window --lrs 1e-4,1e-3 --epss 1e-3,1e-2"}},
	"generate": {desc: "Samples a continuation of --prompt from a model directory.",
		examples: []string{`zopeer generate --model ./tuned --prompt "The capital of France is" --temperature 0`}},
	"init": {desc: "Creates a run: writes its manifest (base model, its source and digest, hyperparameters and\n" +
		"admission rules) in --home. Peers that join fetch it from the network. --model-name and\n" +
		"--model-revision tell joiners which model to fetch.",
		examples: []string{"zopeer init --home h1 --run my-run",
			"zopeer init --home h1 --run my-run --model ./smollm --model-name HuggingFaceTB/SmolLM-135M --data chat.jsonl"}},
	"start": {desc: "Runs a peer: joins the run's network, catches up, trains, gossips updates, and serves the\n" +
		"HTTP API (status, metrics, and a live dashboard at http://API/). A home with no manifest\n" +
		"fetches the run's from peers (--run, --bootstrap).",
		examples: []string{"zopeer start --home h1", "zopeer start --home h2 --api 127.0.0.1:7071 --listen /ip4/0.0.0.0/tcp/4002 --bootstrap /ip4/192.0.2.1/tcp/4747/p2p/12D3Koo…",
			"open http://127.0.0.1:7070/   # the dashboard"}},
	"status": {desc: "Prints a running peer's status. --home finds the API address the peer wrote in its home.",
		examples: []string{"zopeer status", "zopeer status --home h2", "zopeer status --api 127.0.0.1:7071 --json"}},
	"peers": {desc: "Lists a running peer's connected peers: machine, addresses, direct or relayed, whether they\n" +
		"contribute, their lag and whether their (set digest, weights hash) agrees with ours.",
		examples: []string{"zopeer peers --home h1", "zopeer peers --json"}},
	"id": {desc: "Prints the machine id and peer ID of a home's identity (creating it if needed), and the\n" +
		"multiaddrs others can give to --bootstrap: the running peer's, or those of --listen.",
		examples: []string{"zopeer id --home h1"}},
	"export": {desc: "Writes the current model of a home in Hugging Face layout (model.safetensors, config.json,\n" +
		"the base model's tokenizer and generation files) without changing the home. Works for train and\n" +
		"start homes; while a peer runs on the home, the peer writes it between two steps.",
		examples: []string{"zopeer export --home h1 --out ./tuned", "zopeer generate --model ./tuned --prompt hi"}},
	"log": {args: "export", desc: "Writes a stopped peer's update log (every logged update and exclusion) as JSON lines, format\n" +
		"zopeer-log/1 (docs/STORE.md), checked against the log's set digest. With --model (or the home's\n" +
		"default-model/) it first checks that the directory holds the run's base weights.",
		examples: []string{"zopeer log export --home h1 --out run.jsonl", "zopeer log export --home h1 --model ./smollm > run.jsonl"}},
	"bench": {desc: "Measures forward passes, ZO steps, update application and memory (after one untimed warm-up pass).",
		examples: []string{"zopeer bench", "zopeer bench --model smollm-135m --tokens 128 --json"}},
	"version": {desc: "Prints zopeer's module version, VCS commit and Go version.", examples: []string{"zopeer version"}},
	"help":    {args: "[command]", desc: "Prints the help of a command, or the list of commands.", examples: []string{"zopeer help start"}},
}

// commandHelp writes a command's help: usage, description, flags with their
// environment twins, examples.
func commandHelp(w io.Writer, c *command) {
	fs, _ := newFlagSet(c)
	h := helps[c.name]
	args := h.args
	if args == "" {
		args = "[flags]"
	}
	fmt.Fprintf(w, "usage: zopeer %s %s\n\n%s.\n", c.name, args, strings.ToUpper(c.summary[:1])+c.summary[1:])
	if h.desc != "" {
		fmt.Fprintf(w, "\n%s\n", h.desc)
	}
	fmt.Fprintln(w, "\nflags:")
	printFlags(w, fs)
	if len(h.examples) > 0 {
		fmt.Fprintln(w, "\nexamples:")
		for _, e := range h.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	fmt.Fprintf(w, "\nEvery flag --x-y also reads $ZOPEER_X_Y and the key x-y of the --config file.\n")
}

// printFlags lists fs's flags as --name ARG, with default and env twin.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		head := "  --" + f.Name
		if arg := argName(f); arg != "" {
			head += " " + arg
		}
		fmt.Fprintf(w, "%s\n      %s", head, strings.ReplaceAll(f.Usage, "`", ""))
		if !isZero(f) {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, " [$%s]\n", config.EnvName(f.Name))
	})
}

// argName names a flag's argument by its type ("" for a bool).
func argName(f *flag.Flag) string {
	if isBool(f) {
		return ""
	}
	switch t := fmt.Sprintf("%T", f.Value); {
	case t == "*config.List":
		return "A,B,…"
	case strings.Contains(t, "duration"):
		return "DURATION"
	case strings.Contains(t, "int"):
		return "N"
	case strings.Contains(t, "float"):
		return "X"
	}
	switch f.Name {
	case "home", "out", "model":
		return "DIR"
	case "data", "eval-data", "config":
		return "FILE"
	case "api":
		return "HOST:PORT"
	}
	return "STRING"
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// isZero reports whether the flag's default is its type's zero value.
func isZero(f *flag.Flag) bool {
	t := reflect.TypeOf(f.Value)
	var z reflect.Value
	if t.Kind() == reflect.Pointer {
		z = reflect.New(t.Elem())
	} else {
		z = reflect.Zero(t)
	}
	return f.DefValue == z.Interface().(flag.Value).String() || f.DefValue == "" || f.DefValue == "[]"
}

// newFlagSet returns c's flag set, with the flags every command has, and
// the function that runs it. The flag package prints nothing: run prints
// one line on a bad flag, and the command's help on --help.
func newFlagSet(c *command) (*flag.FlagSet, func(context.Context, *slog.Logger, io.Writer, []string) error) {
	fs := flag.NewFlagSet("zopeer "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.String(config.FileFlag, "", "TOML config file (also $ZOPEER_CONFIG)")
	fs.String("log-level", "info", "log level: debug, info, warn, error")
	return fs, c.flags(fs)
}

// flagError turns the flag package's error into one line with a hint.
func flagError(c *command, fs *flag.FlagSet, err error) string {
	msg := err.Error()
	const undef = "flag provided but not defined: -"
	if i := strings.Index(msg, undef); i >= 0 {
		name := strings.TrimLeft(msg[i+len(undef):], "-")
		hint := ""
		if s := closest(fs, name); s != "" {
			hint = fmt.Sprintf(" (did you mean --%s?)", s)
		}
		return fmt.Sprintf("zopeer %s: unknown flag --%s%s; see `zopeer help %s`", c.name, name, hint, c.name)
	}
	return fmt.Sprintf("zopeer %s: %s; see `zopeer help %s`", c.name, msg, c.name)
}

// closest returns the flag of fs nearest to name by edit distance, if near.
func closest(fs *flag.FlagSet, name string) string {
	best, bestD := "", 3
	fs.VisitAll(func(f *flag.Flag) {
		d := editDistance(name, f.Name)
		if strings.HasPrefix(f.Name, name) && len(name) >= 3 {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
