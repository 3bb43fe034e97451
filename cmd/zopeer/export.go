package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/zopeer/zopeer/node"
)

func exportCommand(fs *flag.FlagSet) func(context.Context, *slog.Logger, io.Writer, []string) error {
	home := fs.String("home", node.Defaults.Home, "the home to export (of zopeer train or zopeer start)")
	out := fs.String("out", "", "directory to write the model to (Hugging Face layout)")
	dir := fs.String("model", "", "the run's base model directory, when the home does not record where it is")
	return func(ctx context.Context, log *slog.Logger, w io.Writer, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unexpected arguments %q", args)}
		}
		if *out == "" {
			return usageError{fmt.Errorf("give --out DIR")}
		}
		ctx = node.WithProgress(ctx, progressBar(stderrOf(ctx)))
		r, err := node.Export(ctx, *home, *out, *dir, log)
		if err != nil {
			return err
		}
		via := "from the home's log"
		if r.Via != "home" {
			via = "by the running peer at " + r.Via
		}
		fmt.Fprintf(w, "exported %d updates to %s (%s)\nset digest    %s\nweights hash  %s\n", r.Updates, r.Dir, via, r.SetDigest, r.WeightsHash)
		return nil
	}
}
